import { parseArgs, renderOverview, renderReport } from '../../src/reports/cli';
import type { CostReportView } from '../../src/reports';

describe('parseArgs', () => {
  it('reads flags with spaces or =, case-insensitive values, and defaults', () => {
    expect(parseArgs(['--month', '2026-11'])).toEqual({ month: '2026-11', tenant: null, group: null, format: 'table' });
    expect(parseArgs(['--month=2026-11', '--tenant=acme corp', '--group', 'KEY', '--format', 'JSON'])).toEqual({
      month: '2026-11',
      tenant: 'acme corp',
      group: 'API_KEY',
      format: 'json',
    });
    expect(parseArgs(['--month', '2026-11', '--help'])).toBe('help');
  });

  it.each([
    [[], /--month is required/],
    [['--month', '2026-1'], /not a month/],
    [['--month', '2026-11', '--group', 'week', '--tenant', 'a'], /--group must be one of/],
    [['--month', '2026-11', '--format', 'xml'], /--format must be one of/],
    [['--month', '2026-11', '--tenant'], /--tenant needs a value/],
    [['--month', '2026-11', '--tenant', '--format', 'csv'], /--tenant needs a value/],
    [['--month', '2026-11', 'extra'], /unknown argument/],
    [['--month', '2026-11', '--group', 'day'], /add --tenant/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseArgs(argv as string[])).toThrow(message as RegExp);
  });
});

describe('rendering', () => {
  const report: CostReportView = {
    tenantId: 't-1',
    month: '2026-11',
    groupBy: 'PROFILE',
    totalMicros: 1_500_001n,
    rows: [
      {
        key: 'long_form',
        requests: 2,
        promptTokens: 10,
        unpricedPromptTokens: 10,
        cachedPromptTokens: 0,
        cacheWriteTokens: 0,
        completionTokens: 100,
        costMicros: 1_500_000n,
      },
      {
        key: 'evil\u001b[31m',
        requests: 1,
        promptTokens: 1,
        unpricedPromptTokens: 0,
        cachedPromptTokens: 0,
        cacheWriteTokens: 0,
        completionTokens: 1,
        costMicros: 1n,
      },
    ],
    csv: 'key,requests\r\n',
  };

  it('prints a table with a total and escapes control characters', () => {
    const lines = renderReport('acme', report, 'table').trimEnd().split('\n');
    expect(lines[0]).toBe('Cost report: tenant acme (t-1), 2026-11 (UTC), by profile');
    expect(lines[3]).toMatch(/^long_form\s+2\s+10\s+10\s+0\s+0\s+100\s+1\.500000$/);
    expect(lines[4]).toMatch(/^evil\\u001b\[31m\s+1\s+1\s+0\s+0\s+0\s+1\s+0\.000001$/);
    expect(lines[5]).toMatch(/^TOTAL\s+3\s+11\s+10\s+0\s+0\s+101\s+1\.500001$/);
  });

  it('prints the csv field untouched and json with Usd strings', () => {
    expect(renderReport('acme', report, 'csv')).toBe(report.csv);
    expect(JSON.parse(renderReport('acme', report, 'json'))).toMatchObject({ totalUsd: '1.500001', rows: [{ costUsd: '1.500000' }, { costUsd: '0.000001' }] });
  });

  it('prints the overview with share used as a percentage', () => {
    const text = renderOverview(
      '2026-11',
      [
        { tenantId: 'a', name: 'alpha', spentMicros: 2_500_000n, budgetMicros: 10_000_000n, shareUsed: 0.25 },
        { tenantId: 'b', name: 'beta', spentMicros: 0n, budgetMicros: null, shareUsed: null },
      ],
      'table',
    );
    expect(text.split('\n')[3]).toMatch(/^alpha\s+2\.500000\s+10\.000000\s+25\.0%$/);
    expect(text.split('\n')[4]).toMatch(/^beta\s+0\.000000\s+-\s+-$/);
  });
});
