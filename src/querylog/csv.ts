// CSV for spreadsheets: RFC 4180 (CRLF between records, a field quoted when it holds a comma,
// quote or line break, quotes doubled), written by csv-stringify, and safe to open in Excel or
// LibreOffice. Query names come from any DNS client, so a query for `=HYPERLINK("http://x")+a.tiktok.com`
// must not become a formula: every cell that starts with `=`, `+`, `-`, `@`, a tab or a CR (and
// their full-width forms) gets a leading `'` (OWASP "CSV injection"), which spreadsheets read as
// "this is text" and do not show. A DNS name never starts with any of them, so normal values are
// untouched.
//
// Numbers stay numbers: csv-stringify escapes a leading `-` only in strings, so the number -1 is
// written as -1 (a negative number is not a formula, and rcodes, counts and durations are never
// negative anyway). The string "-1" is escaped like any other text.
import { stringify } from 'csv-stringify/sync';

export type CsvCell = string | number | boolean | null | undefined;

/** The header row, then one row per record; null and undefined are empty cells. */
export function renderCsv(headers: string[], rows: CsvCell[][]): string {
  return stringify([headers, ...rows], {
    escape_formulas: true,
    record_delimiter: 'windows',
    // With a record_delimiter of its own csv-stringify quotes only fields holding that whole
    // delimiter; a lone \n or \r must be quoted too or a spreadsheet starts a new row there.
    quote_record_delimiter: true,
    // csv-stringify writes booleans as "1" and ""; the log has always said true and false.
    cast: { boolean: (v) => (v ? 'true' : 'false') },
  });
}
