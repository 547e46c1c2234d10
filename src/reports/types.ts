import type { Micros } from '../accounting/money';
import type { Outcome } from '../accounting/ledger';
import type { AttemptView, UsageView } from '../chat/types';
import type { Region } from '../catalog/types';

/**
 * What the reports module hands to the GraphQL resolvers and the CLI. The shapes mirror the contract's types, with
 * every `Usd` field as an integer `*Micros` field (bigint) and every `DateTime` as a Date; the edge formats them.
 */
export type ReportGroup = 'MODEL' | 'PROFILE' | 'DAY' | 'API_KEY';
export const REPORT_GROUPS: readonly ReportGroup[] = ['MODEL', 'PROFILE', 'DAY', 'API_KEY'];

/** MODEL key of requests that no model answered (every attempt failed; cost 0). */
export const NO_MODEL_KEY = '(none)';
/** API_KEY key of requests whose ledger row carries no key id. */
export const UNKNOWN_KEY = 'unknown';

export interface CostReportRowView {
  readonly key: string;
  readonly requests: number;
  readonly promptTokens: number;
  readonly unpricedPromptTokens: number;
  /** Of promptTokens: read from / written to the provider's prompt cache. */
  readonly cachedPromptTokens: number;
  readonly cacheWriteTokens: number;
  readonly completionTokens: number;
  readonly costMicros: Micros;
}

export interface CostReportView {
  readonly tenantId: string;
  readonly month: string;
  readonly groupBy: ReportGroup;
  readonly totalMicros: Micros;
  readonly rows: readonly CostReportRowView[];
  readonly csv: string;
}

export interface CostProjectionRowView {
  readonly model: string;
  readonly share: number;
  readonly outputTokens: number;
  readonly costMicros: Micros;
}

export interface CostProjectionView {
  readonly monthlyOutputTokens: number;
  readonly totalMicros: Micros;
  readonly rows: readonly CostProjectionRowView[];
}

export interface ApiKeyInfoView {
  readonly id: string;
  readonly prefix: string;
  readonly name: string | null;
  readonly monthlyBudgetMicros: Micros | null;
  readonly requestsPerMinute: number | null;
  readonly tokensPerMinute: number | null;
  /** Settled cost of the key's requests this (UTC) month, from the ledger. */
  readonly spentThisMonthMicros: Micros;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
  readonly rotatedAt: Date | null;
  readonly previousKeyExpiresAt: Date | null;
}

export interface RequestRecordView {
  readonly requestId: string;
  readonly profile: string;
  readonly region: Region;
  readonly model: string | null;
  readonly attempts: readonly AttemptView[];
  /** Null while the request is HELD (still running, or dead and not yet reaped). */
  readonly outcome: Outcome | null;
  /** Null while HELD. */
  readonly usage: UsageView | null;
  readonly startedAt: Date;
  readonly endedAt: Date | null;
}

export interface AuditEntryView {
  readonly id: string;
  readonly actor: string;
  readonly actorKeyId: string | null;
  readonly action: string;
  readonly targetType: string;
  readonly targetId: string;
  readonly tenantId: string | null;
  /** JSON text of the value before the change; null when the target was created. */
  readonly oldValue: string | null;
  /** JSON text of the value after the change; null when the target was removed. */
  readonly newValue: string | null;
  readonly createdAt: Date;
}

export interface TenantSpendView {
  readonly tenantId: string;
  readonly name: string;
  readonly spentMicros: Micros;
  readonly budgetMicros: Micros | null;
  /** spent / budget as a fraction (1 = the whole budget). Null when the tenant has no budget, or a budget of 0. */
  readonly shareUsed: number | null;
}
