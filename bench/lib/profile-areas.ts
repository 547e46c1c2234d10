import { area, type Profile } from './cpuprofile';

/**
 * The areas issue 12 asks a profile to be read by: which library (or which of the project's own folders) a sample's
 * self time belongs to. Packages are matched by name; the project's own code by its src/ folder.
 */
const PACKAGE_AREAS: ReadonlyArray<readonly [RegExp, string]> = [
  [
    /^(graphql|graphql-ws|graphql-sse|@graphql-tools\/.*|@escape\.tech\/.*|graphql-depth-limit|dataloader)$/,
    'graphql-js (parse, validate, execute; graphql-ws/sse)',
  ],
  [
    /^(@apollo\/.*|@as-integrations\/.*|express|body-parser|raw-body|router|finalhandler|send|serve-static|negotiator|accepts|type-is|content-type|cors|on-finished|qs|iconv-lite|http-errors|depd|mime-types|mime-db|statuses|whatwg-mimetype|lru-cache|loglevel|@whatwg-node\/.*)$/,
    'Apollo Server + express',
  ],
  [/^(ioredis|redis-parser|redis-errors|cluster-key-slot|denque|@ioredis\/.*|standard-as-callback)$/, 'ioredis'],
  [/^(pg|pg-protocol|pg-types|pg-pool|pg-connection-string|postgres-array|postgres-bytea|postgres-date|postgres-interval|pgpass)$/, 'pg'],
  [/^(@prisma\/.*|prisma)$/, 'Prisma'],
  [/^undici$/, 'undici'],
  [/^(ws|bufferutil|utf-8-validate)$/, 'ws (WebSocket frames)'],
  [
    /^(pino|pino-std-serializers|sonic-boom|thread-stream|fast-redact|quick-format-unescaped|atomic-sleep|on-exit-leak-free|safe-stable-stringify)$/,
    'pino (logging)',
  ],
  [/^(prom-client|tdigest|bintrees)$/, 'prom-client (metrics)'],
  [/^(@opentelemetry\/.*)$/, 'OpenTelemetry'],
  [/^(zod)$/, 'zod'],
];

// Named only when V8 samples them as native frames; otherwise JSON work is its JavaScript caller's self time.
const JSON_FUNCTIONS = new Set(['parse', 'stringify', 'JSONParse', 'JSONStringify']);

/** The area a function's self time is counted under. */
export function bucketOf(functionName: string, url: string): string {
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(idle)') return '(idle)';
  // V8 outside JavaScript (compilation, runtime calls); on a busy machine also the time the process was descheduled.
  if (functionName === '(program)') return '(program): V8 outside JS';
  if (!url && JSON_FUNCTIONS.has(functionName)) return 'JSON (parse, stringify)';
  // Prisma's query compiler runs as WebAssembly.
  if (url.startsWith('wasm://')) return 'Prisma';
  if (url.startsWith('node:internal/deps/undici')) return 'undici';
  const a = area(url);
  if (a.startsWith('src/')) return `ours: ${a.split('/').slice(0, 2).join('/')}/`;
  if (a === '(native/V8)') return `native: ${functionName || '(anonymous)'}`;
  if (a.startsWith('node:')) return 'Node core (net, http, streams, timers)';
  for (const [re, name] of PACKAGE_AREAS) if (re.test(a)) return name;
  return `other npm: ${a}`;
}

export interface AreaRow {
  readonly area: string;
  /** Self time in the window, ms. */
  readonly ms: number;
  /** Share of the busy (non-idle) time, %. */
  readonly share: number;
}

/** Self time by area between fromMs and toMs after the profile's start (a load window), busiest first. */
export function areasInWindow(p: Profile, fromMs: number, toMs: number): { busyMs: number; rows: AreaRow[] } {
  const byNode = new Map<number, number>();
  let t = p.startTime;
  const from = p.startTime + fromMs * 1000;
  const to = p.startTime + toMs * 1000;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    byNode.set(p.samples[i]!, (byNode.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const byArea = new Map<string, number>();
  for (const [id, us] of byNode) {
    const f = nodes.get(id)!.callFrame;
    const b = bucketOf(f.functionName, f.url);
    byArea.set(b, (byArea.get(b) ?? 0) + us);
  }
  byArea.delete('(idle)');
  const busyUs = [...byArea.values()].reduce((a, b) => a + b, 0);
  const rows = [...byArea]
    .sort((a, b) => b[1] - a[1])
    .map(([name, us]) => ({ area: name, ms: Math.round(us / 100) / 10, share: busyUs ? Math.round((us / busyUs) * 1000) / 10 : 0 }));
  return { busyMs: Math.round(busyUs / 1000), rows };
}
