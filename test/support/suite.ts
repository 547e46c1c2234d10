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
