import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import type { Client } from 'graphql-ws';
import { connected, subscribeChat, wsClient, type StreamHandle } from './clients';
import { cpuMs, getText, rssBytes } from './procs';
import type { Progress } from './progress';
import { round, roundSummary, Samples, summarize, type Summary } from './stats';

export interface HoldResult {
  readonly streamsRequested: number;
  /** Subscriptions that delivered a first token. */
  readonly streamsStarted: number;
  /** Subscriptions flowing (first token received, not ended) when the window closed. */
  readonly streamsOpenAtEnd: number;
  /** Subscriptions open at all (subscribed, not ended; flowing or waiting for a first token) when the window closed. */
  readonly subscriptionsOpenAtEnd: number;
  /** Subscriptions the bench cancelled after the bounded wait for the end (not counted as errors). */
  readonly cancelledByBench: number;
  /** The slow simulator's own count of answers being written, max over the window: streams really flowing. */
  readonly upstreamStreamsMax: number;
  readonly gatewayOpenStreamsGauge: number | null;
  readonly completed: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly rampSeconds: number;
  readonly windowSeconds: number;
  readonly streamSecondsExpected: number;
  readonly rssBeforeBytes: number;
  readonly rssDuringBytes: number;
  /** (RSS during - RSS idle) / flowing streams. */
  readonly rssPerStreamKiB: number;
  /** (RSS during - RSS idle) / open subscriptions. */
  readonly rssPerSubscriptionKiB: number;
  readonly heapUsedBeforeBytes: number | null;
  readonly heapUsedDuringBytes: number | null;
  /** prom-client's nodejs_eventloop_lag_* (monitorEventLoopDelay, 10 ms resolution) over the window, ms. */
  readonly eventLoopDelayMs: { p50: number | null; p90: number | null; p99: number | null; max: number | null; mean: number | null };
  readonly eventLoopDelayIdleMs: { p50: number | null; p99: number | null; max: number | null };
  /** GET /healthz round trips during the window, from outside (ms). */
  readonly healthzMs: Summary;
  readonly gatewayCpuCores: number;
  /** Content events received by the clients during the window, per second (all streams together). */
  readonly tokensPerSecondDelivered: number;
}

const metricValue = (text: string, name: string): number | null => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
};
const ms = (v: number | null) => (v === null ? null : round(v * 1000, 3));

/**
 * Holds `streams` chatStream subscriptions open at once through a gateway whose upstream is a slowed simulator (one
 * graphql-ws connection each, as separate clients would), and measures the gateway's RSS per open stream and its
 * event-loop delay while they flow.
 */
export async function holdStreams(o: {
  graphqlUrl: string;
  origin: string;
  key: string;
  gatewayPid: number;
  simOrigin: string;
  streams: number;
  windowSeconds: number;
  streamSecondsExpected: number;
  openConcurrency: number;
  progress: Progress;
  /** The ChatInput of every subscription; default clients.ts's CHAT_INPUT. */
  input?: Record<string, unknown>;
}): Promise<HoldResult> {
  const p = o.progress;
  const metrics = () => getText(`${o.origin}/metrics`);
  const simOpen = async () => (JSON.parse(await getText(`${o.simOrigin}/__sim/stats`)) as { openStreams: number }).openStreams;

  // Warm-up: a few short streams so code paths are compiled and pools opened before the baseline.
  {
    const c = wsClient(o.graphqlUrl, o.key);
    await connected(c);
    const warm = Array.from(
      { length: 20 },
      () => subscribeChat(c, { profile: 'chat_default', messages: [{ role: 'USER', content: 'warm-up' }], maxTokens: 2 }).done,
    );
    const r = await Promise.all(warm);
    await c.dispose();
    const bad = r.find((x) => !x.ok);
    if (bad) throw new Error(`many streams: warm-up stream failed: ${bad.error}`);
  }
  await new Promise((r) => setTimeout(r, 1000));
  // Baseline: idle RSS (median of 5) and idle event-loop delay over 2 s.
  await metrics();
  const rssIdle: number[] = [];
  for (let i = 0; i < 5; i++) {
    rssIdle.push(rssBytes(o.gatewayPid));
    await new Promise((r) => setTimeout(r, 400));
  }
  const idleText = await metrics();
  const rssBeforeBytes = summarize(rssIdle).p50;
  const heapUsedBeforeBytes = metricValue(idleText, 'nodejs_heap_size_used_bytes');

  // Ramp: open every connection and subscription, `openConcurrency` connection handshakes at a time.
  const t0 = performance.now();
  const clients: Client[] = [];
  const handles: StreamHandle[] = [];
  let started = 0;
  let ended = 0;
  let open = 0;
  let delivered = 0;
  const onDelta = () => delivered++;
  let completed = 0;
  let errors = 0;
  let firstError: string | null = null;
  let next = 0;
  const opener = async () => {
    while (next < o.streams) {
      next++;
      const c = wsClient(o.graphqlUrl, o.key);
      clients.push(c);
      try {
        await connected(c, 30_000);
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
        continue;
      }
      const h = subscribeChat(c, o.input, onDelta);
      handles.push(h);
      let flowing = false;
      void h.first.then((t) => {
        if (t !== null) {
          started++;
          open++;
          flowing = true;
        }
      });
      void h.done.then((r) => {
        ended++;
        if (flowing) open--;
        if (r.ok) completed++;
        else {
          errors++;
          firstError ??= r.error ?? 'failed';
        }
      });
    }
  };
  const rampTicker = setInterval(() => p.status(`many streams: opening ${next}/${o.streams}, ${started} flowing, ${errors} errors`), 250);
  await Promise.all(Array.from({ length: o.openConcurrency }, opener));
  // Every subscription has its first token (or ended) before the window opens.
  // (or until no new stream started for 3 s: a cap somewhere in the path holds the rest back).
  const rampDeadline = performance.now() + Math.max(15_000, o.streamSecondsExpected * 500);
  let lastStarted = -1;
  let stableSince = performance.now();
  while (started + errors < o.streams && performance.now() < rampDeadline) {
    if (started !== lastStarted) {
      lastStarted = started;
      stableSince = performance.now();
    } else if (performance.now() - stableSince > 3000) break;
    p.status(`many streams: ${next}/${o.streams} subscribed, ${started} flowing, ${errors} errors`);
    await new Promise((r) => setTimeout(r, 50));
  }
  clearInterval(rampTicker);
  const rampSeconds = round((performance.now() - t0) / 1000, 2);
  p.log(`  many streams: ${started} of ${o.streams} flowing after ${rampSeconds} s (${errors} errors${firstError ? `, first: ${firstError}` : ''})`);

  // Window: RSS samples, upstream open streams, /healthz probes; event-loop delay from the gateway's own metrics.
  await metrics(); // resets prom-client's event-loop histogram
  const cpu0 = cpuMs(o.gatewayPid);
  const wStart = performance.now();
  const wEnd = wStart + o.windowSeconds * 1000;
  const rss: number[] = [];
  const healthz = new Samples();
  let upstreamStreamsMax = 0;
  const probe = async () => {
    while (performance.now() < wEnd) {
      const t = performance.now();
      const r = await request(`${o.origin}/healthz`);
      await r.body.dump();
      healthz.push(performance.now() - t);
      await new Promise((res) => setTimeout(res, 50));
    }
  };
  const sampler = async () => {
    while (performance.now() < wEnd) {
      rss.push(rssBytes(o.gatewayPid));
      upstreamStreamsMax = Math.max(upstreamStreamsMax, await simOpen());
      p.status(
        `many streams: holding ${open} open, ${((performance.now() - wStart) / 1000).toFixed(1)}/${o.windowSeconds}s, RSS ${(rss[rss.length - 1]! / 2 ** 20).toFixed(0)} MiB`,
      );
      await new Promise((res) => setTimeout(res, 250));
    }
  };
  const deltasAtStart = delivered;
  await Promise.all([probe(), sampler()]);
  const deltasInWindow = delivered - deltasAtStart;
  const streamsOpenAtEnd = open;
  const subscriptionsOpenAtEnd = handles.length - ended;
  const windowText = await metrics();
  const cpu1 = cpuMs(o.gatewayPid);
  const windowSeconds = round((performance.now() - wStart) / 1000, 2);
  const rssDuringBytes = summarize(rss).p50;
  const result: HoldResult = {
    streamsRequested: o.streams,
    streamsStarted: started,
    streamsOpenAtEnd,
    upstreamStreamsMax,
    gatewayOpenStreamsGauge: metricValue(windowText, 'gateway_open_streams'),
    completed: 0,
    errors: 0,
    firstError: null,
    rampSeconds,
    windowSeconds,
    streamSecondsExpected: o.streamSecondsExpected,
    rssBeforeBytes,
    rssDuringBytes,
    rssPerStreamKiB: round((rssDuringBytes - rssBeforeBytes) / 1024 / Math.max(1, streamsOpenAtEnd), 1),
    rssPerSubscriptionKiB: round((rssDuringBytes - rssBeforeBytes) / 1024 / Math.max(1, subscriptionsOpenAtEnd), 1),
    subscriptionsOpenAtEnd,
    cancelledByBench: 0,
    heapUsedBeforeBytes,
    heapUsedDuringBytes: metricValue(windowText, 'nodejs_heap_size_used_bytes'),
    eventLoopDelayMs: {
      p50: ms(metricValue(windowText, 'nodejs_eventloop_lag_p50_seconds')),
      p90: ms(metricValue(windowText, 'nodejs_eventloop_lag_p90_seconds')),
      p99: ms(metricValue(windowText, 'nodejs_eventloop_lag_p99_seconds')),
      max: ms(metricValue(windowText, 'nodejs_eventloop_lag_max_seconds')),
      mean: ms(metricValue(windowText, 'nodejs_eventloop_lag_mean_seconds')),
    },
    eventLoopDelayIdleMs: {
      p50: ms(metricValue(idleText, 'nodejs_eventloop_lag_p50_seconds')),
      p99: ms(metricValue(idleText, 'nodejs_eventloop_lag_p99_seconds')),
      max: ms(metricValue(idleText, 'nodejs_eventloop_lag_max_seconds')),
    },
    healthzMs: roundSummary(healthz.summary()),
    gatewayCpuCores: round((cpu1 - cpu0) / (windowSeconds * 1000), 3),
    tokensPerSecondDelivered: round(deltasInWindow / windowSeconds, 0),
  };

  // Let the flowing streams finish (each settles through the ledger), bounded by their expected length; then
  // cancel what is left (streams a cap held back), which the gateway settles as CLIENT_CANCELLED.
  const endDeadline = t0 + o.streamSecondsExpected * 1000 + Math.max(10_000, rampSeconds * 1000);
  while (ended < handles.length && performance.now() < endDeadline) {
    p.status(`many streams: ${handles.length - ended} still open, ${completed} completed`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const cancelledByBench = handles.length - ended;
  const errorsBeforeCancel = errors;
  const firstErrorBeforeCancel = firstError;
  for (const h of handles) h.cancel();
  await Promise.all(clients.map((c) => c.dispose()));
  p.log(`  many streams: ${completed} completed, ${errorsBeforeCancel} errors, ${cancelledByBench} still waiting were cancelled by the bench`);
  return { ...result, completed, errors: errorsBeforeCancel, firstError: firstErrorBeforeCancel, cancelledByBench };
}
