import { completionTokens, type PromptMessage, type SimTool } from './completion';
import type { ToolCallShape } from './faults';
import type { StreamFramer, WireToolCall } from './openai-format';

/** Characters of arguments per chunk when arguments are split. */
export const ARGUMENT_PIECE_CHARS = 8;

/** One planned call: whole, and its arguments cut into the pieces a split stream sends. */
export interface PlannedCall extends WireToolCall {
  readonly pieces: readonly string[];
}

export interface ToolCallAnswer {
  readonly calls: readonly PlannedCall[];
  /**
   * The SSE chunks of the answer, in order, one per paced "token": whole sends one chunk per call; split, parallel
   * and cut send each call as a first chunk (id, name, empty arguments) followed by one chunk per argument piece.
   */
  readonly frames: readonly string[];
  /** cut: how many frames go out before the connection dies (always in the middle of the arguments). */
  readonly cutAfter: number | null;
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
  request: { readonly model: string; readonly messages: readonly PromptMessage[]; readonly tools: readonly SimTool[] },
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
  const frames: string[] = [];
  calls.forEach((c, index) => {
    const head = { index, id: c.id, type: 'function', function: { name: c.name, arguments: shape === 'whole' ? c.arguments : '' } };
    frames.push(framer.toolCalls(frames.length === 0, [head]));
    if (shape === 'whole') return;
    for (const piece of c.pieces) frames.push(framer.toolCalls(false, [{ index, function: { arguments: piece } }]));
  });
  return {
    calls,
    frames,
    // The first call's head and half its pieces (rounded down, so never all of them): the arguments stop mid-JSON.
    cutAfter: shape === 'cut' ? 1 + Math.floor(calls[0]!.pieces.length / 2) : null,
    completionTokens: calls.reduce((n, c) => n + 1 + c.pieces.length, 0),
  };
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
