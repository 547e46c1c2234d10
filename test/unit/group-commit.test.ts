import { makeGroupCommit, type ItemOutcome } from '../../src/accounting/group-commit';

/** A writer the test completes by hand: records each batch and returns a promise the test resolves. */
function manualWriter<T>() {
  const batches: T[][] = [];
  const pending: Array<{ resolve: (o: ItemOutcome<string>[]) => void; reject: (e: Error) => void; items: T[] }> = [];
  const write = (items: readonly T[]) =>
    new Promise<ItemOutcome<string>[]>((resolve, reject) => {
      batches.push([...items]);
      pending.push({ resolve, reject, items: [...items] });
    });
  const okAll = (i: number) => pending[i]!.resolve(pending[i]!.items.map((x) => ({ ok: true, value: `done ${String(x)}` })));
  return { batches, pending, write, okAll };
}

const tick = () => new Promise((r) => setImmediate(r));

test('an item submitted while idle is written at once, alone: no timer, no wait for company', async () => {
  const w = manualWriter<number>();
  const gc = makeGroupCommit({ write: w.write });
  const p = gc.submit(1);
  expect(w.batches).toEqual([[1]]); // synchronously, inside submit
  w.okAll(0);
  await expect(p).resolves.toBe('done 1');
});

test('items submitted while a flush is in flight go together as the next flush, the moment it ends', async () => {
  const w = manualWriter<number>();
  const gc = makeGroupCommit({ write: w.write });
  const first = gc.submit(1);
  const rest = [2, 3, 4].map((n) => gc.submit(n));
  expect(w.batches).toEqual([[1]]);
  expect(gc.queued).toBe(3);
  w.okAll(0);
  await first;
  await tick();
  expect(w.batches).toEqual([[1], [2, 3, 4]]);
  w.okAll(1);
  await expect(Promise.all(rest)).resolves.toEqual(['done 2', 'done 3', 'done 4']);
  expect(gc.queued).toBe(0);
});

test('maxBatch splits a long queue; maxInFlight lets that many flushes run at once', async () => {
  const w = manualWriter<number>();
  const gc = makeGroupCommit({ write: w.write, maxBatch: 2, maxInFlight: 2 });
  const all = [1, 2, 3, 4, 5, 6].map((n) => gc.submit(n));
  expect(w.batches).toEqual([[1], [2]]); // two idle slots: each takes what was there
  w.okAll(0);
  await tick();
  expect(w.batches).toEqual([[1], [2], [3, 4]]);
  w.okAll(1);
  w.okAll(2);
  await tick();
  await tick();
  expect(w.batches).toEqual([[1], [2], [3, 4], [5, 6]]);
  w.okAll(3);
  await expect(Promise.all(all)).resolves.toHaveLength(6);
});

test("one item's failure fails only its own caller", async () => {
  const w = manualWriter<string>();
  const gc = makeGroupCommit({ write: w.write });
  const a = gc.submit('a');
  w.pending[0]!.resolve([{ ok: true, value: 'A' }]);
  await a;
  const [b, c, d] = ['b', 'c', 'd'].map((x) => gc.submit(x));
  await tick();
  w.pending[1]!.resolve([
    { ok: true, value: 'B' },
    { ok: false, error: new Error('c conflicts') },
    { ok: true, value: 'D' },
  ]);
  await expect(b).resolves.toBe('B');
  await expect(c).rejects.toThrow('c conflicts');
  await expect(d).resolves.toBe('D');
});

test('a writer that throws fails every item of that flush and only of that flush; the next flush runs', async () => {
  const w = manualWriter<number>();
  const gc = makeGroupCommit({ write: w.write });
  const first = gc.submit(1);
  const second = [2, 3].map((n) => gc.submit(n));
  w.pending[0]!.reject(new Error('connection lost'));
  await expect(first).rejects.toThrow('connection lost');
  await tick();
  w.pending[1]!.reject(new Error('connection lost again'));
  for (const p of second) await expect(p).rejects.toThrow('connection lost again');
  const third = gc.submit(4);
  w.okAll(2);
  await expect(third).resolves.toBe('done 4');
});

test('a writer that answers for the wrong number of items fails the flush rather than guessing', async () => {
  const gc = makeGroupCommit<number, string>({ write: async () => [] });
  await expect(gc.submit(1)).rejects.toThrow('0 outcomes for 1 items');
});

test('a writer that throws synchronously still fails only its flush', async () => {
  let calls = 0;
  const gc = makeGroupCommit<number, number>({
    write: (items) => {
      if (calls++ === 0) throw new Error('sync throw');
      return Promise.resolve(items.map((v) => ({ ok: true, value: v * 10 })));
    },
  });
  await expect(gc.submit(1)).rejects.toThrow('sync throw');
  await expect(gc.submit(2)).resolves.toBe(20);
});
