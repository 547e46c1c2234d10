import { performance } from 'node:perf_hooks';
import { cpuMs, selfCpuMs } from './procs';
import type { Progress } from './progress';
import { roundSummary, round, Samples, type Summary } from './stats';

/** One finished operation: its whole time and, for streams, the time to its first token (ms). */
export interface OpSample {
  readonly ok: boolean;
  readonly ms: number;
  readonly ttftMs?: number;
  readonly error?: string;
}

export interface LoadResult {
  readonly concurrency: number;
  readonly seconds: number;
  /** Operations started and finished inside the measured window (after the warm-up). */
  readonly requests: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly rps: number;
  readonly latencyMs: Summary;
  readonly ttftMs: Summary | null;
  /** CPU used during the window, ms per successful operation, per process (the load generator is "loadgen"). */
  readonly cpuMsPerRequest: Record<string, number>;
  /** CPU used during the window as a share of one core, per process. */
  readonly cpuCores: Record<string, number>;
}

/**
 * A closed loop: `concurrency` workers, each running `op` back to back, for `warmupS` + `seconds`. Only
 * operations that start and finish inside the measured window count. CPU of the given processes (from /proc) is
 * read at the window's edges.
 */
export async function closedLoop(o: {
  label: string;
  concurrency: number;
  warmupS: number;
  seconds: number;
  progress: Progress;
  pids: Record<string, number>;
  op: (worker: number) => Promise<OpSample>;
}): Promise<LoadResult> {
  const t0 = performance.now();
  const measureFrom = t0 + o.warmupS * 1000;
  const measureTo = measureFrom + o.seconds * 1000;
  const lat = new Samples();
  const ttft = new Samples();
  let requests = 0;
  let errors = 0;
  let firstError: string | null = null;
  let cpuStart: Record<string, number> | null = null;
  let cpuEnd: Record<string, number> | null = null;
  const readCpu = () => {
    const r: Record<string, number> = { loadgen: selfCpuMs() };
    for (const [k, pid] of Object.entries(o.pids)) r[k] = cpuMs(pid);
    return r;
  };
  const edges = [
    setTimeout(() => (cpuStart = readCpu()), Math.max(0, measureFrom - performance.now())),
    setTimeout(() => (cpuEnd = readCpu()), Math.max(0, measureTo - performance.now())),
  ];
  const ticker = setInterval(() => {
    const now = performance.now();
    const phase = now < measureFrom ? `warm-up ${((now - t0) / 1000).toFixed(1)}/${o.warmupS}s` : `${((now - measureFrom) / 1000).toFixed(1)}/${o.seconds}s`;
    const s = lat.length ? lat.summary() : null;
    o.progress.status(
      `${o.label} c=${o.concurrency} ${phase} ${requests} ok ${errors} err` +
        (s
          ? ` ${(requests / Math.max(0.001, (Math.min(now, measureTo) - measureFrom) / 1000)).toFixed(0)}/s p50 ${s.p50.toFixed(2)} ms p99 ${s.p99.toFixed(2)} ms`
          : ''),
    );
  }, 250);

  const worker = async (w: number) => {
    for (;;) {
      const start = performance.now();
      if (start >= measureTo) return;
      let r: OpSample;
      try {
        r = await o.op(w);
      } catch (e) {
        r = { ok: false, ms: performance.now() - start, error: (e as Error).message };
      }
      const end = performance.now();
      if (start < measureFrom || end > measureTo) continue;
      if (r.ok) {
        requests++;
        lat.push(r.ms);
        if (r.ttftMs !== undefined) ttft.push(r.ttftMs);
      } else {
        errors++;
        firstError ??= r.error ?? 'failed';
        // A failing target must not spin at full speed.
        await new Promise((res) => setTimeout(res, 5));
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
  clearInterval(ticker);
  for (const t of edges) clearTimeout(t);
  cpuEnd ??= readCpu();
  cpuStart ??= cpuEnd;
  const cpuMsPerRequest: Record<string, number> = {};
  const cpuCores: Record<string, number> = {};
  for (const k of Object.keys(cpuEnd!)) {
    const used = cpuEnd![k]! - cpuStart![k]!;
    cpuMsPerRequest[k] = round(requests ? used / requests : NaN, 4);
    cpuCores[k] = round(used / (o.seconds * 1000), 3);
  }
  return {
    concurrency: o.concurrency,
    seconds: o.seconds,
    requests,
    errors,
    firstError,
    rps: round(requests / o.seconds, 1),
    latencyMs: roundSummary(lat.summary()),
    ttftMs: ttft.length ? roundSummary(ttft.summary()) : null,
    cpuMsPerRequest,
    cpuCores,
  };
}
