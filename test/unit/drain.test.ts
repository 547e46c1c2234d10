import { makeDrain, ShutdownAbort } from '../../src/chat/drain';

test('idle: drain resolves at once, nothing ended', async () => {
  const d = makeDrain();
  expect(await d.drain(10_000)).toEqual({ finished: 0, ended: 0 });
  expect(d.draining).toBe(true);
  expect(d.deadline.aborted).toBe(false);
});

test('runs that finish within the deadline are waited for, and none is aborted', async () => {
  const d = makeDrain();
  const leave = [d.enter(), d.enter()];
  const drained = d.drain(10_000);
  expect(d.draining).toBe(true);
  leave[0]!();
  leave[0]!(); // leaving twice counts once
  expect(d.inFlight).toBe(1);
  leave[1]!();
  expect(await drained).toEqual({ finished: 2, ended: 0 });
  expect(d.deadline.aborted).toBe(false);
});

test('at the deadline the rest are aborted with ShutdownAbort, and drain waits until they have left', async () => {
  const d = makeDrain();
  d.enter()(); // one finished before the drain
  const quick = d.enter();
  const slow = d.enter();
  d.deadline.addEventListener('abort', () => setImmediate(slow)); // it settles, then leaves
  const drained = d.drain(50);
  quick();
  const r = await drained;
  expect(r).toEqual({ finished: 1, ended: 1 });
  expect(d.deadline.reason).toBeInstanceOf(ShutdownAbort);
  expect(d.inFlight).toBe(0);
});
