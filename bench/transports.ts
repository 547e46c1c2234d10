/**
 * `npm run bench:transports`: time to first token and the gateway's CPU per streamed event on each subscription
 * transport (graphql-ws, GraphQL over SSE, Apollo multipart), against the simulator at latency scale 0 (so TTFT is
 * the gateway's own work: auth, admission, write-ahead row, upstream hop) as separate processes.
 *   BENCH_STREAMS (200) streams per transport, one at a time; BENCH_DATABASE_URL; BENCH_REDIS_URL.
 * Prints a markdown table.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { cpuMs, startGatewayChild, startSimulatorChild } from './lib/procs';
import { createBenchTenant } from './lib/clients';
import { summarize } from './lib/stats';

const STREAMS = Number(process.env.BENCH_STREAMS ?? 200);
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/llm_gateway_bench_transports';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/13';
const ADMIN = 'bench-admin-key-0123456789abcdef0123456789';
const DOC = `subscription S($input: ChatInput!) { chatStream(input: $input) { requestId delta done usage { completionTokens costUsd } } }`;
const VARS = { input: { profile: 'chat_default', maxTokens: 150, messages: [{ role: 'USER', content: 'Explain recursion in 200 words' }] } };

type Run = (url: string, key: string) => Promise<{ ttftMs: number; events: number }>;

/** One stream over graphql-ws on an already open connection. */
function overWs(): Run & { close(): Promise<void> } {
  let client: ReturnType<typeof createClient> | null = null;
  const run: Run = (url, key) => {
    client ??= createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${key}` }, lazy: false });
    const t0 = performance.now();
    let ttft = -1;
    let events = 0;
    return new Promise((resolve, reject) =>
      client!.subscribe(
        { query: DOC, variables: VARS },
        {
          next: () => {
            if (ttft < 0) ttft = performance.now() - t0;
            events++;
          },
          error: reject,
          complete: () => resolve({ ttftMs: ttft, events }),
        },
      ),
    );
  };
  return Object.assign(run, { close: async () => void (await client?.dispose()) });
}

/** One stream over an HTTP streaming transport: counts events by their framing as they arrive. */
const overHttp =
  (accept: string, marker: string): Run =>
  async (url, key) => {
    const t0 = performance.now();
    const res = await fetch(url, {
      method: 'POST',
      headers: { accept, 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: DOC, variables: VARS }),
    });
    let ttft = -1;
    let events = 0;
    let buf = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf(marker)) >= 0) {
        if (ttft < 0) ttft = performance.now() - t0;
        events++;
        buf = buf.slice(i + marker.length);
      }
    }
    return { ttftMs: ttft, events };
  };

async function main() {
  const sim = await startSimulatorChild(0);
  const gw = await startGatewayChild({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, adminKey: ADMIN, upstreamUrl: sim.url });
  const rows: string[] = [];
  try {
    const ws = overWs();
    const transports: Array<[string, Run]> = [
      ['graphql-ws', ws],
      ['SSE (graphql-sse)', overHttp('text/event-stream', 'event: next')],
      ['multipart (Apollo)', overHttp('multipart/mixed;subscriptionSpec="1.0",application/json', '{"payload":')],
    ];
    for (const [name, run] of transports) {
      const { key } = await createBenchTenant(gw.graphqlUrl, ADMIN, `bench-${name.replace(/[^a-z-]/gi, '')}-${Date.now()}`);
      for (let i = 0; i < 10; i++) await run(gw.graphqlUrl, key); // warm-up
      const ttfts: number[] = [];
      let events = 0;
      const cpu0 = cpuMs(gw.child.pid);
      for (let i = 0; i < STREAMS; i++) {
        const r = await run(gw.graphqlUrl, key);
        ttfts.push(r.ttftMs);
        events += r.events;
      }
      const cpu = cpuMs(gw.child.pid) - cpu0;
      const s = summarize(ttfts);
      rows.push(
        `| ${name} | ${STREAMS} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} | ${(events / STREAMS).toFixed(0)} | ${((cpu * 1000) / events).toFixed(0)} | ${(cpu / STREAMS).toFixed(2)} |`,
      );
      process.stderr.write(`${rows.at(-1)}\n`);
    }
    await ws.close();
  } finally {
    await gw.child.stop();
    await sim.child.stop();
  }
  process.stdout.write(
    [
      '| transport | streams | TTFT p50 ms | TTFT p99 ms | events/stream | gateway CPU µs/event | gateway CPU ms/stream |',
      '|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n') + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
