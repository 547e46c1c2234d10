import { ttftFor, type ModelRow, type Region } from '../catalog/model-table';

/**
 * When each token of an answer is due, in milliseconds from the request's start. Times are absolute offsets (not
 * gaps between tokens), so a late timer delays one token without pushing every later one back.
 */
export interface Pace {
  /** True when every offset is 0: the answer is written at once, with no timer at all. */
  readonly instant: boolean;
  /** Offset of token i (0-based): (ttft + i * 1000 / tps) * scale. */
  tokenDueMs(i: number): number;
  /** Offset at which an answer of n tokens is complete: (ttft + n * 1000 / tps) * scale. */
  doneMs(n: number): number;
}

/** The model's pace for the region (Asia figures when region is ASIA), every figure multiplied by scale. */
export function paceFor(model: Pick<ModelRow, 'ttftUsEastMs' | 'ttftAsiaMs' | 'tokensPerSecond'>, region: Region, scale: number): Pace {
  const firstMs = ttftFor(model, region) * scale;
  const perTokenMs = (1000 / model.tokensPerSecond) * scale;
  return {
    instant: scale === 0,
    tokenDueMs: (i) => firstMs + i * perTokenMs,
    doneMs: (n) => firstMs + n * perTokenMs,
  };
}
