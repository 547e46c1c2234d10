/**
 * The GraphQL floor of `npm run bench:peers`: the same stack as the gateway (Apollo Server 5 on express 5, graphql-ws
 * on the same port and path, an undici Pool to the upstream) and nothing else: no auth, no Redis, no Postgres, no
 * routing. It answers the gateway's own `chat` and `chatStream` documents (a subset of the contract's types), so the
 * load generator sends both the very same request and the difference is what the checks cost.
 *
 * Env: HOP_PORT, HOP_UPSTREAM (an OpenAI-compatible base URL with /v1), HOP_MODEL (the model every profile maps
 * to). GET /healthz answers once it listens.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import { makeExecutableSchema } from '@graphql-tools/schema';
import express from 'express';
import { useServer } from 'graphql-ws/use/ws';
import { Pool, type Dispatcher } from 'undici';
import { WebSocketServer } from 'ws';
import { createSseEventDecoder } from '../../src/upstream/sse-events';

const upstream = new URL(process.env.HOP_UPSTREAM ?? 'http://127.0.0.1:4010/v1');
const model = process.env.HOP_MODEL ?? 'deepseek-v4-flash';
const pool = new Pool(upstream.origin, { connections: 1024, keepAliveTimeout: 65_000 });

const typeDefs = /* GraphQL */ `
  enum ChatRole {
    SYSTEM
    USER
    ASSISTANT
  }
  enum Outcome {
    COMPLETED
  }
  enum UsageSource {
    PROVIDER
  }
  input ChatMessageInput {
    role: ChatRole!
    content: String!
  }
  input ChatInput {
    profile: String!
    messages: [ChatMessageInput!]!
    maxTokens: Int
  }
  "costUsd is always null here: the hop prices nothing."
  type Usage {
    promptTokens: Int!
    completionTokens: Int!
    costUsd: String
    source: UsageSource!
  }
  type ChatResult {
    requestId: ID!
    model: String!
    content: String!
    outcome: Outcome!
    usage: Usage!
    ttftMs: Int
    totalMs: Int!
  }
  type ChatStreamEvent {
    requestId: ID!
    model: String!
    delta: String
    done: Boolean!
    outcome: Outcome
    usage: Usage
    ttftMs: Int
  }
  type Query {
    ok: Boolean!
  }
  type Mutation {
    chat(input: ChatInput!): ChatResult!
  }
  type Subscription {
    chatStream(input: ChatInput!): ChatStreamEvent!
  }
`;

interface ChatInput {
  readonly messages: ReadonlyArray<{ role: string; content: string }>;
  readonly maxTokens?: number | null;
}

interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

let seq = 0;
const usageOf = (u: OpenAiUsage) => ({ promptTokens: u.prompt_tokens, completionTokens: u.completion_tokens, costUsd: null, source: 'PROVIDER' });

function callUpstream(input: ChatInput, stream: boolean) {
  const body = JSON.stringify({
    model,
    messages: input.messages.map((m) => ({ role: m.role.toLowerCase(), content: m.content })),
    max_tokens: input.maxTokens ?? 1024,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
  return pool.request({
    method: 'POST',
    path: `${upstream.pathname}/chat/completions`,
    headers: { 'content-type': 'application/json', authorization: 'Bearer hop' },
    body,
  });
}

/** A non-200 answer becomes a GraphQL error (its body read, so the pooled connection is reused). */
async function failUnlessOk(r: Dispatcher.ResponseData): Promise<void> {
  if (r.statusCode === 200) return;
  await r.body.dump();
  throw new Error(`upstream answered ${r.statusCode}`);
}

async function chat(input: ChatInput) {
  const t0 = performance.now();
  const r = await callUpstream(input, false);
  await failUnlessOk(r);
  const j = (await r.body.json()) as { choices: Array<{ message: { content: string } }>; usage: OpenAiUsage };
  const totalMs = Math.round(performance.now() - t0);
  return { requestId: `hop-${++seq}`, model, content: j.choices[0]!.message.content, outcome: 'COMPLETED', usage: usageOf(j.usage), ttftMs: totalMs, totalMs };
}

/** One event per content delta, as the gateway sends them, then a done event with the usage. */
async function* chatStream(input: ChatInput) {
  const t0 = performance.now();
  const requestId = `hop-${++seq}`;
  const r = await callUpstream(input, true);
  await failUnlessOk(r);
  const decoder = createSseEventDecoder();
  let ttftMs: number | null = null;
  let usage: ReturnType<typeof usageOf> | null = null;
  for await (const chunk of r.body) {
    for (const ev of decoder.push(chunk as Buffer)) {
      if (ev.type === 'usage') {
        usage = usageOf({ prompt_tokens: ev.promptTokens, completion_tokens: ev.completionTokens });
        continue;
      }
      if (ev.type !== 'delta') continue; // tool calls and finish reasons: this hop streams text only
      ttftMs ??= Math.round(performance.now() - t0);
      yield { chatStream: { requestId, model, delta: ev.text, done: false, outcome: null, usage: null, ttftMs } };
    }
  }
  yield { chatStream: { requestId, model, delta: null, done: true, outcome: 'COMPLETED', usage, ttftMs } };
}

const schema = makeExecutableSchema({
  typeDefs,
  resolvers: {
    Query: { ok: () => true },
    Mutation: { chat: (_: unknown, a: { input: ChatInput }) => chat(a.input) },
    Subscription: { chatStream: { subscribe: (_: unknown, a: { input: ChatInput }) => chatStream(a.input) } },
  },
});

async function main(): Promise<void> {
  const app = express();
  const server = http.createServer(app);
  const wss = new WebSocketServer({ server, path: '/graphql' });
  const ws = useServer({ schema }, wss);
  const apollo = new ApolloServer({ schema, stopOnTerminationSignals: false });
  await apollo.start();
  app.get('/healthz', (_req, res) => void res.json({ ok: true }));
  app.use('/graphql', express.json(), expressMiddleware(apollo));
  server.keepAliveTimeout = 65_000;
  server.listen(Number(process.env.HOP_PORT), '127.0.0.1');
  process.once('SIGTERM', () => {
    void Promise.all([ws.dispose(), apollo.stop(), pool.close()]).finally(() => {
      server.closeAllConnections();
      server.close(() => process.exit(0));
    });
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`apollo hop failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
