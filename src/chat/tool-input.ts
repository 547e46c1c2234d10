import Ajv from 'ajv';
import { badInput } from '../errors';
import type { ToolCall, ToolChoice, ToolDefinition } from '../upstream/types';

/** ChatInput.tools, toolChoice and the tool fields of messages, as the API takes them. */
export interface ToolInput {
  readonly name: string;
  readonly description?: string | null;
  /** A JSON Schema object as JSON text. */
  readonly parameters?: string | null;
}

export interface ToolChoiceInput {
  readonly mode?: 'AUTO' | 'NONE' | 'REQUIRED' | null;
  readonly tool?: string | null;
}

export interface ToolMessageFields {
  readonly role: string;
  readonly toolCalls?: ReadonlyArray<ToolCall> | null;
  readonly toolCallId?: string | null;
}

export interface ToolFields {
  readonly messages: ReadonlyArray<ToolMessageFields>;
  readonly tools?: ReadonlyArray<ToolInput> | null;
  readonly toolChoice?: ToolChoiceInput | null;
}

/** OpenAI's limit on tools per request. */
export const MAX_TOOLS = 128;
/** OpenAI's rule for function names. */
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_TOOL_CALL_ID = 256;

// validateSchema checks a schema against the JSON Schema meta-schema (draft-07), which is what the upstream expects.
const ajv = new Ajv({ strict: false, validateSchema: true });

const bytes = (s: string | null | undefined): number => (s ? Buffer.byteLength(s, 'utf8') : 0);

/**
 * Checks the tool parts of a chat input and returns how many bytes they add to the request (they count toward
 * MAX_REQUEST_BYTES with the messages). Throws BAD_USER_INPUT naming the field for:
 * - more than MAX_TOOLS tools, a name that is not 1-64 of [A-Za-z0-9_-], a name given twice;
 * - parameters that are not JSON text of a JSON Schema object (top-level "type": "object");
 * - a toolChoice without tools, with neither or both of mode and tool, or naming a tool not in tools;
 * - toolCalls on a message that is not ASSISTANT; a call with an empty id, a bad name, arguments that are not JSON,
 *   or an id used twice;
 * - a TOOL message without toolCallId, a toolCallId on another role, or one that no earlier assistant call has.
 */
export function checkTools(input: ToolFields): { toolBytes: number } {
  let total = 0;
  const tools = input.tools ?? [];
  if (tools.length > MAX_TOOLS) throw badInput('tools', `expected at most ${MAX_TOOLS} tools, got ${tools.length}`);
  const names = new Set<string>();
  tools.forEach((t, i) => {
    const field = `tools[${i}]`;
    if (!FUNCTION_NAME.test(t.name)) throw badInput(`${field}.name`, `expected 1 to 64 letters, digits, underscores or dashes, got "${t.name.slice(0, 80)}"`);
    if (names.has(t.name)) throw badInput(`${field}.name`, `the tool "${t.name}" is defined twice`);
    names.add(t.name);
    if (t.parameters !== undefined && t.parameters !== null) checkParameters(`${field}.parameters`, t.parameters);
    total += bytes(t.name) + bytes(t.description) + bytes(t.parameters);
  });

  const choice = input.toolChoice;
  if (choice !== undefined && choice !== null) {
    if (tools.length === 0) throw badInput('toolChoice', 'is only allowed together with tools');
    const hasMode = choice.mode !== undefined && choice.mode !== null;
    const hasTool = choice.tool !== undefined && choice.tool !== null;
    if (hasMode === hasTool) throw badInput('toolChoice', 'give exactly one of mode (AUTO, NONE, REQUIRED) or tool (the name of one of tools)');
    if (hasTool && !names.has(choice.tool!)) {
      throw badInput('toolChoice.tool', `"${choice.tool!.slice(0, 80)}" is not one of the request's tools (${[...names].join(', ')})`);
    }
  }

  const callIds = new Set<string>();
  input.messages.forEach((m, i) => {
    const field = `messages[${i}]`;
    const calls = m.toolCalls ?? [];
    if (calls.length > 0 && m.role !== 'ASSISTANT') throw badInput(`${field}.toolCalls`, 'only ASSISTANT messages carry tool calls');
    calls.forEach((c, j) => {
      const f = `${field}.toolCalls[${j}]`;
      if (c.id.length < 1 || c.id.length > MAX_TOOL_CALL_ID) throw badInput(`${f}.id`, `expected 1 to ${MAX_TOOL_CALL_ID} characters, got ${c.id.length}`);
      if (callIds.has(c.id)) throw badInput(`${f}.id`, `the tool call id "${c.id.slice(0, 80)}" is used twice`);
      if (!FUNCTION_NAME.test(c.name)) throw badInput(`${f}.name`, `expected 1 to 64 letters, digits, underscores or dashes, got "${c.name.slice(0, 80)}"`);
      if (!isJson(c.arguments)) throw badInput(`${f}.arguments`, 'expected JSON text (the arguments as the model produced them)');
      callIds.add(c.id);
      total += bytes(c.id) + bytes(c.name) + bytes(c.arguments);
    });
    const answers = m.toolCallId;
    if (m.role === 'TOOL') {
      if (answers === undefined || answers === null || answers === '')
        throw badInput(`${field}.toolCallId`, 'is required on a TOOL message: the id of the tool call it answers');
      if (!callIds.has(answers))
        throw badInput(`${field}.toolCallId`, `"${answers.slice(0, 80)}" is not the id of a tool call in an earlier ASSISTANT message`);
      total += bytes(answers);
    } else if (answers !== undefined && answers !== null) {
      throw badInput(`${field}.toolCallId`, 'only TOOL messages carry a toolCallId');
    }
  });
  return { toolBytes: total };
}

function checkParameters(field: string, text: string): void {
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch {
    throw badInput(field, 'expected JSON text of a JSON Schema object, e.g. {"type":"object","properties":{}}');
  }
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema) || (schema as { type?: unknown }).type !== 'object') {
    throw badInput(field, 'expected a JSON Schema whose top-level "type" is "object"');
  }
  if (!ajv.validateSchema(schema as object)) {
    throw badInput(field, `is not a valid JSON Schema: ${ajv.errorsText(ajv.errors, { dataVar: 'parameters' }).slice(0, 300)}`);
  }
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The validated tools as the upstream client sends them (parameters parsed). */
export function upstreamTools(input: Pick<ToolFields, 'tools'>): ToolDefinition[] | undefined {
  const tools = input.tools ?? [];
  if (tools.length === 0) return undefined;
  return tools.map((t) => ({
    name: t.name,
    ...(t.description === undefined || t.description === null ? {} : { description: t.description }),
    ...(t.parameters === undefined || t.parameters === null ? {} : { parameters: JSON.parse(t.parameters) as Record<string, unknown> }),
  }));
}

const CHOICE_MODES = { AUTO: 'auto', NONE: 'none', REQUIRED: 'required' } as const;

export function upstreamToolChoice(input: Pick<ToolFields, 'toolChoice'>): ToolChoice | undefined {
  const c = input.toolChoice;
  if (c === undefined || c === null) return undefined;
  if (c.tool !== undefined && c.tool !== null) return { name: c.tool };
  return c.mode ? CHOICE_MODES[c.mode] : undefined;
}
