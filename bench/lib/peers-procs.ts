import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { npmInstall } from './peers-load';
import { answers, freePort, startChild } from './procs';

export const PORTKEY_VERSION = '1.15.2';
/** Newer @hono/node-server versions break Portkey's streaming ("TypeError: immutable"). */
export const HONO_NODE_SERVER_VERSION = '1.13.5';

/**
 * Pins every thread of a running process to one CPU, or with `null` lets it run on all of them again (threads it
 * starts later inherit it). True when it worked; a machine without taskset, or with one core, runs unpinned and the
 * results say so.
 */
export function pinProcess(pid: number, cpu: number | null): boolean {
  const cores = os.cpus().length;
  if (cpu !== null && cores <= cpu) return false;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpu === null ? `0-${cores - 1}` : String(cpu), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Portkey's gateway installed with npm into `scratchDir` (never into this project), @hono/node-server held at the
 * version its streaming works with. Reused when the same versions are already there. Returns the entry script.
 */
export function installPortkey(scratchDir: string, install: boolean, log: (s: string) => void): { entry: string; version: string } {
  const dir = path.join(scratchDir, `portkey-${PORTKEY_VERSION}`);
  const pkg = path.join(dir, 'node_modules', '@portkey-ai', 'gateway');
  const installed = (p: string) => {
    try {
      return (JSON.parse(readFileSync(path.join(p, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return null;
    }
  };
  const ready = () => installed(pkg) === PORTKEY_VERSION && installed(path.join(dir, 'node_modules', '@hono', 'node-server')) === HONO_NODE_SERVER_VERSION;
  if (!ready()) {
    if (!install) throw new Error(`Portkey ${PORTKEY_VERSION} is not installed in ${dir} and --no-install was given (or pass --no-portkey)`);
    log(`portkey: installing @portkey-ai/gateway ${PORTKEY_VERSION} (with @hono/node-server ${HONO_NODE_SERVER_VERSION}) into ${dir}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({
        name: 'bench-peers-portkey',
        private: true,
        dependencies: { '@portkey-ai/gateway': PORTKEY_VERSION, '@hono/node-server': HONO_NODE_SERVER_VERSION },
        overrides: { '@hono/node-server': HONO_NODE_SERVER_VERSION },
      }),
    );
    npmInstall(dir);
    if (!ready()) throw new Error(`portkey: npm install into ${dir} did not leave ${PORTKEY_VERSION} with @hono/node-server ${HONO_NODE_SERVER_VERSION}`);
  }
  const entry = path.join(pkg, 'build', 'start-server.js');
  if (!existsSync(entry)) throw new Error(`portkey: ${entry} is missing`);
  return { entry, version: PORTKEY_VERSION };
}

/** Portkey on a free loopback port (bench/peers/portkey-launch.ts). */
export async function startPortkeyChild(entry: string) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = await startChild({
    name: 'portkey',
    script: 'bench/peers/portkey-launch.ts',
    env: { PORTKEY_ENTRY: entry, PORTKEY_PORT: String(port), NODE_ENV: 'production' },
    ready: () => answers(`${origin}/`),
    timeoutMs: 60_000,
  });
  return { child, origin };
}

/** The bare Apollo 5 + graphql-ws hop (bench/peers/apollo-hop.ts) in front of `upstreamUrl` (with /v1). */
export async function startApolloHopChild(upstreamUrl: string, model: string) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const child = await startChild({
    name: 'apollo hop',
    script: 'bench/peers/apollo-hop.ts',
    env: { HOP_PORT: String(port), HOP_UPSTREAM: upstreamUrl, HOP_MODEL: model, NODE_ENV: 'production' },
    ready: () => answers(`${origin}/healthz`),
    timeoutMs: 60_000,
  });
  return { child, origin, graphqlUrl: `${origin}/graphql` };
}
