import { periodic } from '../../src/infra/periodic';

/** Resolves when `check` holds, polling every few ms (fails the test after 2 s). */
async function until(check: () => boolean): Promise<void> {
  const end = Date.now() + 2_000;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('one pass at a time: ticks during a slow pass are skipped, not queued', async () => {
  let running = 0;
  let most = 0;
  let passes = 0;
  let release!: () => void;
  const job = periodic(
    async () => {
      running++;
      most = Math.max(most, running);
      passes++;
      if (passes === 1) await new Promise<void>((r) => (release = r)); // the first pass outlives several ticks
      running--;
    },
    5,
    () => undefined,
  );
  job.start();
  await until(() => passes === 1);
  await new Promise((r) => setTimeout(r, 40)); // eight intervals go by while the first pass runs
  expect(passes).toBe(1);
  release();
  await until(() => passes >= 2);
  await job.stop();
  expect(most).toBe(1);
});

test('a failed pass goes to onError and the next tick runs again; stop waits for the running pass', async () => {
  const errors: unknown[] = [];
  let passes = 0;
  let finished = false;
  const job = periodic(
    async () => {
      passes++;
      if (passes === 1) throw new Error('database away');
      await new Promise((r) => setTimeout(r, 30));
      finished = true;
    },
    5,
    (e) => errors.push(e),
  );
  job.start();
  job.start(); // idempotent: still one timer
  await until(() => passes === 2);
  await job.stop();
  expect(finished).toBe(true); // stop returned only after the second pass ended
  expect(errors).toHaveLength(1);
  const after = passes;
  await new Promise((r) => setTimeout(r, 30));
  expect(passes).toBe(after); // no tick after stop
});
