import { makeModelHealth } from '../../src/routing/model-health';

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('circuit breaker', () => {
  it('stays closed through 4 consecutive failures and opens on the 5th', () => {
    const clock = fakeClock();
    const h = makeModelHealth({ clock: clock.now });
    for (let i = 0; i < 4; i++) {
      h.recordFailure('glm-5');
      expect(h.check('glm-5').ok).toBe(true);
    }
    expect(h.states()).toEqual({ 'glm-5': 'closed' });
    h.recordFailure('glm-5');
    expect(h.check('glm-5')).toEqual({ ok: false, reason: 'CIRCUIT_OPEN', untilMs: clock.now() + 30_000 });
    expect(h.states()).toEqual({ 'glm-5': 'open' });
    // Other models are not affected.
    expect(h.check('qwen3-8b').ok).toBe(true);
  });

  it('counts consecutive failures only: a success resets the count', () => {
    const h = makeModelHealth({ clock: fakeClock().now });
    for (let i = 0; i < 4; i++) h.recordFailure('m');
    h.recordSuccess('m');
    for (let i = 0; i < 4; i++) h.recordFailure('m');
    expect(h.check('m').ok).toBe(true);
    h.recordFailure('m');
    expect(h.check('m').ok).toBe(false);
  });

  it('neutral outcomes neither count nor reset', () => {
    const h = makeModelHealth({ clock: fakeClock().now });
    for (let i = 0; i < 4; i++) {
      h.recordFailure('m');
      h.recordNeutral('m');
    }
    expect(h.check('m').ok).toBe(true);
    h.recordFailure('m');
    expect(h.check('m').ok).toBe(false);
  });

  it('half-opens after the cool-down, lets one probe through, closes when it succeeds', () => {
    const clock = fakeClock();
    const h = makeModelHealth({ clock: clock.now, cooldownMs: 30_000 });
    for (let i = 0; i < 5; i++) h.recordFailure('m');
    clock.advance(29_999);
    expect(h.check('m').ok).toBe(false);
    clock.advance(1);
    expect(h.states()).toEqual({ m: 'half_open' });
    expect(h.check('m').ok).toBe(true); // the probe
    expect(h.check('m')).toMatchObject({ ok: false, reason: 'CIRCUIT_OPEN' }); // one probe at a time
    h.recordSuccess('m');
    expect(h.states()).toEqual({ m: 'closed' });
    expect(h.check('m').ok).toBe(true);
    expect(h.check('m').ok).toBe(true);
    // Closed again means the count restarted: one failure does not re-open it.
    h.recordFailure('m');
    expect(h.check('m').ok).toBe(true);
  });

  it('a failed probe re-opens for a whole cool-down', () => {
    const clock = fakeClock();
    const h = makeModelHealth({ clock: clock.now, cooldownMs: 1_000 });
    for (let i = 0; i < 5; i++) h.recordFailure('m');
    clock.advance(1_000);
    expect(h.check('m').ok).toBe(true);
    clock.advance(200);
    h.recordFailure('m');
    expect(h.states()).toEqual({ m: 'open' });
    clock.advance(999);
    expect(h.check('m').ok).toBe(false);
    clock.advance(1);
    expect(h.check('m').ok).toBe(true);
  });

  it('a probe that ends neutrally frees the slot; one that never reports frees it after a cool-down', () => {
    const clock = fakeClock();
    const h = makeModelHealth({ clock: clock.now, cooldownMs: 1_000 });
    for (let i = 0; i < 5; i++) h.recordFailure('m');
    clock.advance(1_000);
    expect(h.check('m').ok).toBe(true);
    h.recordNeutral('m');
    expect(h.check('m').ok).toBe(true); // next probe
    expect(h.check('m').ok).toBe(false);
    clock.advance(1_000);
    expect(h.check('m').ok).toBe(true); // the lost probe's lease ran out
  });

  it('takes its threshold from the options', () => {
    const h = makeModelHealth({ clock: fakeClock().now, failureThreshold: 2 });
    h.recordFailure('m');
    expect(h.check('m').ok).toBe(true);
    h.recordFailure('m');
    expect(h.check('m').ok).toBe(false);
  });
});

describe('Retry-After', () => {
  it('skips the model until the time has passed', () => {
    const clock = fakeClock();
    const h = makeModelHealth({ clock: clock.now });
    h.markRetryAfter('m', 1_000);
    expect(h.check('m')).toEqual({ ok: false, reason: 'RETRY_AFTER', untilMs: clock.now() + 1_000 });
    clock.advance(999);
    expect(h.check('m').ok).toBe(false);
    clock.advance(1);
    expect(h.check('m').ok).toBe(true);
    expect(h.states()).toEqual({ m: 'closed' });
  });

  it('never shortens a pending wait, and caps an absurd one', () => {
    const clock = fakeClock();
    const h = makeModelHealth({ clock: clock.now, maxRetryAfterMs: 60_000 });
    h.markRetryAfter('m', 5_000);
    h.markRetryAfter('m', 1_000);
    clock.advance(4_999);
    expect(h.check('m').ok).toBe(false);
    clock.advance(1);
    expect(h.check('m').ok).toBe(true);
    h.markRetryAfter('m', 86_400_000);
    clock.advance(60_000);
    expect(h.check('m').ok).toBe(true);
  });
});
