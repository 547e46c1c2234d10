import { ConfigError, loadConfig, type Config } from '../config';
import { startSimulator } from './server';

/** `npm run simulator`: the simulator alone on 127.0.0.1:SIM_PORT, scaled by SIM_LATENCY_SCALE, until SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const sim = await startSimulator({
    port: config.SIM_PORT,
    host: '127.0.0.1',
    latencyScale: config.SIM_LATENCY_SCALE,
    answerTokens: config.SIM_ANSWER_TOKENS,
  });
  process.stdout.write(`upstream simulator listening on ${sim.url} (SIM_LATENCY_SCALE=${config.SIM_LATENCY_SCALE})\n`);

  const stop = (signal: NodeJS.Signals): void => {
    process.stdout.write(`${signal}: closing the simulator\n`);
    sim.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while closing: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`simulator failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
