import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = path.resolve(__dirname, '../..');

export interface ServerProcess {
  readonly proc: ChildProcess;
  readonly url: string;
  /** Every JSON log line seen so far. */
  readonly logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code (or signal) once the process has exited. */
  readonly exited: Promise<number | string | null>;
}

/**
 * Starts the gateway as its own process (by default the sources through tsx: `node --import tsx src/main.ts`) and
 * resolves once it logs that it listens. `command` overrides what is spawned (['npm', 'start'] runs the built bundle,
 * as production does).
 */
export function startServerProcess(env: NodeJS.ProcessEnv, opts: { command?: string[]; execArgv?: string[] } = {}): Promise<ServerProcess> {
  const [cmd, ...args] = opts.command ?? [process.execPath, ...(opts.execArgv ?? []), '--import', 'tsx', 'src/main.ts'];
  const proc = spawn(cmd!, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | string | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server process did not start')), 30_000);
    void exited.then((code) => reject(new Error(`server process exited with ${code}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      let j: Record<string, unknown>;
      try {
        j = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // not a log line
      }
      logs.push(j);
      if (j.msg === 'llm-gateway listening' && typeof j.url === 'string') {
        clearTimeout(timer);
        resolve({ proc, url: j.url, logs, exited });
      }
    });
  });
}
