import { loadConfig, type Config } from '../config';

/** What a command-line tool writes to: its own streams in production, strings in tests. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CliIo = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

/**
 * Runs a command-line tool as the process: reads the config (a wrong value: its message and exit code 2), runs
 * `main`, and sets the exit code it returns (an unexpected error: its message and exit code 1). The one way the
 * project's CLIs (`npm run report`, `npm run tenant`) start.
 */
export function runCli(main: (config: Config, argv: readonly string[], io: CliIo) => Promise<number>): void {
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    processIo.err(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
    return;
  }
  main(config, process.argv.slice(2), processIo).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      processIo.err(`error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
