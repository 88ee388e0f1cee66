/**
 * @module linkage/csv
 * Reading the record-linkage engine's input tables from CSV (RFC 4180) and writing its results.
 * Input rules, every refusal and every recovery are listed in docs/linkage-input.md.
 *
 * The parser is our own rather than csv-parse: on a generated 1M-row, 123 MB file csv-parse 6.2
 * took 9.4 s without per-record line numbers and 12.8 s with them, against a budget of a few
 * seconds for 150 MB. The tests check this parser against csv-parse on random inputs, so the two
 * agree on every input both accept.
 */
import { isUtf8 } from 'node:buffer';
import { closeSync, openSync, readFileSync, readSync, statSync, type Stats } from 'node:fs';
import { OnceOnlyError, type ErrorDetail } from '../core/errors.ts';
import { writeAll, writeAtomically } from '../core/files.ts';
import type { Cell, Table } from './types.ts';
import { clip, clipList, shown, shownList } from './shown.ts';

/**
 * Default largest input accepted, in bytes. V8 cannot hold a string longer than 2^29 - 24
 * characters, so larger files could not be decoded in one piece anyway; a table this large already
 * needs a few GB of memory.
 */
export const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;

export interface ReadTableOptions {
  /** The header name of the column that identifies each record; its values must be present and unique. */
  idColumn: string;
  /** Refuse inputs larger than this many bytes (default {@link DEFAULT_MAX_BYTES}). */
  maxBytes?: number;
}

export interface ReadTableResult {
  table: Table;
  /** Recoveries made and oddities found, as sentences naming the file; empty for a clean file. */
  warnings: string[];
  /** The 1-based line each row of `table` starts on, for messages about a row. */
  lines: number[];
}

/** One CSV record with the physical line it starts on. */
export interface CsvRecord {
  line: number;
  cells: Cell[];
}

const LF = 10;
const CR = 13;
const TAB = 9;
const SPACE = 32;
const QUOTE = 34;
const COMMA = 44;

/**
 * Reads a CSV file into a table: the first record is the header, every later record one row.
 * Throws `not_found` when the file does not exist and `invalid_file` for every other problem.
 */
export function readTable(file: string, opts: ReadTableOptions): ReadTableResult {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    throw fileAccessError(file, e);
  }
  if (st.isDirectory()) {
    throw new OnceOnlyError('invalid_file', `${file} is a folder, not a CSV file. Give the path of the CSV file itself.`, {
      file,
      expected: 'a CSV file',
    });
  }
  // A device (/dev/zero, a terminal) or a socket never ends the way a file does.
  if (st.isCharacterDevice() || st.isBlockDevice() || st.isSocket()) {
    throw new OnceOnlyError('invalid_file', `${file} is a device or a socket, not a CSV file. Give the path of a CSV file.`, { file, expected: 'a CSV file' });
  }
  // stat's size is checked first so an oversized file is refused before it is read into memory.
  if (st.size > maxBytes) throw tooLarge(file, st.size, maxBytes);
  let buf: Buffer;
  try {
    // A pipe reports size 0 and may never end: it is read only up to the limit.
    buf = st.isFile() ? readFileSync(file) : readAtMost(file, maxBytes + 1);
  } catch (e) {
    throw fileAccessError(file, e);
  }
  // The file may have grown since stat, and pipes report size 0.
  if (buf.length > maxBytes) throw tooLarge(file, buf.length, maxBytes);
  const warnings: string[] = [];
  const text = decode(buf, file, warnings);
  return buildTable(text, file, opts.idColumn, warnings);
}

/** Reads at most `limit` bytes of `file` (a pipe, say) without trusting its reported size. */
function readAtMost(file: string, limit: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, limit - total));
      const n = chunk.length === 0 ? 0 : readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total >= limit) break;
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads CSV text already in memory (e.g. an HTTP request body) by the same rules as
 * {@link readTable}; `source` names the input in messages and becomes `table.source`.
 */
export function readTableFromString(text: string, source: string, opts: ReadTableOptions): ReadTableResult {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxBytes) throw tooLarge(source, size, maxBytes);
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  return buildTable(body, source, opts.idColumn, []);
}

/**
 * Every record of CSV text, the header included, with the line each starts on: blank lines
 * skipped, cells trimmed, empty cells null. Throws `invalid_file` on malformed quoting. For tools
 * that need records without the table rules (no header or id checks).
 */
export function parseCsvRecords(text: string, source: string): CsvRecord[] {
  const reader = new RecordReader(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, source);
  const out: CsvRecord[] = [];
  for (let cells = reader.next(); cells !== null; cells = reader.next()) out.push({ line: reader.line, cells });
  return out;
}

function buildTable(text: string, source: string, idColumn: string, warnings: string[]): ReadTableResult {
  // The check is a regex search, not text.trim(), so a large file is not copied just to test it.
  if (!/\S/.test(text)) {
    throw new OnceOnlyError(
      'invalid_file',
      `${source} is empty. Expected a CSV file whose first line names the columns (for example "rec_id,given_name,surname") and whose following lines hold one record each.`,
      { file: source, line: 1, expected: 'a header line followed by records' },
    );
  }
  const nul = text.indexOf('\u0000');
  if (nul !== -1) {
    const line = 1 + countNewlines(text, 0, nul);
    throw new OnceOnlyError(
      'invalid_file',
      `${source}, line ${line}: contains a NUL byte (0x00), which a CSV text file never has. The file may be binary (a spreadsheet or a compressed file renamed .csv) or saved as UTF-16 without a byte-order mark; save it as "CSV UTF-8" and try again.`,
      { file: source, line, expected: 'text without NUL bytes' },
    );
  }
  if (!text.includes('\n') && text.includes('\r')) {
    throw new OnceOnlyError(
      'invalid_file',
      `${source} ends its lines with a carriage return alone (the old Mac format), so it reads as one long line. Save it with ordinary line endings (LF or CR LF) and try again.`,
      { file: source, line: 1, expected: 'lines ending in LF or CR LF' },
    );
  }
  try {
    return buildFromRecords(new RecordReader(text, source), source, idColumn, warnings);
  } catch (e) {
    // V8's limits (string length, Map size) surface as RangeError; they mean "too big", not a bug.
    if (e instanceof RangeError) throw tooBigForMemory(source, e);
    throw e;
  }
}

function buildFromRecords(reader: RecordReader, source: string, idColumn: string, warnings: string[]): ReadTableResult {
  const header = reader.next();
  const headerLine = reader.line;
  if (header === null) throw new Error('unreachable: non-blank text has a first record');
  const columns = checkHeader(header, source, headerLine);
  reader.columns = columns;
  const idIndex = columns.indexOf(idColumn);
  if (idIndex === -1) throw missingIdColumn(source, headerLine, idColumn, columns);

  const ids: string[] = [];
  const rows: Cell[][] = [];
  const lines: number[] = [];
  const firstLineOf = new Map<string, number>();
  const width = columns.length;
  for (let cells = reader.next(); cells !== null; cells = reader.next()) {
    const line = reader.line;
    if (cells.length !== width) {
      throw new OnceOnlyError(
        'invalid_file',
        `${source}, line ${line}: found ${cells.length} ${plural(cells.length, 'value')} but the header (line ${headerLine}) has ${width} ${plural(width, 'column')}. Each line needs exactly one value per column; a value that itself contains a comma must be enclosed in double quotes.`,
        { file: source, line, found: cells.length, headerColumns: width, expected: `${width} ${plural(width, 'value')}, one per header column` },
      );
    }
    const id = cells[idIndex] ?? null;
    if (id === null) {
      throw new OnceOnlyError(
        'invalid_file',
        `${source}, line ${line}: the record has no value in the id column ${shown(idColumn)}. Every record needs its own id.`,
        { file: source, line, field: clip(idColumn), expected: 'a non-empty id' },
      );
    }
    const firstLine = firstLineOf.get(id);
    if (firstLine !== undefined) {
      throw new OnceOnlyError(
        'invalid_file',
        `${source}, line ${line}: the id ${quoteForMessage(id)} in column ${shown(idColumn)} was already used on line ${firstLine}. Every record needs its own id.`,
        { file: source, line, firstLine, field: clip(idColumn), id: clip(id), expected: 'an id not used by an earlier record' },
      );
    }
    firstLineOf.set(id, line);
    ids.push(id);
    rows.push(cells);
    lines.push(line);
  }
  if (rows.length === 0) {
    warnings.push(`${source} has a header (line ${headerLine}) but no records, so the table is empty.`);
  }
  return { table: { source, columns, ids, rows }, warnings, lines };
}

/**
 * The longest value linkage compares, in characters. Real names, addresses and emails are far
 * shorter (an email address is at most 254 characters, RFC 5321); the limit keeps the cost of one
 * comparison bounded.
 */
export const MAX_COMPARED_CHARS = 500;

/**
 * Refuses a table whose `columns` hold a value longer than `maxChars` characters, naming the
 * file, the line (from `lines`, else the record's position) and the column, never the value.
 * The string comparisons of linkage take time that grows with the product of two values'
 * lengths, so one enormous cell in a compared column could hold a run for hours.
 */
export function refuseLongValues(table: Table, columns: readonly string[], maxChars: number, lines?: readonly number[]): void {
  for (const column of columns) {
    const c = table.columns.indexOf(column);
    if (c < 0) continue;
    for (let i = 0; i < table.rows.length; i++) {
      const v = table.rows[i]![c];
      if (v == null || v.length <= maxChars) continue;
      const line = lines?.[i];
      const where = line !== undefined ? `line ${line}` : `record ${i + 1}`;
      throw new OnceOnlyError(
        'invalid_file',
        `${table.source}, ${where}: the value in column ${shown(column)} is ${v.length.toLocaleString('en-GB')} characters long; a value that is compared may be at most ${maxChars.toLocaleString('en-GB')}. No name, date, address, postcode or email is that long: check that the column holds what it is taken to hold.`,
        { file: table.source, ...(line !== undefined ? { line } : { record: i + 1 }), field: clip(column), length: v.length, expected: `at most ${maxChars} characters` },
      );
    }
  }
}

function checkHeader(header: Cell[], source: string, line: number): string[] {
  const seen = new Map<string, number>();
  const columns: string[] = [];
  for (let i = 0; i < header.length; i++) {
    const name = header[i] ?? null;
    if (name === null) {
      throw new OnceOnlyError(
        'invalid_file',
        `${source}, line ${line}: column ${i + 1} of the header has no name. Every column needs a name; a comma at the end of the header line adds an unnamed column.`,
        { file: source, line, column: i + 1, expected: 'a name for every column' },
      );
    }
    const earlier = seen.get(name);
    if (earlier !== undefined) {
      throw new OnceOnlyError(
        'invalid_file',
        `${source}, line ${line}: the header names the column ${shown(name)} twice (columns ${earlier + 1} and ${i + 1}). Every column needs a different name.`,
        { file: source, line, field: clip(name), positions: [earlier + 1, i + 1], expected: 'distinct column names' },
      );
    }
    const looks = looksLikeData(name);
    if (looks !== null) {
      throw new OnceOnlyError(
        'invalid_file',
        `${source}, line ${line}: the first line looks like a record, not a header: column ${i + 1} holds ${looks}. The first line must name the columns (for example "id,given_name,surname,dob"); add such a line at the top.`,
        { file: source, line, column: i + 1, expected: 'a header line naming the columns' },
      );
    }
    seen.set(name, i);
    columns.push(name);
  }
  return columns;
}

/**
 * What a header cell holds when it is plainly a value rather than a column name (a date, an email
 * address, a UK postcode), or null. A file without a header would otherwise lose its first record
 * to the header, and that person's details would travel on as column names into notes and reports.
 */
function looksLikeData(cell: string): string | null {
  if (/^\d{4}-\d{2}-\d{2}$/.test(cell) || /^\d{1,2}[/.]\d{1,2}[/.]\d{4}$/.test(cell) || /^(18|19|20)\d{6}$/.test(cell)) return 'a date';
  if (/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(cell)) return 'an email address';
  if (/^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$/i.test(cell)) return 'a postcode';
  return null;
}

function missingIdColumn(source: string, line: number, idColumn: string, columns: string[]): OnceOnlyError {
  const hints: string[] = [];
  const caseless = columns.find((c) => c.toLowerCase() === idColumn.toLowerCase());
  if (caseless !== undefined) hints.push(`Did you mean ${shown(caseless)}? Column names are case-sensitive.`);
  const only = columns.length === 1 ? (columns[0] ?? '') : '';
  if (only.includes(';') || only.includes('\t')) {
    hints.push(`The header seems to separate names with ${only.includes(';') ? 'semicolons' : 'tabs'}; this reader expects commas.`);
  }
  return new OnceOnlyError(
    'invalid_file',
    `${source}, line ${line}: the header has no column named ${shown(idColumn)}, which is needed to identify each record. Columns found: ${shownList(columns)}.${hints.length > 0 ? ` ${hints.join(' ')}` : ''}`,
    { file: source, line, field: clip(idColumn), columns: clipList(columns), expected: `a header column named ${shown(idColumn)}` },
  );
}

/**
 * Reads records one at a time so the table is built without an intermediate array of all records.
 * Quote-free lines (almost all of a typical file) are split on commas in one call; only lines with
 * a double quote go through the character-by-character path.
 */
class RecordReader {
  /** The 1-based physical line the record last returned by {@link next} starts on. */
  line = 0;
  /** Header names, once known, so syntax errors can name the column. */
  columns: string[] | undefined;
  private readonly text: string;
  private readonly source: string;
  private pos = 0;
  private nextLine = 1;
  // Cached position of the next double quote: searching afresh on every line would rescan the
  // rest of a quote-free file each time, which is quadratic.
  private nextQuote = -1;

  constructor(text: string, source: string) {
    this.text = text;
    this.source = source;
  }

  next(): Cell[] | null {
    const text = this.text;
    const n = text.length;
    while (this.pos < n) {
      const start = this.pos;
      let eol = text.indexOf('\n', start);
      if (eol === -1) eol = n;
      if (this.nextQuote < start) {
        const q = text.indexOf('"', start);
        this.nextQuote = q === -1 ? n : q;
      }
      if (this.nextQuote < eol) return this.quotedRecord(start);
      this.line = this.nextLine++;
      this.pos = eol + 1;
      const cells: Cell[] = text.slice(start, eol).split(',');
      for (let i = 0; i < cells.length; i++) {
        const t = (cells[i] as string).trim();
        cells[i] = t === '' ? null : t;
      }
      if (cells.length === 1 && cells[0] === null) continue;
      return cells;
    }
    return null;
  }

  /** Parses the record starting at `start`, which has a double quote before its first line ends. */
  private quotedRecord(start: number): Cell[] {
    const text = this.text;
    const n = text.length;
    let line = this.nextLine;
    this.line = line;
    const cells: Cell[] = [];
    let i = start;
    for (;;) {
      let j = i;
      while (text.charCodeAt(j) === SPACE || text.charCodeAt(j) === TAB) j++;
      let value: string;
      let end: number;
      if (text.charCodeAt(j) === QUOTE) {
        const openLine = line;
        let k = j + 1;
        value = '';
        for (;;) {
          const q = text.indexOf('"', k);
          if (q === -1) throw this.unclosedQuote(openLine, cells.length);
          line += countNewlines(text, k, q);
          if (text.charCodeAt(q + 1) === QUOTE) {
            value += text.slice(k, q + 1);
            k = q + 2;
            continue;
          }
          value += text.slice(k, q);
          k = q + 1;
          break;
        }
        while (text.charCodeAt(k) === SPACE || text.charCodeAt(k) === TAB) k++;
        const c = text.charCodeAt(k);
        if (!(k >= n || c === COMMA || c === LF || (c === CR && text.charCodeAt(k + 1) === LF))) {
          throw this.badClosingQuote(line, openLine, cells.length, k);
        }
        end = k;
      } else {
        let k = j;
        for (; k < n; k++) {
          const c = text.charCodeAt(k);
          if (c === COMMA || c === LF) break;
          if (c === QUOTE) throw this.strayQuote(line, cells.length);
        }
        value = text.slice(i, k);
        end = k;
      }
      const t = value.trim();
      cells.push(t === '' ? null : t);
      if (end >= n) {
        this.pos = n;
        break;
      }
      const sep = text.charCodeAt(end);
      if (sep === COMMA) {
        i = end + 1;
        continue;
      }
      this.pos = sep === CR ? end + 2 : end + 1;
      this.nextLine = line + 1;
      break;
    }
    this.nextQuote = -1;
    return cells;
  }

  private column(index: number): string {
    const name = this.columns?.[index];
    return name === undefined ? `column ${index + 1}` : `column ${index + 1} ("${name}")`;
  }

  private detail(line: number, index: number): ErrorDetail {
    const name = this.columns?.[index];
    return { file: this.source, line, column: index + 1, ...(name === undefined ? {} : { field: name }) };
  }

  private unclosedQuote(line: number, index: number): OnceOnlyError {
    return new OnceOnlyError(
      'invalid_file',
      `${this.source}, line ${line}: the value in ${this.column(index)} starts with a double quote (") that is never closed, so everything after it to the end of the file would be one value. Add the closing quote, or write a quote that is part of the value twice ("").`,
      { ...this.detail(line, index), expected: 'a closing double quote' },
    );
  }

  private badClosingQuote(line: number, openLine: number, index: number, at: number): OnceOnlyError {
    const found = at < this.text.length ? this.text.charAt(at) : '';
    const started = openLine === line ? '' : ` The quoted value started on line ${openLine}.`;
    return new OnceOnlyError(
      'invalid_file',
      `${this.source}, line ${line}: in ${this.column(index)}, a closing double quote is followed by ${JSON.stringify(found)} instead of a comma or the end of the line.${started} A double quote inside a quoted value must be written twice ("").`,
      { ...this.detail(line, index), quoteLine: openLine, expected: 'a comma or the end of the line after a closing quote' },
    );
  }

  private strayQuote(line: number, index: number): OnceOnlyError {
    return new OnceOnlyError(
      'invalid_file',
      `${this.source}, line ${line}: ${this.column(index)} has a double quote (") inside a value that is not enclosed in quotes. Enclose the whole value in double quotes and write the inner quote twice, e.g. "John ""Jack"" Smith".`,
      { ...this.detail(line, index), expected: 'double quotes only around a whole value' },
    );
  }
}

function countNewlines(text: string, from: number, to: number): number {
  let count = 0;
  for (let p = text.indexOf('\n', from); p !== -1 && p < to; p = text.indexOf('\n', p + 1)) count++;
  return count;
}

/** Decodes file bytes: UTF-8 (BOM stripped), or Windows-1252 with a warning when not valid UTF-8. */
function decode(buf: Buffer, file: string, warnings: string[]): string {
  if ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff)) {
    throw new OnceOnlyError(
      'invalid_file',
      `${file} is saved as UTF-16 ("Unicode text"), which this reader does not accept. Save it as "CSV UTF-8" and try again.`,
      { file, line: 1, expected: 'UTF-8 text' },
    );
  }
  const body = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? buf.subarray(3) : buf;
  try {
    if (isUtf8(body)) return body.toString('utf8');
    const bad = firstInvalidUtf8(body);
    const byte = body[bad] ?? 0;
    const text = decodeWindows1252(body);
    warnings.push(
      `${file}, line ${1 + countByte(body, LF, bad)}: has bytes that are not valid UTF-8 (the first is 0x${byte.toString(16).toUpperCase().padStart(2, '0')}), so the whole file was read as Windows-1252 (Latin-1), where that byte is ${JSON.stringify(decodeWindows1252(Uint8Array.of(byte)))}. If names look wrong, save the file as UTF-8.`,
    );
    return text;
  } catch (e) {
    if (e instanceof RangeError) throw tooBigForMemory(file, e);
    throw e;
  }
}

// Windows-1252 bytes 0x80-0x9F (WHATWG Encoding Standard index). Node's own
// TextDecoder('windows-1252') decodes these as ISO-8859-1 since 20.18.3 (nodejs/node#60888), so
// a file with curly quotes or a euro sign would come out wrong.
const CP1252_HIGH =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

function decodeWindows1252(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('latin1')
    .replace(/[\u0080-\u009f]/g, (c) => CP1252_HIGH.charAt(c.charCodeAt(0) - 0x80));
}

/** Offset of the first byte that breaks UTF-8 well-formedness (Unicode Table 3-7), or the length. */
function firstInvalidUtf8(b: Uint8Array): number {
  const n = b.length;
  const cont = (p: number, lo = 0x80, hi = 0xbf): boolean => p < n && (b[p] as number) >= lo && (b[p] as number) <= hi;
  let i = 0;
  while (i < n) {
    const c = b[i] as number;
    if (c < 0x80) {
      i++;
    } else if (c >= 0xc2 && c <= 0xdf) {
      if (!cont(i + 1)) return i;
      i += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      const lo = c === 0xe0 ? 0xa0 : 0x80;
      const hi = c === 0xed ? 0x9f : 0xbf;
      if (!cont(i + 1, lo, hi) || !cont(i + 2)) return i;
      i += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      const lo = c === 0xf0 ? 0x90 : 0x80;
      const hi = c === 0xf4 ? 0x8f : 0xbf;
      if (!cont(i + 1, lo, hi) || !cont(i + 2) || !cont(i + 3)) return i;
      i += 4;
    } else {
      return i;
    }
  }
  return n;
}

function countByte(b: Buffer, byte: number, before: number): number {
  let count = 0;
  for (let p = b.indexOf(byte); p !== -1 && p < before; p = b.indexOf(byte, p + 1)) count++;
  return count;
}

function fileAccessError(file: string, e: unknown): OnceOnlyError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new OnceOnlyError('not_found', `${file} does not exist. Check the path and the file name.`, { file, expected: 'an existing CSV file' });
  }
  if (code === 'EISDIR') {
    return new OnceOnlyError('invalid_file', `${file} is a folder, not a CSV file. Give the path of the CSV file itself.`, {
      file,
      expected: 'a CSV file',
    });
  }
  const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : e instanceof Error ? e.message : String(e);
  return new OnceOnlyError('invalid_file', `${file} could not be read (${why}).`, { file, code, expected: 'a readable CSV file' });
}

function tooLarge(file: string, size: number, maxBytes: number): OnceOnlyError {
  return new OnceOnlyError(
    'invalid_file',
    `${file} is ${formatBytes(size)}, more than the ${formatBytes(maxBytes)} this reader accepts. Split the file, or raise the limit (maxBytes).`,
    { file, size, maxBytes, expected: `at most ${maxBytes} bytes` },
  );
}

function tooBigForMemory(file: string, e: RangeError): OnceOnlyError {
  return new OnceOnlyError('invalid_file', `${file} is too large to load into memory in one piece (${e.message}). Split the file.`, {
    file,
    expected: 'a smaller file',
  });
}

function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${n} bytes`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB (${n} bytes)`;
}

function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`;
}

function quoteForMessage(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}

// OWASP "CSV Injection": spreadsheets run a cell starting with one of these as a formula.
const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/**
 * One CSV cell. Text that a spreadsheet would run as a formula gets a leading `'`; numbers are
 * written as given, since `-5` passed as a number is data, not a formula.
 */
function csvCell(value: string | number | null): string {
  if (value === null) return '';
  if (typeof value === 'number') return String(value);
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One CSV line, ending in `\n`, quoted and formula-neutralised like {@link writeCsv}; for streaming writers. */
export function csvLine(values: readonly (string | number | null)[]): string {
  let line = '';
  for (let i = 0; i < values.length; i++) line += (i === 0 ? '' : ',') + csvCell(values[i] ?? null);
  return `${line}\n`;
}

/**
 * Writes a header and rows as CSV (UTF-8, no BOM, `\n` line ends). Values with a comma, a double
 * quote or a line break are quoted; text starting with `=`, `+`, `-`, `@`, tab or CR gets a
 * leading `'` (OWASP CSV Injection); numbers are written as given and null as an empty cell.
 * Written to a temporary file and renamed, so a failure never leaves half a file at `file`.
 */
export function writeCsv(file: string, header: string[], rows: Iterable<(string | number | null)[]>): void {
  writeAtomically(file, (fd) => {
    let chunk = csvLine(header);
    let n = 0;
    for (const row of rows) {
      n++;
      if (row.length !== header.length) {
        throw new Error(`writeCsv(${file}): row ${n} has ${row.length} values but the header has ${header.length}`);
      }
      chunk += csvLine(row);
      if (chunk.length >= 1 << 20) {
        writeAll(fd, chunk);
        chunk = '';
      }
    }
    writeAll(fd, chunk);
  });
}
