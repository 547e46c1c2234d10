import { projectCost, type OutputPrices } from '../../src/reports/projection';
import { MODEL_TABLE } from '../../src/catalog/model-table';
import { AppError } from '../../src/errors';

const PRICES: OutputPrices = new Map<string, bigint | null>([
  ...MODEL_TABLE.map((m): [string, bigint | null] => [m.id, m.outputMicrosPerMillion]),
  ['no-price', null],
]);

function codeOf(f: () => unknown): { code: string; field: unknown; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof AppError) return { code: e.code, field: e.extensions.field, message: e.message };
    throw e;
  }
  throw new Error('did not throw');
}

describe('projectCost', () => {
  it('reproduces the model table: 50M tokens of glm-5 = $96, deepseek-v4-pro = $39, the mix = $13.40', () => {
    expect(projectCost(50_000_000, [{ model: 'glm-5', share: 1 }], PRICES).totalMicros).toBe(96_000_000n);
    expect(projectCost(50_000_000, [{ model: 'deepseek-v4-pro', share: 1 }], PRICES).totalMicros).toBe(39_000_000n);
    const mix = projectCost(
      50_000_000,
      [
        { model: 'deepseek-v4-flash', share: 0.6 },
        { model: 'qwen3-8b', share: 0.3 },
        { model: 'minimax-m2.5', share: 0.1 },
      ],
      PRICES,
    );
    expect(mix.totalMicros).toBe(13_400_000n);
    expect(mix.rows).toEqual([
      { model: 'deepseek-v4-flash', share: 0.6, outputTokens: 30_000_000, costMicros: 7_500_000n },
      { model: 'qwen3-8b', share: 0.3, outputTokens: 15_000_000, costMicros: 150_000n },
      { model: 'minimax-m2.5', share: 0.1, outputTokens: 5_000_000, costMicros: 5_750_000n },
    ]);
  });

  it('rounds tokens half up and charges every partial micro-dollar', () => {
    // 3 tokens x 0.5 = 1.5 -> 2 tokens; 2 x 10_000 / 1e6 = 0.02 micro -> 1 micro.
    const p = projectCost(
      3,
      [
        { model: 'qwen3-8b', share: 0.5 },
        { model: 'glm-5', share: 0.5 },
      ],
      PRICES,
    );
    expect(p.rows.map((r) => r.outputTokens)).toEqual([2, 2]);
    expect(p.rows[0]!.costMicros).toBe(1n);
    expect(p.rows[1]!.costMicros).toBe(4n); // 2 x 1_920_000 / 1e6 = 3.84 -> 4
    expect(p.totalMicros).toBe(5n);
    expect(projectCost(0, [{ model: 'glm-5', share: 1 }], PRICES).totalMicros).toBe(0n);
  });

  it('accepts shares that sum to 1 within 1e-9 and refuses those that do not', () => {
    expect(() =>
      projectCost(
        1,
        [
          { model: 'glm-5', share: 0.5 },
          { model: 'qwen3-8b', share: 0.5 + 5e-10 },
        ],
        PRICES,
      ),
    ).not.toThrow();
    expect(
      codeOf(() =>
        projectCost(
          1,
          [
            { model: 'glm-5', share: 0.5 },
            { model: 'qwen3-8b', share: 0.5 + 2e-9 },
          ],
          PRICES,
        ),
      ),
    ).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mix' });
    expect(codeOf(() => projectCost(1, [{ model: 'glm-5', share: 0.9 }], PRICES))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mix' });
  });

  it.each([
    ['empty mix', 10, []],
    ['unknown model', 10, [{ model: 'gpt-x', share: 1 }]],
    [
      'duplicate model',
      10,
      [
        { model: 'glm-5', share: 0.5 },
        { model: 'glm-5', share: 0.5 },
      ],
    ],
    [
      'share above 1',
      10,
      [
        { model: 'glm-5', share: 1.5 },
        { model: 'qwen3-8b', share: -0.5 },
      ],
    ],
    [
      'negative share',
      10,
      [
        { model: 'glm-5', share: -0.1 },
        { model: 'qwen3-8b', share: 1.1 },
      ],
    ],
    ['NaN share', 10, [{ model: 'glm-5', share: Number.NaN }]],
  ])('refuses %s with BAD_USER_INPUT naming mix', (_name, tokens, mix) => {
    expect(codeOf(() => projectCost(tokens, mix as { model: string; share: number }[], PRICES))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'mix' });
  });

  it('lists the known models when one is unknown', () => {
    const e = codeOf(() => projectCost(10, [{ model: 'gpt-x', share: 1 }], PRICES));
    expect(e.message).toContain('gpt-x');
    expect(e.message).toContain('deepseek-v4-flash');
    expect(e.message).toContain('glm-5');
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])('refuses monthlyOutputTokens %p', (n) => {
    expect(codeOf(() => projectCost(n, [{ model: 'glm-5', share: 1 }], PRICES))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'monthlyOutputTokens' });
  });

  it('refuses a model without an output price with UNPRICED_MODEL', () => {
    expect(codeOf(() => projectCost(10, [{ model: 'no-price', share: 1 }], PRICES)).code).toBe('UNPRICED_MODEL');
  });

  it('is exact beyond float precision', () => {
    const big = Number.MAX_SAFE_INTEGER;
    const p = projectCost(big, [{ model: 'kimi-k2.5', share: 1 }], PRICES);
    expect(p.totalMicros).toBe((BigInt(big) * 3_000_000n + 999_999n) / 1_000_000n);
  });
});
