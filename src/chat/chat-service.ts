import { AppError } from '../errors';
import type { Principal } from '../tenants/principal';
import { admit, validate, type AdmissionDeps, type Validated } from './admission';
import { runChat, type Final, type RunDeps } from './run-chat';
import { hashInput, type Idempotency, type StoredOutcome } from './idempotency';
import type { ChatInput } from './chat-input';
import type { ChatResult, ChatStreamEvent } from './types';

/** Optional observers of one request, for edges that must name it before it ends (e.g. an x-request-id header). */
export interface ChatHooks {
  /** Called once the request is admitted, with the requestId of its ledger row. */
  readonly onAdmitted?: (requestId: string) => void;
}

export interface ChatService {
  /** The chat mutation: the whole answer, settled before it returns. Idempotent with input.idempotencyKey. */
  complete(principal: Principal, input: ChatInput, signal: AbortSignal, hooks?: ChatHooks): Promise<ChatResult>;
  /**
   * chatStream: content events, then one done event for every stream that delivered content. Throws
   * UPSTREAM_UNAVAILABLE when the chain failed before any content. Abort `signal` when the client goes away.
   */
  stream(principal: Principal, input: ChatInput, signal: AbortSignal, hooks?: ChatHooks): AsyncGenerator<ChatStreamEvent>;
}

export type ChatServiceDeps = AdmissionDeps & RunDeps & { readonly idempotency: Idempotency };

const toStoredResult = (r: ChatResult): StoredOutcome => ({
  kind: 'result',
  value: { ...r, usage: { ...r.usage, costUsd: r.usage.costUsd.toString() } },
});

function fromStored(o: StoredOutcome): ChatResult {
  if (o.kind === 'error') throw new AppError(o.code, o.message, o.extensions);
  const v = o.value as ChatResult & { usage: { costUsd: string } };
  return { ...v, usage: { ...v.usage, costUsd: BigInt(v.usage.costUsd) } };
}

export function makeChatService(deps: ChatServiceDeps): ChatService {
  async function collect(input: ChatInput, signal: AbortSignal, v: Validated, hooks?: ChatHooks) {
    const a = await admit(deps, v, input);
    hooks?.onAdmitted?.(a.requestId);
    let content = '';
    let final: Final | null = null;
    for await (const ev of runChat(deps, a, input, 'collect', signal)) {
      if (ev.type === 'delta') content += ev.text;
      else if (ev.type === 'discard') content = '';
      else final = ev.final;
    }
    if (!final) throw new Error('run ended without a final event');
    return { a, final, content };
  }

  return {
    async complete(principal, input, signal, hooks) {
      const v = await validate(deps, principal, input, 'collect');
      const key = input.idempotencyKey ?? null;
      if (key === null) {
        const { a, final, content } = await collect(input, signal, v, hooks);
        if (final.error) throw final.error;
        return toResult(a.requestId, final, content);
      }
      const { idempotencyKey: _omit, ...rest } = input;
      const claim = await deps.idempotency.claim(v.tenant.id, key, hashInput(rest), signal);
      if (claim.kind === 'replay') return fromStored(claim.outcome);
      let outcome: StoredOutcome | null = null;
      try {
        const { a, final, content } = await collect(input, signal, v, hooks);
        if (final.error) {
          if (final.usage.costUsd > 0n) {
            outcome = { kind: 'error', code: final.error.code, message: final.error.message, extensions: { ...final.error.extensions } };
          }
          throw final.error;
        }
        const result = toResult(a.requestId, final, content);
        outcome = toStoredResult(result);
        return result;
      } finally {
        // Failed with nothing charged (denied, unavailable, bad input): release the key so a retry runs afresh.
        await (outcome ? deps.idempotency.finish(v.tenant.id, key, outcome) : deps.idempotency.release(v.tenant.id, key)).catch((e) =>
          deps.logger.error({ err: e }, 'idempotency key update failed'),
        );
      }
    },

    async *stream(principal, input, signal, hooks) {
      const v = await validate(deps, principal, input, 'stream');
      const a = await admit(deps, v, input);
      hooks?.onAdmitted?.(a.requestId);
      let model = a.plan.chain[0]!.model.id;
      for await (const ev of runChat(deps, a, input, 'stream', signal)) {
        if (ev.type === 'delta') {
          model = ev.model;
          yield { requestId: a.requestId, model, delta: ev.text, done: false, outcome: null, usage: null, ttftMs: null, attempts: null };
        } else if (ev.type === 'final') {
          const f = ev.final;
          if (f.error && (f.outcome === 'FAILED' || !f.model)) throw f.error;
          if (f.outcome === 'CLIENT_CANCELLED' && !f.model) return;
          yield { requestId: a.requestId, model: f.model ?? model, delta: null, done: true, outcome: f.outcome, usage: f.usage, ttftMs: f.ttftMs, attempts: f.attempts };
        }
      }
    },
  };
}

function toResult(requestId: string, f: Final, content: string): ChatResult {
  if (!f.model) throw new AppError('UPSTREAM_UNAVAILABLE', 'no model answered', { attempts: f.attempts });
  return { requestId, model: f.model, content, outcome: f.outcome, usage: f.usage, ttftMs: f.ttftMs, totalMs: f.totalMs, attempts: f.attempts };
}

