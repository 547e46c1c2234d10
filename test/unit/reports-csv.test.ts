import { parse } from 'csv-parse/sync';
import { csvCell, toCsv, CSV_EOL } from '../../src/reports/csv';

describe('csvCell', () => {
  it.each([
    ['=1+1', "'=1+1"],
    ['+1', "'+1"],
    ['-2', "'-2"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['\tx', "'\tx"],
  ])('neutralises a cell starting with a formula character: %j', (input, expected) => {
    expect(csvCell(input)).toBe(expected);
  });

  it('quotes commas, quotes and line breaks, doubling quotes', () => {
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell('cr\rhere')).toBe('"cr\rhere"');
    // Neutralised first, then quoted: the quote goes inside the field.
    expect(csvCell('=HYPERLINK("http://x","y")')).toBe('"\'=HYPERLINK(""http://x"",""y"")"');
  });

  it('leaves ordinary cells and non-leading formula characters alone', () => {
    expect(csvCell('glm-5')).toBe('glm-5');
    expect(csvCell('96.000000')).toBe('96.000000');
    expect(csvCell('a=b')).toBe('a=b');
    expect(csvCell('')).toBe('');
  });
});

describe('toCsv', () => {
  it('writes a header and one CRLF-terminated line per row that a CSV parser reads back', () => {
    const rows = [
      ['=cmd', '1'],
      ['a,"b"\r\nc', '2'],
    ];
    const text = toCsv(['key', 'n'], rows);
    expect(text.startsWith(`key,n${CSV_EOL}`)).toBe(true);
    expect(text.endsWith(CSV_EOL)).toBe(true);
    const back = parse(text, { relax_column_count: false }) as string[][];
    expect(back).toEqual([
      ['key', 'n'],
      ["'=cmd", '1'],
      ['a,"b"\r\nc', '2'],
    ]);
  });

  it('writes only the header for no rows', () => {
    expect(toCsv(['key', 'n'], [])).toBe(`key,n${CSV_EOL}`);
  });
});
