import type { SqlPool } from '../infra/postgres';
import type { ItemOutcome } from './group-commit';
import { effectivePromptPrices } from './pricing';
import type { HeldEntry, Settlement } from './ledger';
import { snapshotToJson } from './ledger';

/**
 * The two statements on every request's path, each written for a whole group-commit batch: one INSERT of every
 * write-ahead row, one UPDATE of every settlement, as arrays unnested server-side (one prepared statement whatever
 * the batch size). RETURNING says which rows landed, so a row that did not fails (or reports) alone.
 */

export interface SettleItem {
  readonly requestId: string;
  readonly s: Settlement;
}

/** A row whose request id already has a ledger row: only its own request fails. */
export class LedgerConflict extends Error {}

const HOLD_SQL = `INSERT INTO usage_ledger (request_id, tenant_id, api_key_id, profile, region, planned_model, max_tokens, prompt_tokens,
                            price_snapshot, hold_micros, started_at, lease_expires_at, idempotency_key)
  SELECT v.id, v.tenant, v.api_key, v.profile, v.region, v.planned, v.max_tokens, v.prompt, v.snapshot, v.hold, v.started,
         now() + v.lease_ms * interval '1 millisecond', v.idem
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::"Region"[], $6::text[], $7::int[], $8::int[],
                $9::jsonb[], $10::bigint[], $11::timestamptz[], $12::int[], $13::text[])
         AS v(id, tenant, api_key, profile, region, planned, max_tokens, prompt, snapshot, hold, started, lease_ms, idem)
   -- Request ids are unique across the ledger's month partitions through ledger_request_ids (its insert trigger
   -- raises on a duplicate): an id already there is left out here, so it fails alone as a conflict.
   WHERE NOT EXISTS (SELECT 1 FROM ledger_request_ids r WHERE r.request_id = v.id)
  ON CONFLICT DO NOTHING
  RETURNING request_id::text AS id`;

const SETTLE_SQL = `UPDATE usage_ledger AS u
     SET state = 'SETTLED', model = v.model, attempts = v.attempts, prompt_tokens = v.prompt, completion_tokens = v.completion,
         checkpoint_tokens = v.completion, unpriced_prompt_tokens = v.unpriced, input_micros_per_million = v.input_price,
         output_micros_per_million = v.output_price, cost_micros = v.cost, outcome = v.outcome, usage_source = v.source,
         ended_at = v.ended, cached_prompt_tokens = v.cached, cache_write_tokens = v.cache_write,
         cached_input_micros_per_million = v.cached_price, cache_write_micros_per_million = v.cache_write_price,
         settle_version = 1, gate_pending_since = now()
    FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[], $5::int[], $6::int[], $7::bigint[], $8::bigint[], $9::bigint[],
                $10::"Outcome"[], $11::"UsageSource"[], $12::timestamptz[], $13::int[], $14::int[], $15::bigint[], $16::bigint[],
                $17::timestamptz[])
         AS v(id, model, attempts, prompt, completion, unpriced, input_price, output_price, cost, outcome, source, ended,
              cached, cache_write, cached_price, cache_write_price, started)
   WHERE u.request_id = v.id AND u.started_at = v.started AND u.state = 'HELD'
     AND u.started_at BETWEEN $18::timestamptz AND $19::timestamptz
  RETURNING u.request_id::text AS id`;

/** The write-ahead rows of a batch; a request id that already has a row fails with LedgerConflict. */
export function insertHolds(sql: SqlPool, entries: readonly HeldEntry[]): Promise<readonly ItemOutcome<void>[]> {
  return isolated(entries, async (batch) => {
    const landed = await returnedIds(sql, 'ledger_hold_batch', HOLD_SQL, [
      batch.map((e) => e.requestId),
      batch.map((e) => e.tenantId),
      batch.map((e) => e.apiKeyId),
      batch.map((e) => e.profile),
      batch.map((e) => e.region),
      batch.map((e) => e.plannedModel),
      batch.map((e) => e.maxTokens),
      batch.map((e) => e.promptTokensEstimate),
      batch.map((e) => JSON.stringify(snapshotToJson(e.prices))),
      batch.map((e) => e.holdMicros.toString()),
      batch.map((e) => e.startedAt),
      batch.map((e) => e.leaseMs), // leases are judged by Postgres time only: an instance's skewed clock must not shorten them
      batch.map((e) => e.idempotencyKey),
    ]);
    return batch.map((e) =>
      takeOnce(landed, e.requestId)
        ? { ok: true, value: undefined }
        : { ok: false, error: new LedgerConflict(`request ${e.requestId} already has a ledger row`) },
    );
  });
}

/** The settlements of a batch: true for a row settled here, false for one already settled (reaped) elsewhere. */
export function updateSettlements(sql: SqlPool, items: readonly SettleItem[]): Promise<readonly ItemOutcome<boolean>[]> {
  return isolated(items, async (batch) => {
    // The unit prices the cached and cache-write tokens were charged at (the input price where the model has none).
    const eff = batch.map(({ s }) => (s.prices ? effectivePromptPrices(s.prices) : null));
    const landed = await returnedIds(sql, 'ledger_settle_batch', SETTLE_SQL, [
      batch.map((i) => i.requestId),
      batch.map(({ s }) => s.model),
      batch.map(({ s }) => JSON.stringify(s.attempts)),
      batch.map(({ s }) => s.promptTokens),
      batch.map(({ s }) => s.completionTokens),
      batch.map(({ s }) => s.unpricedPromptTokens),
      batch.map(({ s }) => s.prices?.inputMicrosPerMillion?.toString() ?? null),
      batch.map(({ s }) => s.prices?.outputMicrosPerMillion?.toString() ?? null),
      batch.map(({ s }) => s.costMicros.toString()),
      batch.map(({ s }) => s.outcome),
      batch.map(({ s }) => s.usageSource),
      batch.map(({ s }) => s.endedAt),
      batch.map(({ s }) => s.cachedPromptTokens),
      batch.map(({ s }) => s.cacheWriteTokens),
      eff.map((e) => e?.cached?.toString() ?? null),
      eff.map((e) => e?.written?.toString() ?? null),
      batch.map(({ s }) => s.startedAt),
      // The batch's started_at bounds: the ledger is partitioned by month, and these prune the UPDATE to the batch's
      // month (two just after a month begins).
      new Date(Math.min(...batch.map(({ s }) => s.startedAt.getTime()))),
      new Date(Math.max(...batch.map(({ s }) => s.startedAt.getTime()))),
    ]);
    return batch.map((i) => ({ ok: true, value: takeOnce(landed, i.requestId) }));
  });
}

async function returnedIds(sql: SqlPool, name: string, text: string, values: unknown[]): Promise<Map<string, number>> {
  const r = await sql.query<{ id: string }>({ name, text, values });
  const ids = new Map<string, number>();
  for (const row of r.rows) ids.set(row.id, (ids.get(row.id) ?? 0) + 1);
  return ids;
}

/** A request id listed twice in one batch lands once: the first of them gets it. */
function takeOnce(landed: Map<string, number>, id: string): boolean {
  const n = landed.get(id.toLowerCase()) ?? 0;
  if (n === 0) return false;
  landed.set(id.toLowerCase(), n - 1);
  return true;
}

const sqlState = (e: unknown): string => String((e as { code?: unknown } | null)?.code ?? '');
/** Class 22 (data exception) and 23 (integrity violation, e.g. a tenant deleted meanwhile): one row's fault. */
const isRowFault = (e: unknown): boolean => /^2[23]/.test(sqlState(e));
/** A deadlock against another multi-row statement (the checkpointer's, another instance's batch) rolled all back. */
const isDeadlock = (e: unknown): boolean => sqlState(e) === '40P01';

/**
 * Runs a batch so that one row's fault fails only that row: the statement is all-or-nothing, so when it fails on a
 * row's data each row is written again alone, and only the faulty ones fail. A deadlock rolled the whole statement
 * back and is retried. Anything else (a lost connection) fails the whole batch: none of its rows is known to be
 * durable, and each request gives its admission back.
 */
async function isolated<T, R>(items: readonly T[], write: (batch: readonly T[]) => Promise<readonly ItemOutcome<R>[]>): Promise<readonly ItemOutcome<R>[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write(items);
    } catch (e) {
      if (isDeadlock(e) && attempt < 2) continue;
      if (!isRowFault(e) || items.length === 1) throw e;
      const out: ItemOutcome<R>[] = [];
      for (const item of items) {
        try {
          out.push(...(await write([item])));
        } catch (rowError) {
          if (!isRowFault(rowError)) throw rowError;
          out.push({ ok: false, error: rowError instanceof Error ? rowError : new Error(String(rowError)) });
        }
      }
      return out;
    }
  }
}
