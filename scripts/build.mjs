#!/usr/bin/env node
// The server as plain JavaScript: src/main.ts and everything it imports (generated/, prisma/seed.ts) bundled by
// esbuild into dist/main.js; packages from node_modules stay require()s. No type check here: that is
// `npm run typecheck`'s job, and a build that waits for it would not be ready within a minute on a fresh clone.
//
//   node scripts/build.mjs              build now
//   node scripts/build.mjs --if-stale   build only when a file the last build read is newer than it, or is gone
//
// `npm start` runs the second, then `exec node dist/main.js`: it always serves the current sources, and at run time
// it is one node process (signals reach the server directly).
import { build } from 'esbuild';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'dist');
const outFile = path.join(outDir, 'main.js');
// The inputs of the last build (esbuild's metafile): the staleness check needs no guess about which folders count.
const metaFile = path.join(outDir, 'meta.json');
const self = fileURLToPath(import.meta.url);

/** True when there is no build, or a file it was built from (or this script) changed or vanished since. */
function isStale() {
  if (!existsSync(outFile) || !existsSync(metaFile)) return true;
  const builtAt = statSync(outFile).mtimeMs;
  const inputs = Object.keys(JSON.parse(readFileSync(metaFile, 'utf8')).inputs);
  return [self, ...inputs.map((f) => path.join(root, f))].some((f) => !existsSync(f) || statSync(f).mtimeMs > builtAt);
}

async function bundle() {
  const started = Date.now();
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['src/main.ts'],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    // Stack traces name the real functions and classes (a bundle may otherwise rename clashing ones).
    keepNames: true,
    // Mapped stack traces on request: NODE_OPTIONS=--enable-source-maps npm start.
    sourcemap: 'linked',
    metafile: true,
    write: false,
    outfile: outFile,
    logLevel: 'warning',
  });
  // Written under temporary names and renamed: two servers started at once never read a half-written bundle.
  mkdirSync(outDir, { recursive: true });
  const files = [...result.outputFiles.map((f) => [f.path, f.contents]), [metaFile, JSON.stringify(result.metafile)]];
  for (const [file, contents] of files) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, contents);
    renameSync(tmp, file);
  }
  process.stderr.write(`built ${path.relative(root, outFile)} in ${Date.now() - started} ms\n`);
}

if (!process.argv.includes('--if-stale') || isStale()) await bundle();
