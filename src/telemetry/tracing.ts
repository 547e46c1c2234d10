import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, defaultTextMapGetter, trace, type Context, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * Tracing for one app instance, or nothing: `startTracing` returns null when no OTLP endpoint is configured, and
 * then nothing is wrapped, so tracing that is off costs nothing at all.
 *
 * Nothing here touches OpenTelemetry's process-wide globals (tracer provider, context manager, propagator): the
 * current span lives in this instance's own AsyncLocalStorage, so several app instances in one process (the
 * tests) each export to their own collector.
 */
export interface Tracing {
  readonly tracer: Tracer;
  /** The context of the code running now (the request's, inside `runWithHeaders`), or the root. */
  active(): Context;
  /** Runs `fn` with `ctx` as the current context (async continuations included). */
  withContext<T>(ctx: Context, fn: () => T): T;
  /** The current context with `span` as its active span. */
  setSpan(span: Span): Context;
  /** Starts a span under the current context. */
  startSpan(name: string, options: SpanOptions, parent?: Context): Span;
  /** Runs `fn` under the W3C `traceparent` / `tracestate` of a client's request headers, when they are valid. */
  runWithHeaders<T>(headers: IncomingHttpHeaders, fn: () => T): T;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** The collector's base URL (OTEL_EXPORTER_OTLP_ENDPOINT); spans go to `<endpoint>/v1/traces` as OTLP/HTTP JSON. */
  readonly endpoint: string | undefined;
  readonly serviceName: string;
}

/** The OTLP/HTTP traces URL for a base endpoint, as the OpenTelemetry exporter spec derives it. */
export const tracesUrl = (endpoint: string): string => `${endpoint.replace(/\/+$/, '')}/v1/traces`;

export function startTracing(opts: TracingOptions): Tracing | null {
  if (!opts.endpoint) return null;
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(opts.endpoint) }), { scheduledDelayMillis: 1_000 })],
  });
  const tracer = provider.getTracer('llm-gateway');
  const store = new AsyncLocalStorage<Context>();
  const propagator = new W3CTraceContextPropagator();
  const active = () => store.getStore() ?? ROOT_CONTEXT;
  return {
    tracer,
    active,
    withContext: (ctx, fn) => store.run(ctx, fn),
    setSpan: (span) => trace.setSpan(active(), span),
    startSpan: (name, options, parent) => tracer.startSpan(name, options, parent ?? active()),
    runWithHeaders(headers, fn) {
      // An invalid or missing traceparent extracts nothing: the request starts a trace of its own.
      const ctx = propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
      return store.run(trace.getSpanContext(ctx) ? ctx : ROOT_CONTEXT, fn);
    },
    shutdown: () => provider.shutdown(),
  };
}
