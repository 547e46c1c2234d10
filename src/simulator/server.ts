import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { MODEL_TABLE, type ModelRow } from '../catalog/model-table';
import { answerChat } from './answer-chat';
import { lookUpModel, parseChatRequest } from './chat-request';
import { Exchange, REAL_TIMERS, type SimTimers } from './exchange';
import { describeFault, FaultQueue, parseFaultSpec } from './faults';
import { BodyTooLargeError, readBody, sendError, sendJson } from './http-io';
import { modelList } from './openai-format';
import { paceFor } from './pace';
import { SimStats } from './stats';

export interface SimulatorOptions {
  /** 0 (the default) picks a free port. */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Multiplies every model latency; 0 answers at once without scheduling a single timer. Default 1. */
  readonly latencyScale?: number;
  /** An answer's length when max_tokens does not cut it shorter; default 150 (NATURAL_COMPLETION_TOKENS). */
  readonly answerTokens?: number;
  /** Timer functions; tests inject counting ones. Default: the global setTimeout/clearTimeout. */
  readonly timers?: SimTimers;
}

export interface Simulator {
  /** Base URL of the OpenAI-compatible API, with /v1 (e.g. http://127.0.0.1:4010/v1). */
  readonly url: string;
  readonly port: number;
  /** Ends every open response (clearing its timers), drops keep-alive connections and stops listening. */
  close(): Promise<void>;
}

const MODELS: ReadonlyMap<string, ModelRow> = new Map(MODEL_TABLE.map((m) => [m.id, m]));
const MODEL_IDS: ReadonlySet<string> = new Set(MODELS.keys());
const MODEL_LIST_JSON = JSON.stringify(modelList(MODEL_TABLE));
const BEARER = /^Bearer\s+\S/i;

/** What one simulator's handlers share: its fault queue, counters, open exchanges and pacing. */
interface SimState {
  readonly scale: number;
  /** Every answer's length in tokens when set (benchmarks), instead of the prompt's own. */
  readonly answerTokens: number | undefined;
  readonly timers: SimTimers;
  readonly faults: FaultQueue;
  readonly stats: SimStats;
  readonly open: Set<Exchange>;
  nextId: number;
}

/**
 * Starts the local OpenAI-compatible upstream of shared/api/simulator.md. Rejects when the port cannot be bound or
 * latencyScale is not a finite number >= 0.
 */
export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const scale = opts.latencyScale ?? 1;
  if (!Number.isFinite(scale) || scale < 0) throw new RangeError(`latencyScale must be a finite number >= 0, got ${scale}`);
  const host = opts.host ?? '127.0.0.1';
  const state: SimState = {
    scale,
    answerTokens: opts.answerTokens,
    timers: opts.timers ?? REAL_TIMERS,
    faults: new FaultQueue(),
    stats: new SimStats(),
    open: new Set(),
    nextId: 1,
  };

  const server = createServer((req, res) => {
    route(state, req, res).catch((err: unknown) => {
      // A bug, not a scripted fault: answer 500 if still possible, else drop the connection.
      if (!res.headersSent) sendError(res, 500, `simulator error: ${(err as Error).message}`, 'server_error', 'simulator_error');
      else res.destroy();
    });
  });
  // Benchmarks reuse pooled connections; a long idle window keeps the pool from reconnecting between bursts.
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/v1`,
    port,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const ex of state.open) ex.shutdown();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function route(state: SimState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const { faults, stats, open } = state;
  switch (path) {
    case '/v1/chat/completions':
      if (req.method === 'POST') return chatCompletion(state, req, res);
      break;
    case '/v1/models':
      if (req.method === 'GET') return authorized(req) ? sendJson(res, 200, MODEL_LIST_JSON) : unauthorized(res);
      break;
    case '/__sim/faults':
      if (req.method === 'POST') return postFault(faults, req, res);
      if (req.method === 'DELETE') return sendJson(res, 200, { cleared: faults.clear() });
      if (req.method === 'GET') return sendJson(res, 200, { faults: faults.list() });
      break;
    case '/__sim/stats':
      if (req.method === 'GET') return sendJson(res, 200, stats.snapshot(open.size));
      if (req.method === 'DELETE') {
        stats.reset();
        return sendJson(res, 200, stats.snapshot(open.size));
      }
      break;
    default:
      return sendError(res, 404, `Unknown path ${path}`, 'invalid_request_error', 'unknown_url');
  }
  sendError(res, 405, `Method ${req.method ?? ''} not allowed on ${path}`, 'invalid_request_error', 'method_not_allowed');
}

async function chatCompletion(state: SimState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now();
  if (!authorized(req)) return unauthorized(res);
  let raw: string;
  try {
    raw = await readBody(req);
  } catch (err) {
    if (err instanceof BodyTooLargeError) sendError(res, 413, err.message, 'invalid_request_error', 'request_too_large');
    return; // otherwise the client went away mid-body: nobody to answer
  }
  const lookup = lookUpModel(raw, MODELS);
  if (!lookup.ok) return sendError(res, lookup.error.status, lookup.error.message, 'invalid_request_error', lookup.error.code, lookup.error.param);
  state.stats.countRequest(lookup.model.id);
  const parsed = parseChatRequest(lookup.model, lookup.body);
  if (!parsed.ok) return sendError(res, 400, parsed.error.message, 'invalid_request_error', parsed.error.code, parsed.error.param);
  if (res.destroyed) return;

  const request = state.answerTokens === undefined ? parsed.request : { ...parsed.request, answerTokens: state.answerTokens };
  const fault = state.faults.take(request.model.id);
  const region = String(req.headers['x-region'] ?? '').toUpperCase() === 'ASIA' ? 'ASIA' : 'US_EAST';
  const ex = new Exchange(res, startedAt, state.timers, (end) => {
    state.open.delete(ex);
    if (end === 'aborted_by_client') state.stats.countAbortByClient();
  });
  state.open.add(ex);
  answerChat(ex, request, fault, paceFor(request.model, region, state.scale), {
    id: `chatcmpl-sim${state.nextId++}`,
    created: Math.floor(Date.now() / 1000),
    model: request.model.id,
  });
}

async function postFault(faults: FaultQueue, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body: unknown;
  try {
    body = JSON.parse(await readBody(req));
  } catch (err) {
    if (res.destroyed) return;
    return sendError(res, 400, `fault body must be JSON: ${(err as Error).message}`, 'invalid_request_error', 'invalid_json');
  }
  const parsed = parseFaultSpec(body, MODEL_IDS);
  if (!parsed.ok) return sendError(res, 400, parsed.message, 'invalid_request_error', 'invalid_fault');
  faults.add(parsed.spec);
  sendJson(res, 201, { queued: describeFault(parsed.spec) });
}

function authorized(req: IncomingMessage): boolean {
  const h = req.headers.authorization;
  return h !== undefined && BEARER.test(h);
}

function unauthorized(res: ServerResponse): void {
  sendError(
    res,
    401,
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    'invalid_request_error',
    'invalid_api_key',
  );
}
