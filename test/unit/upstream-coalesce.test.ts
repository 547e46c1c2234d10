import { coalesceDeltas } from '../../src/upstream/client';

describe('coalesceDeltas (collect mode: one event per network read)', () => {
  it('merges consecutive deltas and keeps their count', () => {
    expect(
      coalesceDeltas([
        { type: 'delta', text: ' a' },
        { type: 'delta', text: ' b' },
        { type: 'delta', text: ' c', chunks: 2 },
      ]),
    ).toEqual([{ type: 'delta', text: ' a b c', chunks: 4 }]);
  });
  it('keeps usage events in place, between the runs they separate', () => {
    expect(
      coalesceDeltas([
        { type: 'delta', text: 'x' },
        { type: 'usage', promptTokens: 3, completionTokens: 2, cachedPromptTokens: 0, cacheWriteTokens: 0 },
        { type: 'delta', text: 'y' },
      ]),
    ).toEqual([
      { type: 'delta', text: 'x', chunks: 1 },
      { type: 'usage', promptTokens: 3, completionTokens: 2, cachedPromptTokens: 0, cacheWriteTokens: 0 },
      { type: 'delta', text: 'y', chunks: 1 },
    ]);
  });
  it('passes an empty read through as nothing', () => {
    expect(coalesceDeltas([])).toEqual([]);
  });
});
