import { failureCode, healthVerdict, nextStep, readFailure, type Failure, type Mode, type Step } from '../../src/routing/fallback-step';

/** The walk's decision table: (failure, delivered so far, mode) -> the next step. */
const retryable = (code: 'HTTP_500' | 'STALL' | 'INTERRUPTED' | 'TIMEOUT'): Failure => ({ kind: 'retryable', code });
const FATAL: Failure = { kind: 'fatal', code: 'HTTP_400', status: 400 };
const AUTH: Failure = { kind: 'auth', code: 'HTTP_401' };
const CANCELLED: Failure = { kind: 'cancelled' };
const TOTAL: Failure = { kind: 'total' };
const ABORTED: Failure = { kind: 'other', code: 'ABORTED' };

const next: Step = { kind: 'next' };
const discard: Step = { kind: 'discard-and-next' };
const end = (outcome: 'UPSTREAM_INTERRUPTED' | 'TIMEOUT' | 'CLIENT_CANCELLED'): Step => ({ kind: 'end', outcome });
const giveUp = (why: 'chain' | 'cancelled' | 'total' | 'invalid'): Step => ({ kind: 'give-up', why });

describe('nextStep', () => {
  const table: [string, Failure, boolean, Mode, Step][] = [
    ['retryable before output: the next model', retryable('HTTP_500'), false, 'stream', next],
    ['retryable before output, collect: the next model', retryable('TIMEOUT'), false, 'collect', next],
    ['a cut after output, stream: the model never changes', retryable('INTERRUPTED'), true, 'stream', end('UPSTREAM_INTERRUPTED')],
    ['a stall after output, stream: TIMEOUT', retryable('STALL'), true, 'stream', end('TIMEOUT')],
    ['a cut after output, collect: discard and fall back', retryable('INTERRUPTED'), true, 'collect', discard],
    ['a stall after output, collect: discard and fall back', retryable('STALL'), true, 'collect', discard],
    ['aborted by neither signal: not the model’s answer, the next one', ABORTED, false, 'stream', next],
    ['an I/O bug after output, stream: interrupted', { kind: 'other', code: 'UNEXPECTED' }, true, 'stream', end('UPSTREAM_INTERRUPTED')],
    ['the gateway key refused: every model would fail', AUTH, false, 'stream', giveUp('chain')],
    ['the gateway key refused after output', AUTH, true, 'collect', giveUp('chain')],
    ['a fatal 4xx: the request is invalid, no fallback', FATAL, false, 'stream', giveUp('invalid')],
    ['a fatal 4xx after output, stream: interrupted', FATAL, true, 'stream', end('UPSTREAM_INTERRUPTED')],
    ['a fatal 4xx after output, collect: invalid', FATAL, true, 'collect', giveUp('invalid')],
    ['the client left before output', CANCELLED, false, 'stream', giveUp('cancelled')],
    ['the client left after output: the partial answer', CANCELLED, true, 'collect', end('CLIENT_CANCELLED')],
    ['the total deadline before output', TOTAL, false, 'collect', giveUp('total')],
    ['the total deadline after output: the partial answer', TOTAL, true, 'collect', end('TIMEOUT')],
    ['the total deadline after output, stream', TOTAL, true, 'stream', end('TIMEOUT')],
  ];
  it.each(table)('%s', (_name, failure, delivered, mode, step) => {
    expect(nextStep(failure, delivered, mode)).toEqual(step);
  });
});

describe('readFailure', () => {
  it('the client’s signal, then the total deadline, are the cause of whatever the call reported', () => {
    expect(readFailure({ kind: 'aborted' }, true, true)).toEqual(CANCELLED);
    expect(readFailure({ kind: 'retryable', code: 'CONNECTION' }, false, true)).toEqual(TOTAL);
    expect(readFailure({ kind: 'aborted' }, false, false)).toEqual(ABORTED);
    expect(readFailure(null, false, false)).toEqual({ kind: 'other', code: 'UNEXPECTED' });
    expect(readFailure(FATAL as never, false, false)).toEqual(FATAL);
  });
});

describe('failureCode and healthVerdict', () => {
  it('names each failure for the attempt record', () => {
    expect([retryable('HTTP_500'), FATAL, AUTH, CANCELLED, TOTAL, ABORTED].map(failureCode)).toEqual([
      'HTTP_500',
      'HTTP_400',
      'HTTP_401',
      'CLIENT_CANCELLED',
      'TOTAL_TIMEOUT',
      'ABORTED',
    ]);
  });

  it('counts only failures another attempt may not have against the breaker, with their Retry-After', () => {
    expect(healthVerdict({ kind: 'retryable', code: 'HTTP_429', retryAfterMs: 2_000 })).toEqual({ counts: true, retryAfterMs: 2_000 });
    expect(healthVerdict(retryable('HTTP_500'))).toEqual({ counts: true });
    expect(healthVerdict(ABORTED)).toEqual({ counts: true });
    for (const f of [FATAL, AUTH, CANCELLED, TOTAL]) expect(healthVerdict(f)).toEqual({ counts: false });
  });
});
