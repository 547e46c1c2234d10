import { parseFaultSpec } from '../../src/simulator/faults';

/** The over_usage fault of shared/api/simulator.md: reported tokens multiplied by `factor`. */
describe('over_usage fault spec', () => {
  const models = new Set(['glm-5']);

  it('defaults factor to 3 and keeps a given whole factor', () => {
    expect(parseFaultSpec({ model: '*', fault: 'over_usage' }, models)).toEqual({
      ok: true,
      spec: { model: '*', times: 1, fault: { kind: 'over_usage', factor: 3 } },
    });
    expect(parseFaultSpec({ model: 'glm-5', fault: 'over_usage', factor: 10, times: 2 }, models)).toEqual({
      ok: true,
      spec: { model: 'glm-5', times: 2, fault: { kind: 'over_usage', factor: 10 } },
    });
  });

  it.each([0, 1.5, -2, 'x'])('refuses factor %j, naming it', (factor) => {
    const r = parseFaultSpec({ model: '*', fault: 'over_usage', factor }, models);
    expect(r).toEqual({ ok: false, message: expect.stringContaining('factor must be a whole number >= 1') });
  });
});
