/**
 * CSV as RFC 4180 writes it: fields separated by commas, every record (the header too) ended by CRLF, a field
 * quoted when it holds a comma, a double quote, CR or LF, with its double quotes doubled.
 *
 * Every cell is also neutralised against CSV injection (OWASP): a cell that starts with =, +, -, @, TAB or CR is
 * prefixed with a single quote, so a spreadsheet shows it as text instead of running it as a formula. Report keys
 * (profile names, model ids) are the only free text, but the rule applies to every cell so no future column can
 * slip past it. Numbers in reports are never negative, so no numeric cell is altered.
 */
export const CSV_EOL = '\r\n';

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

export function csvCell(value: string): string {
  const safe = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** One header line and one line per row; each line ends with CRLF. */
export function toCsv(header: readonly string[], rows: readonly (readonly string[])[]): string {
  let out = header.map(csvCell).join(',') + CSV_EOL;
  for (const r of rows) out += r.map(csvCell).join(',') + CSV_EOL;
  return out;
}
