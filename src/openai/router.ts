import { usableCatalog } from '../tenants/access';
import { randomUUID } from 'node:crypto';
import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import { AppError, isAppError, rethrowUnavailable } from '../errors';
import type { Logger } from '../infra/logger';
import type { Services } from '../services';
import type { Metrics } from '../server/metrics';
import { requireTenant, type Principal } from '../tenants/principal';
import type { TenantSettings } from '../tenants/tenant-store';
import type { ChatStreamEvent } from '../chat/types';
import { OPENAI_EXPOSED_HEADERS } from './cors';
import { corsMiddleware, type OriginPolicy } from '../server/cors';
import { toOpenAIError } from './errors';
import { listModels } from './models';
import { rateLimitHeaders, snapshotOf } from './rate-headers';
import type { Windows } from '../chat/steps/gate';
import type { ChatHooks } from '../chat/chat-service';
import { parseChatRequest, parseRegion, type OpenAIChatRequest } from './request';
import { chunkMaker, completionBody } from './responses';
import { SseWriter } from './sse';

export interface OpenAIRouterOptions {
  /** Browser origins allowed: the same policy as /graphql (CORS_ORIGINS). */
  readonly origins: OriginPolicy;
  readonly services: Services;
  readonly logger: Logger;
  /** Largest accepted request body; larger ones get 413. */
  readonly maxBodyBytes: number;
  /** Counts requests refused before authentication, as /graphql does. */
  readonly metrics?: Pick<Metrics, 'refusals'>;
}

/** Per-request state the answer's headers are built from. */
interface Exchange {
  requestId: string;
  tenant: TenantSettings | null;
  /** The tenant's rolling windows once the request was admitted: the remaining and reset headers come from them. */
  windows?: Windows;
}

/**
 * The OpenAI-compatible surface, mounted at /v1: POST /chat/completions (streamed or not) and GET /models. It calls
 * the same chat use case as GraphQL, so admission, the write-ahead ledger, settlement, idempotency and the caps are
 * the same; this file only translates requests, answers and errors.
 */
export function openaiRouter(o: OpenAIRouterOptions): express.Router {
  const router = express.Router();
  router.use(corsMiddleware(o.origins, { expose: OPENAI_EXPOSED_HEADERS }));
  router.get('/models', async (req, res) => {
    const x: Exchange = { requestId: randomUUID(), tenant: null };
    try {
      const data = await modelsFor(o, req, x);
      res.set(headersOf(x)).json({ object: 'list', data });
    } catch (e) {
      sendError(o, res, x, e);
    }
  });
  router.get('/models/:id', async (req, res) => {
    const x: Exchange = { requestId: randomUUID(), tenant: null };
    try {
      const entry = (await modelsFor(o, req, x)).find((m) => m.id === req.params.id);
      if (!entry)
        throw new AppError('NOT_FOUND', `model: no profile or model named "${req.params.id.slice(0, 64)}" that this key may call`, { field: 'model' });
      res.set(headersOf(x)).json(entry);
    } catch (e) {
      sendError(o, res, x, e);
    }
  });
  router.post('/chat/completions', express.json({ limit: o.maxBodyBytes }), (req, res) => chatCompletions(o, req, res));
  router.use((_req, res) => {
    res.status(404).json({
      error: {
        message: 'unknown endpoint: this gateway serves POST /v1/chat/completions and GET /v1/models',
        type: 'invalid_request_error',
        param: null,
        code: 'unknown_url',
      },
    });
  });
  router.use(bodyErrors(o));
  return router;
}

/**
 * Syncs the epoch (admin changes apply to the next request), authenticates, loads the tenant's limits. Postgres or
 * Redis failing here is 503 service_unavailable, as on /graphql, not a masked 500.
 */
async function authenticate(o: OpenAIRouterOptions, req: Request, x: Exchange): Promise<Principal> {
  const { services } = o;
  try {
    await services.epoch.sync();
    const principal = await services.auth.authenticate(req.headers.authorization);
    if (principal.kind === 'tenant') x.tenant = await services.tenants.get(principal.tenantId);
    return principal;
  } catch (e) {
    o.metrics?.refusals.inc({ code: isAppError(e) ? e.code : 'SERVICE_UNAVAILABLE' });
    return rethrowUnavailable('Postgres or Redis')(e);
  }
}

function headersOf(x: Exchange, denial: AppError | null = null): Record<string, string> {
  const rate = x.tenant
    ? rateLimitHeaders(
        snapshotOf(x.tenant, denial?.code === 'RATE_LIMITED' ? (denial.extensions as { limit: unknown; retryAfterMs: unknown }) : null, x.windows),
      )
    : {};
  return { 'x-request-id': x.requestId, ...rate };
}

function sendError(o: OpenAIRouterOptions, res: Response, x: Exchange, e: unknown): void {
  const err = toOpenAIError(e, o.logger.child({ requestId: x.requestId }));
  res
    .status(err.status)
    .set({ ...headersOf(x, isAppError(e) ? e : null), ...err.headers })
    .json(err.body);
}

/** Aborted when the client goes away before the answer was written: the use case settles CLIENT_CANCELLED. */
function clientSignal(res: Response): AbortSignal {
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new Error('client closed the connection'));
  });
  return ac.signal;
}

/** The models a tenant key may call (the admin key is not a tenant: FORBIDDEN). */
async function modelsFor(o: OpenAIRouterOptions, req: Request, x: Exchange) {
  requireTenant(await authenticate(o, req, x), 'GET /v1/models');
  const region = parseRegion(req.headers['x-region']) ?? 'US_EAST';
  return listModels(usableCatalog(await o.services.catalog.get(), x.tenant!.modelAccess), x.tenant!.overrides, region, o.services.routing);
}

/** POST /v1/chat/completions: one answer as JSON, or an SSE stream when `stream: true`. */
async function chatCompletions(o: OpenAIRouterOptions, req: Request, res: Response): Promise<void> {
  const { services } = o;
  const x: Exchange = { requestId: randomUUID(), tenant: null };
  const started = performance.now();
  try {
    const principal = await authenticate(o, req, x);
    const request = parseChatRequest(
      req.body,
      { idempotencyKey: req.headers['idempotency-key'], region: req.headers['x-region'] },
      await services.catalog.get(),
    );
    const signal = clientSignal(res);
    const hooks = {
      onAdmitted: (id: string, windows: Windows) => {
        x.requestId = id;
        x.windows = windows;
      },
    };
    if (request.stream) await streamAnswer(o, res, x, { principal, r: request, signal, hooks });
    else {
      const result = await services.chat.complete(principal, request.input, signal, hooks);
      x.requestId = result.requestId; // an idempotent replay answers with the first request's id
      res.set(headersOf(x)).json(completionBody(result, request.input.maxTokens ?? null));
    }
  } catch (e) {
    if (res.headersSent) o.logger.error({ err: e, requestId: x.requestId }, 'OpenAI-compatible stream failed after it started');
    else sendError(o, res, x, e);
  } finally {
    o.logger.info(
      { requestId: x.requestId, tenantId: x.tenant?.id, status: res.statusCode, ms: Math.round(performance.now() - started) },
      'openai chat.completions',
    );
  }
}

interface StreamCall {
  principal: Principal;
  r: OpenAIChatRequest;
  signal: AbortSignal;
  hooks: ChatHooks;
}

/**
 * The stream's headers wait for the first event, so a request refused or failed before any content still gets a
 * proper status (429, 502...) that the SDK raises. After content, the stream ends with [DONE] when the answer
 * completed, else with an error event after the delivered (and billed) content.
 */
async function streamAnswer(o: OpenAIRouterOptions, res: Response, x: Exchange, { principal, r, signal, hooks }: StreamCall) {
  const events = o.services.chat.stream(principal, r.input, signal, hooks);
  const first = await events.next();
  if (first.done) return; // cancelled before any content: nobody is left to answer
  const sse = new SseWriter(res);
  sse.start(headersOf(x));
  const chunks = chunkMaker(first.value.requestId, r.input.maxTokens ?? null);
  let ev: ChatStreamEvent = first.value;
  try {
    for (;;) {
      if (!ev.done) {
        if (ev.toolCallDeltas?.length) await sse.data(chunks.toolCalls(ev.model, ev.toolCallDeltas));
        if (ev.delta) await sse.data(chunks.content(ev.model, ev.delta));
      } else {
        await sse.data(chunks.finish(ev.model, ev.outcome ?? 'COMPLETED', ev.usage?.completionTokens ?? 0, ev.finishReason));
        if (r.includeUsage && ev.usage) await sse.data(chunks.usage(ev.model, ev.usage));
        if (ev.outcome === 'COMPLETED') await sse.done();
        else await sse.fail(toOpenAIError(endedEarly(ev), o.logger).body);
        return;
      }
      const next = await events.next();
      if (next.done) break;
      ev = next.value;
    }
    res.end(); // the client went away: the use case settled the request CLIENT_CANCELLED
  } catch (e) {
    await sse.fail(toOpenAIError(e, o.logger.child({ requestId: x.requestId })).body);
  } finally {
    // Whatever left this loop, the use case's generator must finish: its finally settles the request.
    await events.return(undefined);
  }
}

/** body-parser's failures (too large, not JSON) answered in OpenAI's error shape, not Express's HTML page. */
function bodyErrors(o: OpenAIRouterOptions): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    const type = (err as { type?: string }).type;
    const x: Exchange = { requestId: randomUUID(), tenant: null };
    if (type === 'entity.too.large') sendError(o, res, x, new AppError('PAYLOAD_TOO_LARGE', `request body over ${o.maxBodyBytes} bytes`));
    else if (type === 'entity.parse.failed') sendError(o, res, x, new AppError('BAD_USER_INPUT', 'body: not valid JSON', { field: 'body' }));
    else sendError(o, res, x, err);
  };
}

/** A stream that delivered content but did not complete (cut, stalled, shut down): the error event after its content. */
function endedEarly(ev: ChatStreamEvent): AppError {
  return new AppError(
    'UPSTREAM_INTERRUPTED',
    `model ${ev.model} stopped mid-answer (outcome ${ev.outcome ?? 'FAILED'}); the content so far was delivered and billed`,
  );
}
