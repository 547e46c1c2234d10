import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Redis, { Cluster } from 'ioredis';

const run = promisify(execFile);

/**
 * A real Redis Cluster for tests, started from the machine's redis-server: 3 masters and 3 replicas on free ports,
 * in a temp dir, no persistence. `stop()` kills exactly the processes it started and removes the dir.
 */
export interface TestCluster {
  readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>;
  /** `host:port,host:port,...` for REDIS_CLUSTER_NODES. */
  readonly seeds: string;
  /** Ports of the current masters (asks the cluster). */
  masters(): Promise<number[]>;
  /** Kills the redis-server on `port` with SIGKILL (no goodbye to its peers). */
  kill(port: number): void;
  /** Resolves when every slot is served by a live master again and the cluster says ok. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** `n` distinct free TCP ports on 127.0.0.1: all held open at once (so none repeats), then released for redis-server. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`redis cluster: ${what} not reached in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function clusterInfo(port: number): Promise<Record<string, string>> {
  const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: true });
  c.on('error', () => undefined);
  try {
    const text = (await c.cluster('INFO')) as string;
    return Object.fromEntries(
      text
        .split(/\r?\n/)
        .filter(Boolean)
        .map((l) => l.split(':') as [string, string]),
    );
  } finally {
    c.disconnect();
  }
}

async function clusterNodes(port: number): Promise<Array<{ port: number; flags: string[]; slots: boolean }>> {
  const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    const text = (await c.cluster('NODES')) as string;
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const f = line.split(' ');
        return { port: Number(f[1]!.split('@')[0]!.split(':')[1]), flags: f[2]!.split(','), slots: f.length > 8 };
      });
  } finally {
    c.disconnect();
  }
}

export async function startRedisCluster(opts: { nodeTimeoutMs?: number } = {}): Promise<TestCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lg-redis-cluster-'));
  const procs = new Map<number, ChildProcess>();
  const ports: number[] = [];
  // If the test process dies without stop(), take the servers it started along.
  const killAll = () => procs.forEach((p) => p.exitCode === null && p.signalCode === null && p.kill('SIGKILL'));
  process.once('exit', killAll);
  const stop = async () => {
    process.off('exit', killAll);
    await Promise.all(
      [...procs.values()].map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill('SIGKILL');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The cluster bus gets its own free port too (the default, port + 10000, may be taken or out of range).
    const free = await freePorts(12);
    for (let i = 0; i < 6; i++) {
      const [port, busPort] = [free[2 * i]!, free[2 * i + 1]!];
      const nodeDir = path.join(dir, String(port));
      mkdirSync(nodeDir);
      const p = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--cluster-port',
          String(busPort),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          path.join(nodeDir, 'nodes.conf'),
          '--cluster-node-timeout',
          String(opts.nodeTimeoutMs ?? 1000),
          '--dir',
          nodeDir,
          '--save',
          '',
          '--appendonly',
          'no',
          '--protected-mode',
          'no',
        ],
        { stdio: 'ignore' },
      );
      procs.set(port, p);
      ports.push(port);
    }
    await Promise.all(ports.map((port) => until(`node ${port} up`, async () => (await clusterInfo(port)).cluster_state !== undefined, 10_000)));
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes']);
    const healthy = async (timeoutMs = 20_000) => {
      await until(
        'cluster ok on every live node',
        async () => {
          const live = ports.filter((p) => procs.get(p)!.exitCode === null && procs.get(p)!.signalCode === null);
          const infos = await Promise.all(live.map(clusterInfo));
          return infos.every((i) => i.cluster_state === 'ok' && i.cluster_slots_ok === '16384');
        },
        timeoutMs,
      );
    };
    await healthy();
    // Replicas attached and synced, so a failover has someone to promote.
    await until(
      '3 replicas linked',
      async () => {
        const nodes = await clusterNodes(ports[0]!);
        return nodes.filter((n) => n.flags.includes('slave')).length === 3;
      },
      20_000,
    );
    return {
      nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
      seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
      async masters() {
        const live = ports.find((p) => procs.get(p)!.exitCode === null && procs.get(p)!.signalCode === null)!;
        return (await clusterNodes(live)).filter((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots).map((n) => n.port);
      },
      kill(port) {
        procs.get(port)?.kill('SIGKILL');
      },
      waitHealthy: healthy,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Every master of `cluster`, e.g. to flush them all or to look for keys. */
export const clusterMasters = (cluster: Cluster): Redis[] => cluster.nodes('master');
