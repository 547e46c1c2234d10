import type { Client } from 'graphql-ws';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL } from './env';
import { startApp, startSim } from './app';

export interface GatewaySuite {
  readonly sim: Simulator;
  readonly app: App;
  readonly db: Db;
}

/**
 * The common integration fixture: a simulator (port 0), the gateway on it with `env` overrides, a Prisma client on
 * the test database. One disposer list: graphql-ws clients pushed onto `clients` are disposed, then the gateway,
 * the simulator and the Prisma client are closed, after the suite. Call at the top level of a test file:
 *
 *   const suite = gatewaySuite();
 *   beforeAll(async () => void ({ sim, app, db } = await suite.start()));
 */
export function gatewaySuite(env: Record<string, string> = {}, simLatencyScale = 0) {
  const clients: Client[] = [];
  const parts: { sim?: Simulator; app?: App; db?: Db } = {};
  afterAll(async () => {
    for (const c of clients.splice(0)) await c.dispose();
    await parts.app?.stop();
    await parts.sim?.close();
    await parts.db?.$disconnect();
  });
  return {
    clients,
    async start(): Promise<GatewaySuite> {
      const sim = (parts.sim = await startSim(simLatencyScale));
      const app = (parts.app = await startApp(env, sim));
      const db = (parts.db = createPrisma(TEST_DATABASE_URL, { max: 2 }));
      return { sim, app, db };
    },
  };
}

/** The simulator's admin origin (faults and stats live outside /v1). */
export const simAdmin = (sim: Simulator) => new URL(sim.url).origin;

/** Queues a scripted fault on the simulator (shared/api/simulator.md). */
export async function addSimFault(sim: Simulator, body: Record<string, unknown>): Promise<void> {
  const r = await fetch(`${simAdmin(sim)}/__sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status >= 300) throw new Error(`the simulator refused the fault (${r.status}): ${await r.text()}`);
}

/**
 * Two gateway instances on one simulator, sharing the test Postgres and Redis: the fixture of the cross-instance
 * guarantees. The simulator's queued faults are cleared after each test; both instances and the simulator stop
 * after the suite.
 */
export function twoInstanceSuite(env: Record<string, string> = {}) {
  const parts: { sim?: Simulator; a?: App; b?: App } = {};
  afterEach(async () => {
    if (parts.sim) await fetch(`${simAdmin(parts.sim)}/__sim/faults`, { method: 'DELETE' });
  });
  afterAll(async () => {
    await Promise.all([parts.a?.stop(), parts.b?.stop()]);
    await parts.sim?.close();
  });
  return {
    async start(): Promise<{ sim: Simulator; a: App; b: App }> {
      const sim = (parts.sim = await startSim(0));
      const [a, b] = await Promise.all([startApp(env, sim), startApp(env, sim)]);
      Object.assign(parts, { a, b });
      return { sim, a, b };
    },
  };
}
