import type { Principal } from '../tenants/principal';
import type { Drain } from './drain';
import type { ChatInput } from './chat-input';
import { validate, type ValidateDeps } from './steps/validate';
import { admit, type AdmissionGuard, type AdmitDeps, type Admitted } from './steps/admit';
import { startRun, type RunDeps, type RunEvent } from './steps/run';
import { settle, type Final, type SettleDeps } from './steps/settle';
import type { Windows } from './steps/gate';

export type ChatDeps = ValidateDeps & AdmitDeps & RunDeps & SettleDeps & { readonly drain: Pick<Drain, 'enter' | 'deadline'> };

/** Optional observers of one request, for edges that must name it before it ends (e.g. an x-request-id header). */
export interface ChatHooks {
  /** Called once the request is admitted, with the requestId of its ledger row and the tenant's windows after it. */
  readonly onAdmitted?: (requestId: string, windows: Windows) => void;
}

/** What one chat request tells its transport, in order: admitted, content, final; or one answer from the guard. */
export type StoryEvent<A> =
  | { readonly type: 'admitted'; readonly request: Admitted }
  | RunEvent
  | { readonly type: 'final'; readonly final: Final }
  | { readonly type: 'answered'; readonly answer: A };

/**
 * One chat request, each step once and in order: validate (steps/validate.ts) -> admit: reserve, write ahead
 * (steps/admit.ts) -> run (steps/run.ts) -> settle (steps/settle.ts). Settlement happens whatever ends the run
 * (completion, failure, the consumer stopping, an exception) and before the final event; the drain waits until
 * the consumer took that event. `guard` may answer instead of running (an idempotency key's replay).
 */
export async function* chatStory<A = never>(
  deps: ChatDeps,
  principal: Principal,
  input: ChatInput,
  mode: 'collect' | 'stream',
  signal: AbortSignal,
  hooks?: ChatHooks,
  guard?: AdmissionGuard<A>,
): AsyncGenerator<StoryEvent<A>> {
  const v = await validate(deps, principal, input, mode);
  const admission = await admit(deps, v, input, guard);
  if (admission.kind === 'answered') {
    yield { type: 'answered', answer: admission.answer };
    return;
  }
  const a = admission.request;
  hooks?.onAdmitted?.(a.requestId, a.windows);
  const leave = deps.drain.enter();
  try {
    yield { type: 'admitted', request: a };
    const run = startRun(deps, a, input, mode, signal);
    let final: Final;
    try {
      yield* run.events();
    } finally {
      // Whatever ended the run (an error included: the edge logs and masks it), the request settles here.
      final = await settle(deps, a, run.end());
    }
    yield { type: 'final', final };
  } finally {
    // Left only after the consumer took the final event (or stopped iterating): the drain then closes clients.
    leave();
  }
}
