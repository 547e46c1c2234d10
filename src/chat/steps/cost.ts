import type { AttemptRecord } from '../../routing';
import type { PriceSnapshot } from '../../accounting/ledger';
import { priceUsage } from '../../accounting/pricing';

/** What attempts cost at the request's price snapshot (cached and cache-write tokens included). */
export function costOfAttempts(attempts: readonly AttemptRecord[], prices: PriceSnapshot): { costMicros: bigint; unpricedPromptTokens: number } {
  let costMicros = 0n;
  let unpricedPromptTokens = 0;
  for (const at of attempts) {
    if (at.promptTokens === 0 && at.completionTokens === 0) continue;
    const unit = prices[at.model];
    if (!unit) throw new Error(`no price snapshot for ${at.model}`);
    const p = priceUsage(unit, {
      promptTokens: at.promptTokens,
      cachedPromptTokens: at.cachedPromptTokens ?? 0,
      cacheWriteTokens: at.cacheWriteTokens ?? 0,
      completionTokens: at.completionTokens,
    });
    costMicros += p.costMicros;
    unpricedPromptTokens += p.unpricedPromptTokens;
  }
  return { costMicros, unpricedPromptTokens };
}
