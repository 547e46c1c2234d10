import pino, { type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs. Prompts, completions and keys are never logged; redaction is a second line of defence. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { service: 'llm-gateway', ...base },
    redact: {
      paths: ['authorization', 'req.headers.authorization', '*.authorization', 'apiKey', '*.apiKey', 'key', 'messages', '*.messages'],
      censor: '[redacted]',
    },
  });
}
