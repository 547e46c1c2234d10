/**
 * The model table of the source article (measured 20 May 2026, US East, streaming, 10 runs averaged), the task
 * profiles and the fallback chains. This is seed data: at run time the database is the truth (prices change).
 * Prices are integer micro-dollars per 1M tokens. The article gives output prices only: input prices are unknown
 * and stay null (never zero) until an admin sets one.
 */
export type Region = 'US_EAST' | 'ASIA';
export const REGIONS: readonly Region[] = ['US_EAST', 'ASIA'];

export interface ModelRow {
  readonly id: string;
  readonly name: string;
  readonly provider: string;
  readonly ttftUsEastMs: number;
  /** Null: no Asia figure was measured; the US East figure applies. */
  readonly ttftAsiaMs: number | null;
  readonly tokensPerSecond: number;
  readonly outputMicrosPerMillion: bigint;
}

export const MODEL_TABLE: readonly ModelRow[] = [
  {
    id: 'step-3.5-flash',
    name: 'Step-3.5-Flash',
    provider: 'StepFun',
    ttftUsEastMs: 120,
    ttftAsiaMs: null,
    tokensPerSecond: 80,
    outputMicrosPerMillion: 150_000n,
  },
  {
    id: 'deepseek-v4-flash',
    name: 'DeepSeek V4 Flash',
    provider: 'DeepSeek',
    ttftUsEastMs: 180,
    ttftAsiaMs: 150,
    tokensPerSecond: 60,
    outputMicrosPerMillion: 250_000n,
  },
  {
    id: 'hunyuan-turbos',
    name: 'Hunyuan-TurboS',
    provider: 'Tencent',
    ttftUsEastMs: 200,
    ttftAsiaMs: null,
    tokensPerSecond: 55,
    outputMicrosPerMillion: 280_000n,
  },
  { id: 'qwen3-8b', name: 'Qwen3-8B', provider: 'Qwen', ttftUsEastMs: 150, ttftAsiaMs: null, tokensPerSecond: 70, outputMicrosPerMillion: 10_000n },
  { id: 'qwen3-32b', name: 'Qwen3-32B', provider: 'Qwen', ttftUsEastMs: 250, ttftAsiaMs: 210, tokensPerSecond: 45, outputMicrosPerMillion: 280_000n },
  {
    id: 'doubao-seed-lite',
    name: 'Doubao-Seed-Lite',
    provider: 'ByteDance',
    ttftUsEastMs: 220,
    ttftAsiaMs: null,
    tokensPerSecond: 50,
    outputMicrosPerMillion: 400_000n,
  },
  {
    id: 'hunyuan-turbo',
    name: 'Hunyuan-Turbo',
    provider: 'Tencent',
    ttftUsEastMs: 280,
    ttftAsiaMs: null,
    tokensPerSecond: 42,
    outputMicrosPerMillion: 570_000n,
  },
  { id: 'glm-4-32b', name: 'GLM-4-32B', provider: 'Zhipu', ttftUsEastMs: 300, ttftAsiaMs: null, tokensPerSecond: 38, outputMicrosPerMillion: 560_000n },
  { id: 'qwen3.5-27b', name: 'Qwen3.5-27B', provider: 'Qwen', ttftUsEastMs: 350, ttftAsiaMs: null, tokensPerSecond: 35, outputMicrosPerMillion: 190_000n },
  {
    id: 'deepseek-v4-pro',
    name: 'DeepSeek V4 Pro',
    provider: 'DeepSeek',
    ttftUsEastMs: 400,
    ttftAsiaMs: null,
    tokensPerSecond: 30,
    outputMicrosPerMillion: 780_000n,
  },
  {
    id: 'minimax-m2.5',
    name: 'MiniMax M2.5',
    provider: 'MiniMax',
    ttftUsEastMs: 450,
    ttftAsiaMs: null,
    tokensPerSecond: 28,
    outputMicrosPerMillion: 1_150_000n,
  },
  { id: 'glm-5', name: 'GLM-5', provider: 'Zhipu', ttftUsEastMs: 500, ttftAsiaMs: 420, tokensPerSecond: 25, outputMicrosPerMillion: 1_920_000n },
  { id: 'kimi-k2.5', name: 'Kimi K2.5', provider: 'Moonshot', ttftUsEastMs: 600, ttftAsiaMs: 480, tokensPerSecond: 20, outputMicrosPerMillion: 3_000_000n },
  {
    id: 'deepseek-r1',
    name: 'DeepSeek-R1',
    provider: 'DeepSeek',
    ttftUsEastMs: 800,
    ttftAsiaMs: null,
    tokensPerSecond: 15,
    outputMicrosPerMillion: 2_500_000n,
  },
  { id: 'qwen3.5-397b', name: 'Qwen3.5-397B', provider: 'Qwen', ttftUsEastMs: 1200, ttftAsiaMs: null, tokensPerSecond: 10, outputMicrosPerMillion: 2_340_000n },
];

export interface ProfileRow {
  readonly name: string;
  readonly model: string;
  readonly why: string;
  readonly defaultMaxTokens: number;
  readonly maxTokensCap: number;
}

export const PROFILE_TABLE: readonly ProfileRow[] = [
  { name: 'fast_classify', model: 'qwen3-8b', why: 'classification, short reformatting', defaultMaxTokens: 256, maxTokensCap: 1024 },
  { name: 'chat_default', model: 'deepseek-v4-flash', why: 'default user-facing chat', defaultMaxTokens: 1024, maxTokensCap: 4096 },
  { name: 'chat_speed', model: 'step-3.5-flash', why: 'chat where every millisecond counts', defaultMaxTokens: 1024, maxTokensCap: 4096 },
  { name: 'long_form', model: 'deepseek-v4-pro', why: 'long documents, the user waits', defaultMaxTokens: 4096, maxTokensCap: 16384 },
  { name: 'deep_reasoning', model: 'minimax-m2.5', why: '"think harder" requests', defaultMaxTokens: 4096, maxTokensCap: 16384 },
];

/** Default fallbacks of a model, in order. Models not listed have none. */
export const FALLBACK_TABLE: Readonly<Record<string, readonly string[]>> = {
  'deepseek-v4-flash': ['hunyuan-turbos', 'qwen3-32b'],
  'step-3.5-flash': ['deepseek-v4-flash'],
  'deepseek-v4-pro': ['hunyuan-turbo'],
  'minimax-m2.5': ['glm-5', 'kimi-k2.5'],
};

/** The model's measured time to first token for a region; models without an Asia figure use US East's. */
export function ttftFor(model: Pick<ModelRow, 'ttftUsEastMs' | 'ttftAsiaMs'>, region: Region): number {
  return region === 'ASIA' ? (model.ttftAsiaMs ?? model.ttftUsEastMs) : model.ttftUsEastMs;
}
