/**
 * Deterministic completions: how long an answer is, how many prompt tokens a request counts, and the text itself.
 * Everything here is a pure function of the request, so identical requests get identical answers (and tests and
 * benchmarks can predict usage exactly).
 */

/** The length of an answer when max_tokens does not cut it shorter. */
const NATURAL_COMPLETION_TOKENS = 150;

/** Tokens counted per message on top of its characters, as a stand-in for role and framing overhead. */
const TOKENS_PER_MESSAGE = 4;

// Each token is one word with a leading space, so the text reads as words and counting is trivial.
const WORDS = [
  'lorem',
  'ipsum',
  'dolor',
  'sit',
  'amet',
  'consectetur',
  'adipiscing',
  'elit',
  'sed',
  'do',
  'eiusmod',
  'tempor',
  'incididunt',
  'ut',
  'labore',
  'et',
  'dolore',
  'magna',
  'aliqua',
  'enim',
  'ad',
  'minim',
  'veniam',
  'quis',
  'nostrud',
  'exercitation',
  'ullamco',
  'laboris',
  'nisi',
  'aliquip',
  'ex',
  'ea',
  'commodo',
  'consequat',
  'duis',
  'aute',
  'irure',
  'in',
  'reprehenderit',
  'voluptate',
  'velit',
  'esse',
  'cillum',
  'fugiat',
  'nulla',
  'pariatur',
  'excepteur',
  'sint',
  'occaecat',
  'cupidatat',
  'non',
  'proident',
  'sunt',
  'culpa',
  'qui',
  'officia',
  'deserunt',
  'mollit',
  'anim',
  'id',
  'est',
  'laborum',
] as const;

const TOKENS: readonly string[] = WORDS.map((w) => ` ${w}`);

/** One chat message as far as the simulator cares: its text decides the prompt count and the seed. */
export interface PromptMessage {
  readonly role: string;
  readonly content?: unknown;
  /** An assistant turn's calls: their names and arguments are prompt text too. */
  readonly tool_calls?: unknown;
}

/** A function tool of a request. */
export interface SimTool {
  readonly name: string;
  readonly description?: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

export interface CompletionLength {
  readonly tokens: number;
  /** "length" when max_tokens cut the answer short, as OpenAI reports it. */
  readonly finishReason: 'stop' | 'length';
}

/** `natural` (150) tokens, or maxTokens when that is smaller. */
export function completionLength(maxTokens: number | undefined, natural = NATURAL_COMPLETION_TOKENS): CompletionLength {
  if (maxTokens !== undefined && maxTokens < natural) return { tokens: maxTokens, finishReason: 'length' };
  return { tokens: natural, finishReason: 'stop' };
}

/** The text of a message's content: a string, or the text parts of a content-part array; anything else is empty. */
function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let text = '';
  for (const part of content) {
    if (part !== null && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
      text += (part as { text: string }).text;
    }
  }
  return text;
}

/** The names and arguments of an assistant message's tool_calls, as text. */
function toolCallsText(calls: unknown): string {
  if (!Array.isArray(calls)) return '';
  let text = '';
  for (const c of calls) {
    const fn = c !== null && typeof c === 'object' ? (c as { function?: { name?: unknown; arguments?: unknown } }).function : undefined;
    if (typeof fn?.name === 'string') text += fn.name;
    if (typeof fn?.arguments === 'string') text += fn.arguments;
  }
  return text;
}

/**
 * Sum over the messages of ceil(characters / 4) + 4 (a message's characters include its tool calls' names and
 * arguments), plus, per tool, ceil(characters of name + description + JSON parameters / 4) + 4.
 */
export function promptTokens(messages: readonly PromptMessage[], tools: readonly SimTool[] = []): number {
  let total = 0;
  for (const m of messages) total += Math.ceil((messageText(m.content).length + toolCallsText(m.tool_calls).length) / 4) + TOKENS_PER_MESSAGE;
  for (const t of tools) total += Math.ceil((t.name + (t.description ?? '') + JSON.stringify(t.parameters ?? {})).length / 4) + TOKENS_PER_MESSAGE;
  return total;
}

/** FNV-1a over the model and the messages' roles and texts: a cheap, stable seed for the answer's text. */
function seedOf(model: string, messages: readonly PromptMessage[]): number {
  let h = 0x811c9dc5;
  const mix = (s: string): void => {
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0x1f; // separator, so ["ab","c"] and ["a","bc"] differ
    h = Math.imul(h, 0x01000193);
  };
  mix(model);
  for (const m of messages) {
    mix(m.role);
    mix(messageText(m.content));
  }
  return h >>> 0;
}

/**
 * The answer's tokens: `count` words cycling through a fixed list from an offset seeded by the request, so the
 * same model and messages always give the same text and different prompts usually give different text.
 */
export function completionTokens(model: string, messages: readonly PromptMessage[], count: number): string[] {
  const offset = seedOf(model, messages) % TOKENS.length;
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) out[i] = TOKENS[(offset + i) % TOKENS.length] as string;
  return out;
}
