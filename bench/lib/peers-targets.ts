import { request } from 'undici';
import { CHAT_DOC, CHAT_INPUT, MODEL, PROMPT, connected, gatewayStreamOp, pool, sseOp, upstreamBody, wsClient } from './clients';
import type { OpSample } from './load';
import type { TargetId } from './peers-results';

/** The non-streamed request a target is measured with (sent by wrk or autocannon). */
export interface TargetRequest {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly expect: string;
}

/** A streamed closed-loop operation over `concurrency` open connections, and their clean-up. */
export interface StreamSession {
  readonly op: (worker: number) => Promise<OpSample>;
  close(): Promise<void>;
}

export interface Target {
  readonly id: TargetId;
  /** The process in the middle (the simulator for direct): its CPU is the target's. */
  readonly pid: number;
  request(answerTokens: number): TargetRequest;
  openStreams(answerTokens: number, concurrency: number): Promise<StreamSession>;
}

/** A target that speaks OpenAI's chat completions: direct, the undici hop, Portkey (with its routing headers). */
export function openAiTarget(id: TargetId, pid: number, origin: string, extraHeaders: Record<string, string> = {}): Target {
  return {
    id,
    pid,
    request: (tokens) => ({
      url: `${origin}/v1/chat/completions`,
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench', ...extraHeaders },
      body: upstreamBody(false, MODEL, PROMPT, tokens),
      expect: '"choices"',
    }),
    async openStreams(tokens, concurrency) {
      const p = pool(origin, concurrency);
      return { op: sseOp(p, upstreamBody(true, MODEL, PROMPT, tokens), extraHeaders), close: () => p.close() };
    },
  };
}

/** A target that answers the gateway's own documents: the gateway, and the bare Apollo hop. */
export function graphqlTarget(id: TargetId, pid: number, graphqlUrl: string, key: string): Target {
  const input = (tokens: number) => ({ ...CHAT_INPUT, maxTokens: tokens });
  return {
    id,
    pid,
    request: (tokens) => ({
      url: graphqlUrl,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: CHAT_DOC, operationName: 'Chat', variables: { input: input(tokens) } }),
      expect: '"content":"',
    }),
    async openStreams(tokens, concurrency) {
      const clients = Array.from({ length: concurrency }, () => wsClient(graphqlUrl, key));
      try {
        await Promise.all(clients.map((c) => connected(c)));
      } catch (e) {
        await Promise.all(clients.map((c) => c.dispose()));
        throw e;
      }
      return { op: gatewayStreamOp(clients, input(tokens)), close: async () => void (await Promise.all(clients.map((c) => c.dispose()))) };
    },
  };
}

/**
 * One non-streamed request and one stream through the target before anything is timed; the reason it fails, or
 * null. A target that answers wrong would otherwise be measured at the speed of its error path.
 */
export async function checkTarget(t: Target, answerTokens: number): Promise<string | null> {
  const q = t.request(answerTokens);
  try {
    const r = await request(q.url, { method: 'POST', headers: q.headers, body: q.body, headersTimeout: 15_000, bodyTimeout: 15_000 });
    const text = await r.body.text();
    if (r.statusCode !== 200 || !text.includes(q.expect)) return `non-streamed check: HTTP ${r.statusCode} ${text.slice(0, 300)}`;
    const tokens = /"(?:completion_tokens|completionTokens)":(\d+)/.exec(text)?.[1];
    if (Number(tokens) !== answerTokens) return `non-streamed check: expected a ${answerTokens}-token answer, got ${tokens ?? 'no usage'}`;
    const s = await t.openStreams(answerTokens, 1);
    try {
      const one = await s.op(0);
      if (!one.ok || one.ttftMs === undefined) return `streamed check: ${one.error ?? 'no first token'}`;
    } finally {
      await s.close();
    }
    return null;
  } catch (e) {
    return `check failed: ${(e as Error).message}`;
  }
}
