import { z } from 'zod';

/** The scripted faults of shared/api/simulator.md. */
const FAULT_KINDS = ['http_500', 'http_503', 'http_429', 'timeout', 'cut', 'stall', 'no_usage', 'garbage', 'over_usage', 'tool_calls', 'cached'] as const;
/** How a tool_calls answer streams: see shared/api/simulator.md, last section. */
const TOOL_CALL_SHAPES = ['whole', 'split', 'parallel', 'cut'] as const;
export type ToolCallShape = (typeof TOOL_CALL_SHAPES)[number];
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A fault as one request meets it: only the parameters its kind uses. */
export type Fault =
  | { readonly kind: 'http_500' | 'http_503' | 'http_429' | 'no_usage' | 'garbage' }
  /** Accept, send nothing for delayMs, then close the connection. */
  | { readonly kind: 'timeout'; readonly delayMs: number }
  /** Stream afterTokens tokens, then close the connection (no [DONE], no usage). */
  | { readonly kind: 'cut'; readonly afterTokens: number }
  /** Stream afterTokens tokens, send nothing for delayMs, then close the connection. */
  | { readonly kind: 'stall'; readonly afterTokens: number; readonly delayMs: number }
  /** Answer normally, but report prompt and completion tokens multiplied by factor (hidden reasoning tokens). */
  | { readonly kind: 'over_usage'; readonly factor: number }
  /** Answer a request that has tools with a call of its first tool (parallel: two calls), streamed in this shape. */
  | { readonly kind: 'tool_calls'; readonly shape: ToolCallShape }
  /** Report this many of the prompt tokens as read from / written to the prompt cache (capped at the prompt). */
  | { readonly kind: 'cached'; readonly cachedTokens: number; readonly cacheWriteTokens: number };

/** What POST /__sim/faults queues: a fault for the next `times` requests to `model` ("*" for any model). */
export interface FaultSpec {
  readonly model: string;
  readonly times: number;
  readonly fault: Fault;
}

const ANY_MODEL = '*';
const DEFAULT_AFTER_TOKENS = 20;
const DEFAULT_DELAY_MS = 30_000;
const DEFAULT_OVER_USAGE_FACTOR = 3;

const count = (name: string) =>
  z
    .number({ error: `${name} must be a whole number >= 0` })
    .int(`${name} must be a whole number >= 0`)
    .min(0, `${name} must be a whole number >= 0`)
    .default(0);

const specSchema = z.object({
  model: z.string({ error: 'model is required: a model id or "*"' }).min(1, 'model is required: a model id or "*"'),
  fault: z.enum(FAULT_KINDS, { error: `fault must be one of ${FAULT_KINDS.join(', ')}` }),
  times: z
    .number({ error: 'times must be a whole number >= 1' })
    .int('times must be a whole number >= 1')
    .min(1, 'times must be a whole number >= 1')
    .default(1),
  afterTokens: z
    .number({ error: 'afterTokens must be a whole number >= 0' })
    .int('afterTokens must be a whole number >= 0')
    .min(0, 'afterTokens must be a whole number >= 0')
    .default(DEFAULT_AFTER_TOKENS),
  delayMs: z.number({ error: 'delayMs must be a number >= 0' }).min(0, 'delayMs must be a number >= 0').default(DEFAULT_DELAY_MS),
  factor: z
    .number({ error: 'factor must be a whole number >= 1' })
    .int('factor must be a whole number >= 1')
    .min(1, 'factor must be a whole number >= 1')
    .default(DEFAULT_OVER_USAGE_FACTOR),
  shape: z.enum(TOOL_CALL_SHAPES, { error: `shape must be one of ${TOOL_CALL_SHAPES.join(', ')}` }).default('whole'),
  cachedTokens: count('cachedTokens'),
  cacheWriteTokens: count('cacheWriteTokens'),
});

export type ParsedFaultSpec = { readonly ok: true; readonly spec: FaultSpec } | { readonly ok: false; readonly message: string };

/**
 * Validates a POST /__sim/faults body. Fails (never throws) with a message naming every wrong field, including a
 * model that is neither "*" nor one of knownModels.
 */
export function parseFaultSpec(body: unknown, knownModels: ReadonlySet<string>): ParsedFaultSpec {
  const parsed = specSchema.safeParse(body);
  const model: unknown = body !== null && typeof body === 'object' ? (body as { model?: unknown }).model : undefined;
  const modelProblem =
    typeof model === 'string' && model !== '' && model !== ANY_MODEL && !knownModels.has(model)
      ? `unknown model ${JSON.stringify(model)}: expected "*" or one of ${[...knownModels].join(', ')}`
      : undefined;
  if (!parsed.success || modelProblem !== undefined) {
    const problems = [...(modelProblem === undefined ? [] : [modelProblem]), ...(parsed.error?.issues.map((i) => i.message) ?? [])];
    return { ok: false, message: problems.join('; ') };
  }
  const { times } = parsed.data;
  return { ok: true, spec: { model: parsed.data.model, times, fault: faultOf(parsed.data) } };
}

function faultOf(p: {
  fault: FaultKind;
  afterTokens: number;
  delayMs: number;
  factor: number;
  shape: ToolCallShape;
  cachedTokens: number;
  cacheWriteTokens: number;
}): Fault {
  const { fault: kind, afterTokens, delayMs } = p;
  switch (kind) {
    case 'over_usage':
      return { kind, factor: p.factor };
    case 'tool_calls':
      return { kind, shape: p.shape };
    case 'cached':
      return { kind, cachedTokens: p.cachedTokens, cacheWriteTokens: p.cacheWriteTokens };
    case 'timeout':
      return { kind, delayMs };
    case 'cut':
      return { kind, afterTokens };
    case 'stall':
      return { kind, afterTokens, delayMs };
    case 'http_500':
    case 'http_503':
    case 'http_429':
    case 'no_usage':
    case 'garbage':
      return { kind };
    default: {
      const never: never = kind;
      throw new Error(`unhandled fault kind ${String(never)}`);
    }
  }
}

interface QueuedFault {
  readonly model: string;
  readonly fault: Fault;
  remaining: number;
}

/**
 * Queued faults, consumed in the order they were queued. A request consumes at most one fault: the oldest one
 * queued for its own model, or failing that the oldest one for "*".
 */
export class FaultQueue {
  private queue: QueuedFault[] = [];

  add(spec: FaultSpec): void {
    this.queue.push({ model: spec.model, fault: spec.fault, remaining: spec.times });
  }

  /** The fault the next request to `model` meets, consumed; undefined when none is queued for it. */
  take(model: string): Fault | undefined {
    if (this.queue.length === 0) return undefined;
    let index = this.queue.findIndex((q) => q.model === model);
    if (index < 0) index = this.queue.findIndex((q) => q.model === ANY_MODEL);
    const entry = this.queue[index];
    if (entry === undefined) return undefined;
    entry.remaining--;
    if (entry.remaining <= 0) this.queue.splice(index, 1);
    return entry.fault;
  }

  /** Empties the queue; returns how many fault entries were dropped. */
  clear(): number {
    const n = this.queue.length;
    this.queue = [];
    return n;
  }

  /** The queue as GET /__sim/faults shows it, times being what is left of each entry. */
  list(): readonly FaultSpecView[] {
    return this.queue.map((q) => describeFault({ model: q.model, times: q.remaining, fault: q.fault }));
  }
}

/** A queued fault in the shape POST /__sim/faults takes. */
export interface FaultSpecView {
  readonly model: string;
  readonly fault: FaultKind;
  readonly times: number;
  readonly afterTokens?: number;
  readonly delayMs?: number;
  readonly shape?: ToolCallShape;
  readonly cachedTokens?: number;
  readonly cacheWriteTokens?: number;
}

export function describeFault(spec: FaultSpec): FaultSpecView {
  const { kind, ...params } = spec.fault;
  return { model: spec.model, fault: kind, times: spec.times, ...params };
}
