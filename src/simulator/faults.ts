import { z } from 'zod';

/** The scripted faults of shared/api/simulator.md. */
export const FAULT_KINDS = ['http_500', 'http_503', 'http_429', 'timeout', 'cut', 'stall', 'no_usage', 'garbage', 'over_usage'] as const;
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
  | { readonly kind: 'over_usage'; readonly factor: number };

/** What POST /__sim/faults queues: a fault for the next `times` requests to `model` ("*" for any model). */
export interface FaultSpec {
  readonly model: string;
  readonly times: number;
  readonly fault: Fault;
}

export const ANY_MODEL = '*';
const DEFAULT_AFTER_TOKENS = 20;
const DEFAULT_DELAY_MS = 30_000;
const DEFAULT_OVER_USAGE_FACTOR = 3;

const specSchema = z.object({
  model: z.string({ error: 'model is required: a model id or "*"' }).min(1, 'model is required: a model id or "*"'),
  fault: z.enum(FAULT_KINDS, { error: `fault must be one of ${FAULT_KINDS.join(', ')}` }),
  times: z.number({ error: 'times must be a whole number >= 1' }).int('times must be a whole number >= 1').min(1, 'times must be a whole number >= 1').default(1),
  afterTokens: z
    .number({ error: 'afterTokens must be a whole number >= 0' })
    .int('afterTokens must be a whole number >= 0')
    .min(0, 'afterTokens must be a whole number >= 0')
    .default(DEFAULT_AFTER_TOKENS),
  delayMs: z.number({ error: 'delayMs must be a number >= 0' }).min(0, 'delayMs must be a number >= 0').default(DEFAULT_DELAY_MS),
  factor: z.number({ error: 'factor must be a whole number >= 1' }).int('factor must be a whole number >= 1').min(1, 'factor must be a whole number >= 1').default(DEFAULT_OVER_USAGE_FACTOR),
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
  const { fault: kind, times, afterTokens, delayMs, factor } = parsed.data;
  return { ok: true, spec: { model: parsed.data.model, times, fault: kind === 'over_usage' ? { kind, factor } : faultOf(kind, afterTokens, delayMs) } };
}

function faultOf(kind: Exclude<FaultKind, 'over_usage'>, afterTokens: number, delayMs: number): Fault {
  switch (kind) {
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
}

export function describeFault(spec: FaultSpec): FaultSpecView {
  const { kind, ...params } = spec.fault;
  return { model: spec.model, fault: kind, times: spec.times, ...params };
}
