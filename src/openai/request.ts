import { z } from 'zod';
import { badInput } from '../errors';
import type { Catalog, Region } from '../catalog/types';
import type { ChatInput, ChatRole } from '../chat/chat-input';

/**
 * An OpenAI chat.completions request body, checked and mapped onto the chat use case's ChatInput. Only the shape is
 * checked here; the caps (message count and bytes, max_tokens per profile, temperature range) are the use case's own,
 * so this surface and GraphQL refuse the same requests with the same words.
 */

const TextPart = z.object({ type: z.literal('text'), text: z.string() });
const ToolCallIn = z.object({ id: z.string(), type: z.literal('function'), function: z.object({ name: z.string(), arguments: z.string() }) });
const Message = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  // null on an assistant message that only called tools, as OpenAI's SDK sends it back.
  content: z.union([z.string(), z.array(TextPart).min(1)]).nullish(),
  name: z.string().optional(),
  tool_calls: z.array(ToolCallIn).nullish(),
  tool_call_id: z.string().nullish(),
});
const Tool = z.object({
  type: z.literal('function'),
  function: z.object({ name: z.string(), description: z.string().nullish(), parameters: z.record(z.string(), z.unknown()).nullish() }),
});
const ToolChoice = z.union([z.enum(['auto', 'none', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })]);

const ChatCompletionBody = z.object({
  model: z.string().min(1),
  messages: z.array(Message),
  max_tokens: z.number().int().nullish(),
  max_completion_tokens: z.number().int().nullish(),
  temperature: z.number().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  n: z.literal(1).nullish(),
  tools: z.array(Tool).nullish(),
  tool_choice: ToolChoice.nullish(),
});

/**
 * Fields that would change the answer in ways the gateway cannot honour: refused by name rather than silently
 * dropped. Anything else (user, metadata, top_p, seed...) is accepted and not forwarded.
 */
const UNSUPPORTED = ['functions', 'function_call', 'logprobs', 'top_logprobs', 'audio', 'modalities', 'prediction'] as const;

const ROLE: Record<z.infer<typeof Message>['role'], ChatRole> = { system: 'SYSTEM', developer: 'SYSTEM', user: 'USER', assistant: 'ASSISTANT', tool: 'TOOL' };
const CHOICE_MODE = { auto: 'AUTO', none: 'NONE', required: 'REQUIRED' } as const;

export interface OpenAIChatRequest {
  readonly input: ChatInput;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** The `model` as the client sent it, echoed in every answer. */
  readonly requested: string;
}

const REGIONS: Record<string, Region> = { us_east: 'US_EAST', 'us-east': 'US_EAST', asia: 'ASIA' };

/** The `x-region` header: absent means US_EAST, as in GraphQL; anything else unknown is BAD_USER_INPUT. */
export function parseRegion(header: unknown): Region | null {
  if (header === undefined) return null;
  const r = typeof header === 'string' ? REGIONS[header.trim().toLowerCase()] : undefined;
  if (!r) throw badInput('x-region', `expected US_EAST or ASIA, got "${String(header).slice(0, 40)}"`);
  return r;
}

/**
 * Body + headers -> ChatInput. `model` names a profile (routed with the tenant's overrides) or, when no profile has
 * that name, a model id (routed to that model and its default fallbacks; NOT_FOUND when the catalog lacks it too).
 *
 * @throws AppError BAD_USER_INPUT naming the OpenAI parameter (`messages[0].content`, `max_tokens`...).
 */
export function parseChatRequest(body: unknown, headers: { idempotencyKey: unknown; region: unknown }, catalog: Catalog): OpenAIChatRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badInput('body', 'expected a JSON object');
  for (const name of UNSUPPORTED) {
    const v = (body as Record<string, unknown>)[name];
    if (v !== undefined && v !== null && v !== false) throw badInput(name, 'is not supported by this gateway; leave it out');
  }
  const parsed = ChatCompletionBody.safeParse(body, { reportInput: true });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || 'body';
    throw badInput(param, describeIssue(issue));
  }
  const b = parsed.data;
  const stream = b.stream === true;
  const key = headers.idempotencyKey;
  if (key !== undefined && stream) throw badInput('Idempotency-Key', 'is honoured on non-streamed requests only; leave it out or set stream to false');
  if (b.max_tokens != null && b.max_completion_tokens != null && b.max_tokens !== b.max_completion_tokens) {
    throw badInput('max_completion_tokens', 'differs from max_tokens; send one of them');
  }
  const region = parseRegion(headers.region);
  const isProfile = catalog.profiles.has(b.model);
  const maxTokens = b.max_completion_tokens ?? b.max_tokens;
  // Absent fields stay absent (not null), as GraphQL leaves them: the same request through either API hashes the
  // same for idempotency.
  const input: ChatInput = {
    profile: b.model,
    ...(isProfile ? {} : { model: b.model }),
    // Tool fields map onto the use case's, which validates them as it does for GraphQL (names, schemas, call ids).
    messages: b.messages.map((m) => ({
      role: ROLE[m.role],
      content: m.content == null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
      ...(m.tool_calls?.length ? { toolCalls: m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })) } : {}),
      ...(m.tool_call_id != null ? { toolCallId: m.tool_call_id } : {}),
    })),
    ...(b.tools?.length
      ? {
          tools: b.tools.map((t) => ({
            name: t.function.name,
            ...(t.function.description != null ? { description: t.function.description } : {}),
            ...(t.function.parameters != null ? { parameters: JSON.stringify(t.function.parameters) } : {}),
          })),
        }
      : {}),
    ...(b.tool_choice != null
      ? { toolChoice: typeof b.tool_choice === 'string' ? { mode: CHOICE_MODE[b.tool_choice] } : { tool: b.tool_choice.function.name } }
      : {}),
    ...(maxTokens != null ? { maxTokens } : {}),
    ...(b.temperature != null ? { temperature: b.temperature } : {}),
    ...(region ? { region } : {}),
    ...(typeof key === 'string' ? { idempotencyKey: key } : {}),
  };
  return { input, stream, includeUsage: stream && b.stream_options?.include_usage === true, requested: b.model };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${issue.expected}${issue.input === undefined ? ', but it is missing' : `, got ${typeOf(issue.input)}`}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_union':
      return 'expected a string or an array of {"type":"text","text":...} parts';
    case 'too_small':
      return 'must not be empty';
    default:
      return issue.message;
  }
}

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
