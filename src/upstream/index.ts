export type {
  ChatMessage,
  ChatRole,
  FinishReason,
  StreamEnd,
  ToolCall,
  ToolCallDelta,
  ToolChoice,
  ToolDefinition,
  UpstreamChatRequest,
  UpstreamClient,
  UpstreamEvent,
} from './types';
export { UpstreamError, classifyStatus, parseRetryAfter, type RetryableCode, type UpstreamFailure } from './errors';
export { createSseEventDecoder, type SseEventDecoder } from './sse-events';
export { chatEndpoint, chatRequestBody, chatRequestHeaders } from './chat-request';
export { makeUpstreamClient, type UpstreamClientOptions, type UpstreamLogger } from './client';
