import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { App } from '../../src/app';
import type { Simulator } from '../../src/simulator/server';
import { createPrisma, type Db } from '../../src/infra/prisma';
import { TEST_DATABASE_URL } from './env';
import { startApp, startSim } from './app';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(`playground e2e tests SKIPPED: ${CHROMIUM} not found (install Debian's chromium package: apt-get install -y chromium).`);
}
/** describe where Debian's Chromium is installed, describe.skip elsewhere. */
export const describeInChromium = hasChromium ? describe : describe.skip;

/** Where the playground tests put their screenshots. */
export const PLAYGROUND_ARTIFACTS = path.resolve(__dirname, '../../test-artifacts/playground');

export interface Playground {
  readonly sim: Simulator;
  readonly app: App;
  readonly db: Db;
  readonly browser: Browser;
  /** The gateway's origin, where the playground is served. */
  readonly origin: string;
}

/**
 * The browser suites' fixture, called inside their describe: a simulator at `latencyScale`, the gateway on it, a
 * Prisma client and headless Chromium, started before the suite and stopped after it. `newPage` opens a fresh
 * browser context (closed after the test) and collects the page's uncaught errors in `pageErrors`.
 */
export function playgroundSuite(latencyScale: number) {
  const parts: { sim?: Simulator; app?: App; db?: Db; browser?: Browser; origin?: string } = {};
  const pageErrors: string[] = [];
  let context: BrowserContext | null = null;
  beforeAll(async () => {
    mkdirSync(PLAYGROUND_ARTIFACTS, { recursive: true });
    parts.sim = await startSim(latencyScale);
    parts.app = await startApp({}, parts.sim);
    parts.origin = new URL(parts.app.url).origin;
    parts.db = createPrisma(TEST_DATABASE_URL, { max: 2 });
    parts.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  }, 60_000);
  afterEach(async () => {
    await context?.close();
    context = null;
  });
  afterAll(async () => {
    await parts.browser?.close();
    await parts.app?.stop();
    await parts.sim?.close();
    await parts.db?.$disconnect();
  });
  return {
    /** The started parts; call from a hook or a test. */
    parts: (): Playground => parts as Playground,
    pageErrors,
    async newPage(viewport: { width: number; height: number }): Promise<Page> {
      context = await parts.browser!.newContext({ viewport });
      context.setDefaultTimeout(10_000); // a clear Playwright message before jest's 30 s timeout
      const page = await context.newPage();
      pageErrors.length = 0;
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      return page;
    },
  };
}
