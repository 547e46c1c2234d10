import Redis from 'ioredis';
import { makeLimiter } from '../../src/limits';
import { limitKeys } from '../../src/limits/keys';
import { makeGateRepair } from '../../src/limits/repair';
import { TEST_REDIS_URL } from '../support/env';

/**
 * The leftover hold of a request settled elsewhere before its admission reached Redis (the soak found it: an instance
 * stalled on Postgres between its INSERT and its admission past the lease) is released, and only it.
 */
const redis = new Redis(TEST_REDIS_URL);
const limiter = makeLimiter(redis);
const repair = makeGateRepair(redis);
afterAll(() => redis.disconnect());

/** A reseeded hold, admitted now, expiring in ten minutes (extra fields serve the gate's newer hold format). */
function hold(requestId: string, holdMicros: bigint) {
  const h = { requestId, holdMicros, expiresAtMs: Date.now() + 600_000, admittedAtMs: Date.now() };
  return h;
}

test("releaseLeftoverHold releases that request's hold once, leaves spent and other holds alone", async () => {
  const tenantId = crypto.randomUUID();
  const month = '2026-11';
  const [x, y] = [crypto.randomUUID(), crypto.randomUUID()];
  await limiter.reseed({ tenantId, month, spentMicros: 40n, holds: [hold(x, 5n), hold(y, 7n)] });
  expect(await limiter.budgetState(tenantId, month)).toEqual({ spentMicros: 40n, heldMicros: 12n });
  expect(await repair.releaseLeftoverHold({ tenantId, month, requestId: x })).toEqual({ released: true });
  expect(await limiter.budgetState(tenantId, month)).toEqual({ spentMicros: 40n, heldMicros: 7n });
  expect(await repair.releaseLeftoverHold({ tenantId, month, requestId: x })).toEqual({ released: false });
  expect(await limiter.budgetState(tenantId, month)).toEqual({ spentMicros: 40n, heldMicros: 7n });
});

test('a hold value in the "amount:slot" form reads its amount', async () => {
  const tenantId = crypto.randomUUID();
  const month = '2026-11';
  const x = crypto.randomUUID();
  await limiter.reseed({ tenantId, month, spentMicros: 0n, holds: [hold(x, 9n)] });
  await redis.hset(limitKeys().month(tenantId, month).holdAmounts, x, '9:12345');
  expect(await repair.releaseLeftoverHold({ tenantId, month, requestId: x })).toEqual({ released: true });
  expect(await limiter.budgetState(tenantId, month)).toEqual({ spentMicros: 0n, heldMicros: 0n });
});
