import { countArg, limitArg, microsArg, msArg, optionalMicrosArg, signedCountArg } from './args';
import { apiKeyIdPart, limitKeys, type MonthKeys, type TenantKeys } from './keys';
import { parseAdmitReply, parseBudgetStateReply, parseCountReply, parseExtendHoldReply } from './replies';
import { runScript, type LimitsRedis } from './run-script';
import { SCRIPTS } from './scripts';
import type { AdmitInput, ApiKeyLimits, Limiter, ReseedInput } from './types';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
/** A month's state outlives its month (and any late settlement) by far, then disappears by itself. */
export const MONTH_STATE_TTL_MS = 40 * DAY_MS;
/**
 * A settlement is remembered at least this long (and at most twice as long: markers live in two hourly slots,
 * see scripts/lib.lua.ts): a retry of settle within it applies nothing.
 */
export const SETTLED_MARKER_MIN_MS = HOUR_MS;
/** How long a swept hold waits for its late settlement. */
const SWEPT_RETENTION_MS = 2 * DAY_MS;

const monthKeyList = (k: MonthKeys): string[] => [k.budget, k.holds, k.holdAmounts, k.swept];

export interface LimiterOptions {
  readonly keyPrefix?: string;
  /**
   * Tests only: ms added to Redis TIME in every script, to see a window or an hour pass without waiting. Read on
   * every call. Production leaves it out (0).
   */
  readonly clockOffsetMs?: () => number;
}

/**
 * The Redis fast gate: rolling rate and token windows, requests in flight and the monthly budget of each tenant,
 * exact across gateway instances because every decision is one Lua script on Redis TIME. Every method rejects
 * (never answers) when Redis fails, so callers fail closed; inputs outside the exact range of Lua numbers throw
 * RangeError.
 */
export function makeLimiter(redis: LimitsRedis, opts: LimiterOptions = {}): Limiter {
  return new RedisLimiter(redis, opts);
}

/** One Lua script per method; the arguments are checked (and turned into Redis strings) before any call. */
class RedisLimiter implements Limiter {
  private readonly keys: ReturnType<typeof limitKeys>;
  private readonly stateTtl = String(MONTH_STATE_TTL_MS);
  private readonly retention = String(SWEPT_RETENTION_MS);

  constructor(
    private readonly redis: LimitsRedis,
    private readonly opts: LimiterOptions,
  ) {
    this.keys = limitKeys(opts.keyPrefix ?? 'lg');
  }

  /** ARGV[1] of every script: the tests' clock offset, read on every call. */
  private clock(): string {
    const offset = this.opts.clockOffsetMs?.() ?? 0;
    if (!Number.isSafeInteger(offset)) throw new RangeError(`limits: clock offset must be an integer, got ${offset}`);
    return String(offset);
  }

  /** The key's windows follow the tenant's (KEYS[8], KEYS[9]) only when the request came with an API key. */
  private apiKeyWindows(tenantId: string, apiKeyId: string | null | undefined): string[] {
    if (!apiKeyId) return [];
    const k = this.keys.apiKey(tenantId, apiKeyId);
    return [k.rpm, k.tpm];
  }

  private admitKeys(i: AdmitInput, t: TenantKeys): string[] {
    return [...monthKeyList(this.keys.month(i.tenantId, i.month)), t.rpm, t.tpm, t.inflight, ...this.apiKeyWindows(i.tenantId, i.apiKey?.id)];
  }

  async admit(i: AdmitInput): ReturnType<Limiter['admit']> {
    const t = this.keys.tenant(i.tenantId);
    const reply = await runScript(this.redis, SCRIPTS.admit, this.admitKeys(i, t), [
      this.clock(),
      requestIdArg(i.requestId),
      limitArg('requestsPerMinute', i.requestsPerMinute),
      limitArg('tokensPerMinute', i.tokensPerMinute),
      countArg('tokensEstimate', i.tokensEstimate),
      optionalMicrosArg('budgetMicros', i.budgetMicros),
      microsArg('holdMicros', i.holdMicros),
      msArg('holdTtlMs', i.holdTtlMs),
      this.stateTtl,
      this.retention,
      limitArg('maxConcurrentRequests', i.maxConcurrentRequests),
      ...apiKeyArgs(i.apiKey),
    ]);
    return parseAdmitReply(reply);
  }

  async release(i: Parameters<Limiter['release']>[0]): ReturnType<Limiter['release']> {
    const t = this.keys.tenant(i.tenantId);
    const reply = await runScript(this.redis, SCRIPTS.release, this.admitKeys(i, t), [
      this.clock(),
      requestIdArg(i.requestId),
      limitArg('requestsPerMinute', i.requestsPerMinute),
      limitArg('tokensPerMinute', i.tokensPerMinute),
      countArg('tokensEstimate', i.tokensEstimate),
      limitArg('apiKey.requestsPerMinute', i.apiKey?.requestsPerMinute),
      limitArg('apiKey.tokensPerMinute', i.apiKey?.tokensPerMinute),
    ]);
    return { released: parseCountReply('release', reply) === 1 };
  }

  async generation(tenantId: string, month: string): ReturnType<Limiter['generation']> {
    const reply = await runScript(this.redis, SCRIPTS.generation, [this.keys.month(tenantId, month).budget], [this.clock()]);
    if (typeof reply !== 'string') throw new Error(`limits: unexpected generation reply ${JSON.stringify(reply)}`);
    return reply;
  }

  async settle(i: Parameters<Limiter['settle']>[0]): ReturnType<Limiter['settle']> {
    const t = this.keys.tenant(i.tenantId);
    const reply = await runScript(
      this.redis,
      SCRIPTS.settle,
      [
        ...monthKeyList(this.keys.month(i.tenantId, i.month)),
        ...t.settled,
        t.tpm,
        t.inflight,
        ...(i.apiKeyId ? [this.keys.apiKey(i.tenantId, i.apiKeyId).tpm] : []),
      ],
      [
        this.clock(),
        requestIdArg(i.requestId),
        microsArg('actualMicros', i.actualMicros),
        signedCountArg('actualTokens - tokensEstimate', countNumber('actualTokens', i.actualTokens) - countNumber('tokensEstimate', i.tokensEstimate)),
        this.stateTtl,
        i.apiKeyId ? apiKeyIdPart(i.apiKeyId) : '',
      ],
    );
    return { applied: parseCountReply('settle', reply) === 1 };
  }

  async extendHold(i: Parameters<Limiter['extendHold']>[0]): ReturnType<Limiter['extendHold']> {
    const t = this.keys.tenant(i.tenantId);
    const reply = await runScript(
      this.redis,
      SCRIPTS.extendHold,
      [...monthKeyList(this.keys.month(i.tenantId, i.month)), ...t.settled, t.inflight],
      [
        this.clock(),
        requestIdArg(i.requestId),
        microsArg('extraMicros', i.extraMicros),
        optionalMicrosArg('budgetMicros', i.budgetMicros),
        msArg('holdTtlMs', i.holdTtlMs),
        this.stateTtl,
        this.retention,
        i.apiKey ? apiKeyIdPart(i.apiKey.id) : '',
        optionalMicrosArg('apiKey.budgetMicros', i.apiKey?.budgetMicros ?? null),
      ],
    );
    return parseExtendHoldReply(reply);
  }

  async reseed(i: ReseedInput): ReturnType<Limiter['reseed']> {
    const t = this.keys.tenant(i.tenantId);
    const { apiKeyArgs: keyArgs, windowKeys } = reseedApiKeyArgs(i, (id) => this.apiKeyWindows(i.tenantId, id));
    const settledArgs: string[] = [];
    for (const s of i.recentlySettled ?? []) settledArgs.push(requestIdArg(s.requestId), microsArg('costMicros', s.costMicros));
    const reply = await runScript(
      this.redis,
      SCRIPTS.reseed,
      [...monthKeyList(this.keys.month(i.tenantId, i.month)), t.rpm, t.tpm, t.inflight, ...t.settled, ...windowKeys],
      [
        this.clock(),
        microsArg('spentMicros', i.spentMicros),
        this.stateTtl,
        limitArg('requestsPerMinute', i.requestsPerMinute),
        limitArg('requestsLastMinute', i.requestsLastMinute),
        limitArg('tokensPerMinute', i.tokensPerMinute),
        limitArg('tokensLastMinute', i.tokensLastMinute),
        ...reseedHoldArgs(i),
        ...keyArgs,
        ...settledArgs,
      ],
    );
    return { seeded: parseCountReply('reseed', reply) === 1 };
  }

  async budgetState(tenantId: string, month: string): ReturnType<Limiter['budgetState']> {
    const reply = await runScript(this.redis, SCRIPTS.budgetState, monthKeyList(this.keys.month(tenantId, month)), [this.clock(), this.retention]);
    return parseBudgetStateReply(reply);
  }
}

/** ARGV[12..15] of admit: the API key's id and limits, '' each without a key. */
function apiKeyArgs(k: ApiKeyLimits | undefined): string[] {
  if (!k) return ['', '', '', ''];
  return [
    apiKeyIdPart(k.id),
    optionalMicrosArg('apiKey.budgetMicros', k.budgetMicros),
    limitArg('apiKey.requestsPerMinute', k.requestsPerMinute),
    limitArg('apiKey.tokensPerMinute', k.tokensPerMinute),
  ];
}

/** The reseed's hold count and holds (5 values each). A duplicate would be held (or counted from its marker) twice. */
function reseedHoldArgs(i: ReseedInput): string[] {
  const seen = new Set<string>();
  const out = [String(i.holds.length)];
  for (const h of i.holds) {
    if (seen.has(h.requestId)) throw new RangeError(`limits: reseed lists request ${h.requestId} twice`);
    seen.add(h.requestId);
    out.push(
      requestIdArg(h.requestId),
      microsArg('holdMicros', h.holdMicros),
      msArg('expiresAtMs', h.expiresAtMs, 0),
      msArg('admittedAtMs', h.admittedAtMs, 0),
      h.apiKeyId ? apiKeyIdPart(h.apiKeyId) : '',
    );
  }
  return out;
}

/** The reseed's per-key spend (K pairs) and window seeds (W triples, with their two window keys each). */
function reseedApiKeyArgs(i: ReseedInput, windowsOf: (apiKeyId: string) => string[]): { apiKeyArgs: string[]; windowKeys: string[] } {
  const keyList = i.apiKeys ?? [];
  if (new Set(keyList.map((k) => k.apiKeyId)).size !== keyList.length) throw new RangeError('limits: reseed lists an API key twice');
  const spent = keyList.filter((k) => k.spentMicros > 0n);
  const recent = keyList.filter((k) => k.requestsLastMinute > 0 || k.tokensLastMinute > 0);
  return {
    apiKeyArgs: [
      String(spent.length),
      ...spent.flatMap((k) => [apiKeyIdPart(k.apiKeyId), microsArg('apiKey.spentMicros', k.spentMicros)]),
      String(recent.length),
      ...recent.flatMap((k) => [
        k.apiKeyId,
        countArg('apiKey.requestsLastMinute', k.requestsLastMinute),
        countArg('apiKey.tokensLastMinute', k.tokensLastMinute),
      ]),
    ],
    windowKeys: recent.flatMap((k) => windowsOf(k.apiKeyId)),
  };
}

function requestIdArg(requestId: string): string {
  if (requestId.length === 0) throw new RangeError('limits: request id must be non-empty');
  // '#hour' names a marker slot's hour; ':' separates a hold's amount from its bucket only in values, so ids may hold it.
  if (requestId.startsWith('#')) throw new RangeError(`limits: request id must not start with '#', got ${JSON.stringify(requestId)}`);
  return requestId;
}

function countNumber(field: string, v: number): number {
  countArg(field, v);
  return v;
}
