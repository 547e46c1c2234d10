import type { ModelRow } from '../catalog/model-table';
import type { PromptMessage, SimTool } from './completion';

/** A chat completion request after validation. */
export interface ChatRequest {
  readonly model: ModelRow;
  readonly messages: readonly PromptMessage[];
  readonly maxTokens: number | undefined;
  readonly stream: boolean;
  /** stream_options.include_usage; only meaningful when stream is true. */
  readonly includeUsage: boolean;
  /** The request's function tools, in order ([] when none). */
  readonly tools: readonly SimTool[];
  /** The answer's length when max_tokens does not cut it shorter: the simulator's setting (default 150). */
  readonly answerTokens?: number;
}

/** Why a request is refused, in OpenAI's terms (status, error code, the offending parameter). */
export interface ChatRequestError {
  readonly status: 400 | 404;
  readonly code: string;
  readonly param: string | null;
  readonly message: string;
}

export type ModelLookup =
  { readonly ok: true; readonly model: ModelRow; readonly body: Record<string, unknown> } | { readonly ok: false; readonly error: ChatRequestError };
export type ParsedChatRequest = { readonly ok: true; readonly request: ChatRequest } | { readonly ok: false; readonly error: ChatRequestError };

const invalid = (param: string | null, message: string): { ok: false; error: ChatRequestError } => ({
  ok: false,
  error: { status: 400, code: 'invalid_request_error', param, message },
});

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * First step: the body is JSON naming a model the simulator knows (400 for bad JSON or no model, 404 for an
 * unknown one). Split from the rest so the caller can count the request per model before validating the rest.
 * Hand-written rather than zod: this is the hot path of every benchmark.
 */
export function lookUpModel(rawBody: string, models: ReadonlyMap<string, ModelRow>): ModelLookup {
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch {
    return invalid(null, 'We could not parse the JSON body of your request. The request body must be a JSON object.');
  }
  if (!isObject(body)) return invalid(null, 'The request body must be a JSON object.');
  if (typeof body.model !== 'string' || body.model === '') return invalid('model', 'You must provide a model parameter.');
  const model = models.get(body.model);
  if (model === undefined) {
    return {
      ok: false,
      error: { status: 404, code: 'model_not_found', param: 'model', message: `The model \`${body.model}\` does not exist or you do not have access to it.` },
    };
  }
  return { ok: true, model, body };
}

/** Second step: messages, max_tokens (or max_completion_tokens), stream and stream_options. */
export function parseChatRequest(model: ModelRow, body: Record<string, unknown>): ParsedChatRequest {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    return invalid('messages', "'messages' is required: a non-empty array of messages.");
  }
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    if (!isObject(m) || typeof m.role !== 'string') return invalid(`messages[${i}]`, `messages[${i}] must be an object with a string 'role'.`);
  }

  const rawMax = body.max_tokens ?? body.max_completion_tokens;
  let maxTokens: number | undefined;
  if (rawMax !== undefined && rawMax !== null) {
    if (typeof rawMax !== 'number' || !Number.isInteger(rawMax) || rawMax < 1) {
      return invalid('max_tokens', "'max_tokens' must be a whole number >= 1.");
    }
    maxTokens = rawMax;
  }

  const stream = body.stream ?? false;
  if (typeof stream !== 'boolean') return invalid('stream', "'stream' must be a boolean.");

  let includeUsage = false;
  const options = body.stream_options;
  if (options !== undefined && options !== null) {
    if (!isObject(options)) return invalid('stream_options', "'stream_options' must be an object.");
    const iu = options.include_usage ?? false;
    if (typeof iu !== 'boolean') return invalid('stream_options.include_usage', "'stream_options.include_usage' must be a boolean.");
    includeUsage = iu;
  }

  const tools = parseTools(body.tools);
  if (!Array.isArray(tools)) return tools;
  return { ok: true, request: { model, messages: messages as PromptMessage[], maxTokens, stream, includeUsage, tools } };
}

/** OpenAI's `tools`: an array of { type: "function", function: { name, description?, parameters? } }. */
function parseTools(raw: unknown): SimTool[] | { ok: false; error: ChatRequestError } {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) return invalid('tools', "'tools' must be an array of function tools.");
  const tools: SimTool[] = [];
  for (let i = 0; i < raw.length; i++) {
    const t: unknown = raw[i];
    const fn = isObject(t) && t.type === 'function' && isObject(t.function) ? t.function : null;
    if (fn === null || typeof fn.name !== 'string' || fn.name === '') {
      return invalid(`tools[${i}]`, `tools[${i}] must be {"type":"function","function":{"name":...}}.`);
    }
    tools.push({
      name: fn.name,
      ...(typeof fn.description === 'string' ? { description: fn.description } : {}),
      ...(isObject(fn.parameters) ? { parameters: fn.parameters } : {}),
    });
  }
  return tools;
}
