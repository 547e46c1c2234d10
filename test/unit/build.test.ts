import { execFileSync } from 'node:child_process';
import { statSync, utimesSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const BUNDLE = path.join(ROOT, 'dist/main.js');

/** Runs the build script with `args` (as `npm start` does with --if-stale). */
function build(...args: string[]): void {
  execFileSync(process.execPath, ['scripts/build.mjs', ...args], { cwd: ROOT, stdio: 'ignore' });
}

describe('npm start serves the current sources', () => {
  test('a source newer than the bundle rebuilds it; an unchanged tree does not', () => {
    build();
    const built = statSync(BUNDLE).mtimeMs;
    build('--if-stale');
    expect(statSync(BUNDLE).mtimeMs).toBe(built);

    // A file the bundle was built from (a deep import, not main.ts) changes: the next start rebuilds.
    const source = path.join(ROOT, 'src/limits/scripts/lib.lua.ts');
    const touched = new Date(built + 5);
    utimesSync(source, touched, touched);
    build('--if-stale');
    expect(statSync(BUNDLE).mtimeMs).toBeGreaterThan(built);
  });
});
