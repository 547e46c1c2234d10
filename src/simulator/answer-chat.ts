import { completionLength, completionTokens, promptTokens } from './completion';
import type { ChatRequest } from './chat-request';
import type { Exchange } from './exchange';
import type { Fault, ToolCallShape } from './faults';
import { sendError, sendJson } from './http-io';
import {
  completionJson,
  DONE_FRAME,
  GARBAGE_JSON,
  GARBAGE_SSE,
  streamFramer,
  toolCallsJson,
  usageOf,
  withCache,
  type CompletionIdentity,
  type StreamFramer,
  type Usage,
} from './openai-format';
import type { Pace } from './pace';
import { planToolCalls } from './tool-calls';

const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } as const;

/** How an answer ends once its tokens are out: normally, or by one of the mid-answer faults. */
type Ending =
  | { readonly kind: 'finish'; readonly usage: boolean }
  | { readonly kind: 'cut'; readonly afterTokens: number }
  | { readonly kind: 'stall'; readonly afterTokens: number; readonly delayMs: number };

/**
 * Writes the answer to a validated chat completion request onto its exchange, paced by `pace` and shaped by the
 * fault the request consumed, if any. Returns at once; the rest happens on the exchange's timer (or synchronously
 * when the pace is instant).
 */
export function answerChat(ex: Exchange, request: ChatRequest, fault: Fault | undefined, pace: Pace, who: CompletionIdentity): void {
  switch (fault?.kind) {
    case undefined:
      return answer(ex, request, pace, who, { kind: 'finish', usage: true });
    case 'no_usage':
      return answer(ex, request, pace, who, { kind: 'finish', usage: false });
    case 'over_usage':
      return answer(ex, request, pace, who, { kind: 'finish', usage: true }, { usageFactor: fault.factor });
    case 'cached':
      return answer(ex, request, pace, who, { kind: 'finish', usage: true }, { cache: fault });
    case 'tool_calls':
      // Without tools there is nothing to call: the answer is the usual text.
      if (request.tools.length === 0) return answer(ex, request, pace, who, { kind: 'finish', usage: true });
      return answerToolCalls(ex, request, pace, who, fault.shape);
    case 'cut':
      return answer(ex, request, pace, who, { kind: 'cut', afterTokens: fault.afterTokens });
    case 'stall':
      return answer(ex, request, pace, who, { kind: 'stall', afterTokens: fault.afterTokens, delayMs: fault.delayMs });
    case 'http_500':
      return sendError(ex.res, 500, 'The server had an error while processing your request. Sorry about that!', 'server_error', 'internal_error');
    case 'http_503':
      return sendError(ex.res, 503, 'The engine is currently overloaded, please try again later.', 'server_error', 'service_unavailable');
    case 'http_429':
      return sendError(ex.res, 429, 'Rate limit reached for requests. Please try again in 1s.', 'requests', 'rate_limit_exceeded', null, {
        'retry-after': '1',
      });
    case 'timeout':
      return ex.after(fault.delayMs, () => ex.closeConnection());
    case 'garbage':
      return ex.at(pace.tokenDueMs(0), () => {
        if (request.stream) {
          ex.res.writeHead(200, { ...SSE_HEADERS, connection: 'close' });
          ex.res.end(GARBAGE_SSE);
        } else {
          sendJson(ex.res, 200, GARBAGE_JSON, { connection: 'close' });
        }
      });
    default: {
      const never: never = fault;
      throw new Error(`unhandled fault ${JSON.stringify(never)}`);
    }
  }
}

/** What the usage reports beyond the plain count: over_usage multiplies it, cached splits the prompt. */
interface UsageTwist {
  readonly usageFactor?: number;
  readonly cache?: { readonly cachedTokens: number; readonly cacheWriteTokens: number };
}

function answer(ex: Exchange, request: ChatRequest, pace: Pace, who: CompletionIdentity, ending: Ending, twist: UsageTwist = {}): void {
  const length = completionLength(request.maxTokens, request.answerTokens);
  const tokens = completionTokens(request.model.id, request.messages, length.tokens);
  const factor = twist.usageFactor ?? 1;
  const plain = usageOf(promptTokens(request.messages, request.tools) * factor, length.tokens * factor);
  const usage = twist.cache ? withCache(plain, twist.cache.cachedTokens, twist.cache.cacheWriteTokens) : plain;
  if (request.stream) {
    const framer = streamFramer(who);
    const frames = { count: tokens.length, frame: (i: number) => framer.token(i, tokens[i] as string) };
    streamAnswer(ex, pace, framer, frames, length.finishReason, request.includeUsage ? usage : undefined, ending);
  } else {
    jsonAnswer(ex, pace, who, tokens, length.finishReason, usage, ending);
  }
}

/** A tool_calls answer (see tool-calls.ts): streamed in its shape, or one JSON message carrying tool_calls. */
function answerToolCalls(ex: Exchange, request: ChatRequest, pace: Pace, who: CompletionIdentity, shape: ToolCallShape): void {
  const framer = streamFramer(who);
  const plan = planToolCalls(
    { model: request.model.id, messages: request.messages, tools: request.tools, maxTokens: request.maxTokens },
    shape,
    who.id,
    framer,
  );
  const usage = usageOf(promptTokens(request.messages, request.tools), plan.completionTokens);
  const ending: Ending = plan.cutAfter === null ? { kind: 'finish', usage: true } : { kind: 'cut', afterTokens: plan.cutAfter };
  if (request.stream) {
    const frames = { count: plan.frames.length, frame: (i: number) => plan.frames[i] as string };
    return streamAnswer(ex, pace, framer, frames, plan.finishReason, request.includeUsage ? usage : undefined, ending);
  }
  if (ending.kind === 'cut') return ex.at(pace.doneMs(ending.afterTokens), () => ex.closeConnection());
  ex.at(pace.doneMs(plan.frames.length), () => sendJson(ex.res, 200, toolCallsJson(who, plan.sent, plan.finishReason, usage)));
}

function jsonAnswer(ex: Exchange, pace: Pace, who: CompletionIdentity, tokens: readonly string[], finishReason: string, usage: Usage, ending: Ending): void {
  switch (ending.kind) {
    case 'finish':
      return ex.at(pace.doneMs(tokens.length), () =>
        sendJson(ex.res, 200, completionJson(who, tokens.join(''), finishReason, ending.usage ? usage : undefined)),
      );
    case 'cut':
      // Nothing is sent: the connection dies while the answer is being generated.
      return ex.at(pace.doneMs(Math.min(ending.afterTokens, tokens.length)), () => ex.closeConnection());
    case 'stall':
      return ex.at(pace.doneMs(Math.min(ending.afterTokens, tokens.length)), () => ex.after(ending.delayMs, () => ex.closeConnection()));
  }
}

/**
 * One SSE chunk per token (or tool-call piece), each written when due; chunks already due are written together, so
 * an instant pace writes the whole stream, headers included, in a single synchronous end() with no timer.
 */
function streamAnswer(
  ex: Exchange,
  pace: Pace,
  framer: StreamFramer,
  frames: { readonly count: number; frame(i: number): string },
  finishReason: string,
  usage: Usage | undefined,
  ending: Ending,
): void {
  const res = ex.res;
  res.writeHead(200, SSE_HEADERS);
  if (!pace.instant) res.flushHeaders();
  const limit = ending.kind === 'finish' ? frames.count : Math.min(ending.afterTokens, frames.count);
  let next = 0;
  // With afterTokens 0 the client still gets the 200 and its headers before the connection dies or goes silent.
  const writeOrFlush = (batch: string): void => {
    if (batch !== '') res.write(batch);
    else if (!res.headersSent) res.flushHeaders();
  };

  const step = (): void => {
    const now = ex.elapsedMs();
    let batch = '';
    while (next < limit && pace.tokenDueMs(next) <= now) {
      batch += frames.frame(next);
      next++;
    }
    if (next < limit) {
      if (batch !== '') res.write(batch);
      ex.at(pace.tokenDueMs(next), step);
      return;
    }
    switch (ending.kind) {
      case 'finish':
        res.end(batch + framer.final(finishReason) + (ending.usage && usage !== undefined ? framer.usage(usage) : '') + DONE_FRAME);
        return;
      case 'cut':
        writeOrFlush(batch);
        ex.closeConnection();
        return;
      case 'stall':
        writeOrFlush(batch);
        ex.after(ending.delayMs, () => ex.closeConnection());
        return;
    }
  };
  step();
}
