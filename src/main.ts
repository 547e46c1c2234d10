import { execFileSync } from 'node:child_process';
import cluster from 'node:cluster';
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from './config';
import { buildApp, StartupError } from './app';
import { createLogger, type Logger } from './infra/logger';
import { announceListening, runWorkers } from './infra/workers';
import { createPrisma } from './infra/prisma';
import { PROJECT_ROOT } from './infra/project-root';
import { seedCatalog } from '../prisma/seed';

/** Migrations (in a child: the WebAssembly schema engine needs --experimental-wasm-modules on Node 20), then the seed. */
async function prepareDatabase(config: Config, logger: Logger): Promise<void> {
  try {
    const out = execFileSync(process.execPath, ['--experimental-wasm-modules', '--no-warnings', path.join(PROJECT_ROOT, 'prisma/migrate.mjs'), 'apply'], {
      env: { ...process.env, DATABASE_URL: config.DATABASE_URL },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    logger.info({ result: out.toString().trim() }, 'migrations');
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new StartupError(stderr || `migrations failed: ${(e as Error).message}`);
  }
  const db = createPrisma(config.DATABASE_URL, { max: 1 });
  try {
    const seeded = await seedCatalog(db);
    // The seed only inserts what is missing: on a restart nothing is, which is the good case, so say so.
    const inserted = seeded.models + seeded.profiles + seeded.fallbacks;
    logger.info(
      inserted === 0
        ? { catalog: 'current: models, profiles and fallback chains already present, nothing to insert' }
        : { catalog: 'seeded', inserted: seeded },
      'seed',
    );
  } finally {
    await db.$disconnect();
  }
}

/** Tells the person who ran npm start where to go, once per process tree (by the primary when there are workers). */
function announce(config: Config, logger: Logger, port: number, extra: Record<string, unknown>): void {
  const origin = `http://localhost:${port}`;
  // Also plainly on the terminal, for the person who just ran npm start.
  process.stderr.write(
    `\nPlayground: ${origin}/   API: ${origin}/graphql\nGet a tenant key: npm run tenant -- create <name>   (README: "First ten minutes")\n`,
  );
  logger.info(
    {
      url: `http://127.0.0.1:${port}/graphql`,
      playground: `${origin}/`,
      getAKey: 'npm run tenant -- create <name>, or the playground admin view with the admin key',
      ...extra,
    },
    'llm-gateway listening',
  );
  if (config.adminKeyGenerated) {
    // Printed once, to the terminal only; never logged. Set ADMIN_API_KEY to keep one across restarts.
    process.stderr.write(
      `\nADMIN_API_KEY was not set; generated one for this process (shown once):\n  ${config.ADMIN_API_KEY}\nSet ADMIN_API_KEY to choose your own.\n\n`,
    );
  }
}

/** One gateway instance in this process: serves until SIGTERM/SIGINT, then drains and exits. */
async function serve(config: Config, logger: Logger, onListening: (port: number, upstreamUrl: string) => void): Promise<void> {
  const app = await buildApp(config, { logger });
  onListening(app.port, app.upstreamUrl);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    // The drain ends what is still running at DRAIN_TIMEOUT_MS and settles it; this is the backstop if settling
    // hangs (the reaper then settles the rest from their checkpoints). It fits the usual 10 s stop grace.
    const force = setTimeout(() => {
      logger.error('drain took too long; exiting');
      process.exit(1);
    }, config.DRAIN_TIMEOUT_MS + 1_500);
    force.unref();
    app.stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (e) => {
        logger.error({ err: e }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * Process entry: config -> migrations -> seed -> app -> listen; SIGTERM/SIGINT drain and exit. With WORKERS=N > 1
 * this process migrates and seeds once, then forks N workers that each serve on the same port (infra/workers.ts).
 */
async function main() {
  const config = loadConfig();
  if (cluster.isWorker) {
    const logger = createLogger(config.LOG_LEVEL, { worker: cluster.worker?.id });
    await serve(config, logger, (port) => {
      logger.info({ port }, 'worker listening');
      announceListening(port);
    });
    return;
  }
  const logger = createLogger(config.LOG_LEVEL);
  await prepareDatabase(config, logger);
  if (config.WORKERS === 1) {
    await serve(config, logger, (port, upstream) => announce(config, logger, port, { upstream }));
    return;
  }
  runWorkers({
    count: config.WORKERS,
    // Every worker accepts the same admin key, also when this process generated it.
    env: { ADMIN_API_KEY: config.ADMIN_API_KEY },
    logger,
    forceAfterMs: config.DRAIN_TIMEOUT_MS + 3_000,
    onReady: (port) => announce(config, logger, port, { workers: config.WORKERS }),
  });
}

main().catch((e) => {
  if (e instanceof ConfigError || e instanceof StartupError) {
    process.stderr.write(`llm-gateway: ${e.message}\n`);
  } else {
    process.stderr.write(`llm-gateway: failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  }
  process.exit(1);
});
