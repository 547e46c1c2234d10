/**
 * Span attribute names: OpenTelemetry's GenAI semantic conventions (gen_ai.*, still "development" status, so
 * written here rather than imported from the incubating entry point, as the conventions advise), and the gateway's
 * own under `llm_gateway.*`. No attribute ever carries prompt or completion text.
 */
export const GEN_AI = {
  operation: 'gen_ai.operation.name',
  system: 'gen_ai.system',
  provider: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  requestMaxTokens: 'gen_ai.request.max_tokens',
  responseModel: 'gen_ai.response.model',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
} as const;

export const GATEWAY = {
  requestId: 'llm_gateway.request_id',
  tenantId: 'llm_gateway.tenant_id',
  profile: 'llm_gateway.profile',
  outcome: 'llm_gateway.outcome',
  /** Micro-dollars charged for the request (an integer; exact below 2^53, i.e. $9 billion). */
  costMicros: 'llm_gateway.cost_micros',
  /** Models tried, in order: the fallback chain as walked. */
  fallbackChain: 'llm_gateway.fallback_chain',
  attempts: 'llm_gateway.attempts',
  ttftMs: 'llm_gateway.ttft_ms',
  region: 'llm_gateway.region',
  mode: 'llm_gateway.mode',
} as const;

/** The upstream speaks the OpenAI chat completions API; the provider is named for the gateway's upstream. */
export const PROVIDER = 'global-apis';
export const ERROR_TYPE = 'error.type';
