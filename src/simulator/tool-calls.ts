import { completionTokens, type PromptMessage, type SimTool } from './completion';
import type { ToolCallShape } from './faults';
import type { StreamFramer, WireToolCall } from './openai-format';

/** Characters of arguments per chunk when arguments are split. */
const ARGUMENT_PIECE_CHARS = 8;

/** One planned call: whole, and its arguments cut into the pieces a split stream sends. */
export interface PlannedCall extends WireToolCall {
  readonly pieces: readonly string[];
}

export interface ToolCallAnswer {
  readonly calls: readonly PlannedCall[];
  /** The calls as far as max_tokens let them go (all of them, whole, unless finishReason is length). */
  readonly sent: readonly WireToolCall[];
  /**
   * The SSE chunks of the answer, in order, one per paced "token": whole sends one chunk per call; split, parallel
   * and cut send each call as a first chunk (id, name, empty arguments) followed by one chunk per argument piece.
   */
  readonly frames: readonly string[];
  /** cut: how many frames go out before the connection dies (always in the middle of the arguments). */
  readonly cutAfter: number | null;
  /** tool_calls, or length when max_tokens stopped the calls short. */
  readonly finishReason: 'tool_calls' | 'length';
  /**
   * What usage reports as completion tokens: the chunks of the split form (one per call plus one per piece),
   * whatever the shape, so a cut stream's delivered chunks are directly comparable.
   */
  readonly completionTokens: number;
}

/**
 * The deterministic tool-call answer of a request with tools: its first tool called once (parallel: its first two
 * tools, or the first one twice). Arguments follow the tool's JSON Schema properties: strings get words seeded by
 * the request, numbers and integers the call's position (1, 2...), booleans true, anything else null.
 */
export function planToolCalls(
  request: { readonly model: string; readonly messages: readonly PromptMessage[]; readonly tools: readonly SimTool[]; readonly maxTokens: number | undefined },
  shape: ToolCallShape,
  idBase: string,
  framer: StreamFramer,
): ToolCallAnswer {
  const first = request.tools[0]!;
  const chosen = shape === 'parallel' ? [first, request.tools[1] ?? first] : [first];
  const words = completionTokens(request.model, request.messages, 3).join('').trim();
  const calls = chosen.map((tool, i): PlannedCall => {
    const args = JSON.stringify(argumentsFor(tool, i + 1, words));
    const pieces: string[] = [];
    for (let at = 0; at < args.length; at += ARGUMENT_PIECE_CHARS) pieces.push(args.slice(at, at + ARGUMENT_PIECE_CHARS));
    return { id: `call_${idBase}_${i}`, name: tool.name, arguments: args, pieces };
  });
  const tokens = calls.reduce((n, c) => n + 1 + c.pieces.length, 0);
  // Like a real model, the calls stop at max_tokens (finish_reason length): then they stream split, one chunk a token.
  const limited = request.maxTokens !== undefined && request.maxTokens < tokens;
  const whole = shape === 'whole' && !limited;
  const frames: string[] = [];
  calls.forEach((c, index) => {
    const head = { index, id: c.id, type: 'function', function: { name: c.name, arguments: whole ? c.arguments : '' } };
    frames.push(framer.toolCalls(frames.length === 0, [head]));
    if (whole) return;
    for (const piece of c.pieces) frames.push(framer.toolCalls(false, [{ index, function: { arguments: piece } }]));
  });
  if (limited) frames.length = request.maxTokens!;
  return {
    calls,
    sent: limited ? truncate(calls, request.maxTokens!) : calls,
    frames,
    // The first call's head and half its pieces (rounded down, so never all of them): the arguments stop mid-JSON.
    cutAfter: shape === 'cut' ? Math.min(1 + Math.floor(calls[0]!.pieces.length / 2), frames.length) : null,
    finishReason: limited ? 'length' : 'tool_calls',
    completionTokens: limited ? request.maxTokens! : tokens,
  };
}

/** The calls a split stream of `tokens` chunks delivers: each call's head chunk, then its pieces, in order. */
function truncate(calls: readonly PlannedCall[], tokens: number): WireToolCall[] {
  const out: WireToolCall[] = [];
  let left = tokens;
  for (const c of calls) {
    if (left === 0) break;
    const pieces = Math.min(left - 1, c.pieces.length);
    out.push({ id: c.id, name: c.name, arguments: c.pieces.slice(0, pieces).join('') });
    left -= 1 + pieces;
  }
  return out;
}

function argumentsFor(tool: SimTool, position: number, words: string): Record<string, unknown> {
  const props = tool.parameters?.properties;
  const out: Record<string, unknown> = {};
  if (props === null || typeof props !== 'object' || Array.isArray(props)) return out;
  for (const [key, schema] of Object.entries(props as Record<string, unknown>)) {
    const type = schema !== null && typeof schema === 'object' ? (schema as { type?: unknown }).type : undefined;
    out[key] = type === 'string' ? words : type === 'number' || type === 'integer' ? position : type === 'boolean' ? true : null;
  }
  return out;
}
