import { areasInWindow, bucketOf } from '../../bench/lib/profile-areas';
import type { Profile } from '../../bench/lib/cpuprofile';

test('self time is counted under the library, or the project folder, that owns the function', () => {
  expect(bucketOf('execute', 'file:///x/node_modules/graphql/execution/execute.js')).toMatch(/^graphql-js/);
  expect(bucketOf('processRequest', 'file:///x/node_modules/@apollo/server/dist/cjs/runHttpQuery.js')).toBe('Apollo Server + express');
  expect(bucketOf('evalsha', 'file:///x/node_modules/ioredis/built/Redis.js')).toBe('ioredis');
  expect(bucketOf('parse', 'file:///x/node_modules/pg-protocol/dist/parser.js')).toBe('pg');
  expect(bucketOf('x', 'wasm://wasm/00d1cb12')).toBe('Prisma');
  expect(bucketOf('request', 'node:internal/deps/undici/undici')).toBe('undici');
  expect(bucketOf('writev', 'node:net')).toMatch(/^Node core/);
  expect(bucketOf('settle', 'file:///work/src/chat/steps/settle.ts')).toBe('ours: src/chat/');
  expect(bucketOf('(garbage collector)', '')).toBe('GC');
  expect(bucketOf('(program)', '')).toMatch(/^\(program\)/);
  expect(bucketOf('stringify', '')).toBe('JSON (parse, stringify)');
  expect(bucketOf('leftPad', 'file:///x/node_modules/left-pad/index.js')).toBe('other npm: left-pad');
});

test('only the window is summarised, idle left out, shares of the busy time', () => {
  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });
  const p: Profile = {
    nodes: [
      { id: 1, callFrame: frame('(idle)', '') },
      { id: 2, callFrame: frame('execute', 'file:///x/node_modules/graphql/execution/execute.js') },
      { id: 3, callFrame: frame('(garbage collector)', '') },
    ],
    // timeDeltas (µs) end at each sample: samples at 500 and 1000 ms (start-up), then 1001 (GC), 1002 (idle), 1004.
    samples: [2, 2, 3, 1, 2],
    timeDeltas: [500_000, 500_000, 1_000, 1_000, 2_000],
    startTime: 0,
    endTime: 1_004_000,
  };
  const { busyMs, rows } = areasInWindow(p, 1_000.5, 1_005);
  expect(busyMs).toBe(3);
  expect(rows.map((r) => [r.area.split(' ')[0], r.ms, r.share])).toEqual([
    ['graphql-js', 2, 66.7],
    ['GC', 1, 33.3],
  ]);
});
