import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { UpstreamClient } from '../upstream';
import { GATEWAY, GEN_AI, ERROR_TYPE, PROVIDER } from './gen-ai';
import type { Tracing } from './tracing';

/**
 * A CLIENT span per upstream attempt (every call of streamChat is one attempt of the fallback chain), as a
 * decorator of the upstream client, under the request's span. Records the model, token usage, time to first
 * token and the failure kind; never the messages or the streamed text.
 */
export function traceUpstream(inner: UpstreamClient, tracing: Tracing, upstreamUrl: string): UpstreamClient {
  const server = new URL(upstreamUrl);
  const port = Number(server.port || (server.protocol === 'https:' ? 443 : 80));
  return {
    close: () => inner.close(),
    async streamChat(req, onRead) {
      const started = performance.now();
      const span = tracing.startSpan(`chat ${req.model}`, {
        kind: SpanKind.CLIENT,
        attributes: {
          [GEN_AI.operation]: 'chat',
          [GEN_AI.system]: PROVIDER,
          [GEN_AI.provider]: PROVIDER,
          [GEN_AI.requestModel]: req.model,
          [GEN_AI.requestMaxTokens]: req.maxTokens,
          [GATEWAY.region]: req.region,
          'server.address': server.hostname,
          'server.port': port,
        },
      });
      let firstToken = true;
      let outcome: 'completed' | 'failed' | 'abandoned' = 'abandoned';
      try {
        const end = await inner.streamChat(req, (events) => {
          for (const ev of events) {
            if (ev.type === 'delta' && firstToken) {
              firstToken = false;
              span.setAttributes({ [GEN_AI.responseModel]: req.model, [GATEWAY.ttftMs]: Math.round(performance.now() - started) });
            } else if (ev.type === 'usage') {
              span.setAttributes({ [GEN_AI.inputTokens]: ev.promptTokens, [GEN_AI.outputTokens]: ev.completionTokens });
            }
          }
          onRead(events);
        });
        if (end.ok) outcome = 'completed';
        // 'abandoned': the caller aborted before the end (client gone, total deadline, budget stop).
        else if (end.failure.kind !== 'aborted') {
          outcome = 'failed';
          span.setAttribute(ERROR_TYPE, end.failure.code);
          span.setStatus({ code: SpanStatusCode.ERROR, message: end.failure.code });
        }
        return end;
      } catch (e) {
        outcome = 'failed';
        span.setAttribute(ERROR_TYPE, 'INTERNAL');
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'INTERNAL' });
        throw e;
      } finally {
        span.setAttribute(GATEWAY.outcome, outcome);
        span.end();
      }
    },
  };
}
