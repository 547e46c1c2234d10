/** OpenTelemetry traces: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (see tracing.ts). */
export { startTracing, tracesUrl, type Tracing } from './tracing';
export { traceChat } from './trace-chat';
export { traceUpstream } from './trace-upstream';
