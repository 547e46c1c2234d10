import { AppError, UnreachableCaseError } from '../errors';
import { ToolCallAssembler } from './tool-call-assembler';
import type { StoryEvent } from './chat-story';
import type { Final } from './steps/settle';
import type { ChatResult } from './types';

/** A collected request: its final and whole content, or the guard's answer. */
export type Collected<A> =
  | {
      readonly kind: 'final';
      readonly requestId: string;
      readonly final: Final;
      readonly content: { readonly text: string; readonly toolCalls: ChatResult['toolCalls'] };
    }
  | { readonly kind: 'answered'; readonly answer: A };

/** The chat mutation's consumer of the story: content is gathered; a discarded attempt's content is dropped. */
export async function collect<A>(events: AsyncGenerator<StoryEvent<A>>): Promise<Collected<A>> {
  let requestId = '';
  let text = '';
  const calls = new ToolCallAssembler();
  for await (const ev of events) {
    switch (ev.type) {
      case 'answered':
        return { kind: 'answered', answer: ev.answer };
      case 'admitted':
        requestId = ev.request.requestId;
        break;
      case 'delta':
        text += ev.text;
        break;
      case 'tool_calls':
        calls.add(ev.deltas);
        break;
      case 'discard':
        text = '';
        calls.reset();
        break;
      case 'final':
        return { kind: 'final', requestId, final: ev.final, content: { text, toolCalls: calls.calls() } };
      default:
        throw new UnreachableCaseError(ev);
    }
  }
  throw new Error('run ended without a final event');
}

/** The answer of a request that delivered content, whatever its outcome; one that ended in error throws it. */
export function toResult(requestId: string, f: Final, answer: { text: string; toolCalls: ChatResult['toolCalls'] }): ChatResult {
  if (f.error) throw f.error;
  if (!f.model) throw new AppError('UPSTREAM_UNAVAILABLE', 'no model answered', { attempts: f.attempts });
  return {
    requestId,
    model: f.model,
    content: answer.text,
    outcome: f.outcome,
    usage: f.usage,
    ttftMs: f.ttftMs,
    totalMs: f.totalMs,
    attempts: f.attempts,
    toolCalls: answer.toolCalls,
    finishReason: f.finishReason,
  };
}
