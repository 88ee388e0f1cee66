/**
 * Tests for linkage/csv: every input rule, refusal and recovery in docs/linkage-input.md, the
 * shipped FEBRL and Splink files, the writer's quoting, and the parser checked against csv-parse.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parse as csvParse } from 'csv-parse/sync';
import { isOnceOnlyError, type ErrorType, type OnceOnlyError } from '../core/errors.ts';
import { expectError as expectTyped } from '../../test/support/errors.ts';
import { csvLine, MAX_COMPARED_CHARS, parseCsvRecords, readTable, readTableFromString, refuseLongValues, writeCsv } from './csv.ts';
import { writeTextFile } from '../core/files.ts';

const DATA = fileURLToPath(new URL('../../test/fixtures/linkage/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'onceonly-csv-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** Writes `content` to a fresh file in the temp dir and returns its path. */
function tempCsv(content: string | Buffer): string {
  const file = join(dir, `t${++n}.csv`);
  writeFileSync(file, content);
  return file;
}

/** Runs `fn`, asserts it throws an OnceOnlyError of `type` (default invalid_file), and returns the error. */
function expectError(fn: () => unknown, type: ErrorType = 'invalid_file'): OnceOnlyError {
  return expectTyped(fn, type);
}

const ID = { idColumn: 'id' };

test('FEBRL dataset4a: 5,000 rows, header and values trimmed after ", "', () => {
  const { table, warnings } = readTable(join(DATA, 'febrl/dataset4a.csv'), { idColumn: 'rec_id' });
  assert.deepEqual(warnings, []);
  assert.equal(table.rows.length, 5000);
  assert.equal(table.ids.length, 5000);
  assert.deepEqual(table.columns.slice(0, 3), ['rec_id', 'given_name', 'surname']);
  assert.equal(table.ids[0], 'rec-1070-org');
  assert.equal(table.rows[0]?.[table.columns.indexOf('given_name')], 'michaela');
  assert.equal(table.rows[0]?.[0], 'rec-1070-org', 'the row includes the id column');
  assert.equal(table.source, join(DATA, 'febrl/dataset4a.csv'));
});

test('Splink fake_20000: 20,000 rows keyed by unique_id, empty cities are null', () => {
  const { table } = readTable(join(DATA, 'splink/fake_20000.csv'), { idColumn: 'unique_id' });
  assert.equal(table.rows.length, 20000);
  assert.equal(table.ids[0], '0');
  const city = table.columns.indexOf('city');
  assert.equal(table.rows[0]?.[city], null);
  assert.ok(table.rows.some((r) => typeof r[city] === 'string'), 'some cities are present');
  assert.ok(table.rows.every((r) => r[city] !== ''), 'no empty strings, only null');
});

test('cells are trimmed, empty cells null, spaces around quoted values allowed', () => {
  const { table } = readTableFromString('id , name,  city \n 1 , "Smith, Jo" ,   \n2,"  padded  ",x\n', 'mem', ID);
  assert.deepEqual(table.columns, ['id', 'name', 'city']);
  assert.deepEqual(table.rows, [
    ['1', 'Smith, Jo', null],
    ['2', 'padded', 'x'],
  ]);
  assert.deepEqual(table.ids, ['1', '2']);
});

test('a UTF-8 BOM is stripped without a warning', () => {
  const file = tempCsv(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('id,name\n1,Zoë\n')]));
  const { table, warnings } = readTable(file, ID);
  assert.deepEqual(warnings, []);
  assert.deepEqual(table.columns, ['id', 'name']);
  assert.deepEqual(table.rows, [['1', 'Zoë']]);
  assert.deepEqual(readTableFromString('\ufeffid,name\n1,a\n', 'mem', ID).table.columns, ['id', 'name']);
});

test('Latin-1 bytes: the file is read as Windows-1252 with a warning naming the file and line', () => {
  const file = tempCsv(
    Buffer.concat([Buffer.from('id,name,note\n1,Ann,ok\n2,Jos'), Buffer.from([0xe9]), Buffer.from(',costs 5'), Buffer.from([0x80]), Buffer.from('\n')]),
  );
  const { table, warnings } = readTable(file, ID);
  assert.equal(table.rows[1]?.[1], 'José');
  // 0x80 is the euro sign in Windows-1252 (Node's own decoder gets this wrong, see csv.ts).
  assert.equal(table.rows[1]?.[2], 'costs 5€');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? '', new RegExp(`^${file.replaceAll('.', '\\.')}, line 3: .*0xE9.*Windows-1252.*"é"`));
});

test('empty file, a BOM alone, or only whitespace is refused at line 1', () => {
  for (const content of [Buffer.alloc(0), Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(' \r\n\n\t \n')]) {
    const file = tempCsv(content);
    const e = expectError(() => readTable(file, ID));
    assert.equal(e.detail.file, file);
    assert.equal(e.detail.line, 1);
    assert.match(e.message, /is empty/);
  }
  assert.equal(expectError(() => readTableFromString('', 'body', ID)).detail.file, 'body');
});

test('a header with no records is an empty table and a warning', () => {
  const { table, warnings } = readTableFromString('\n\nid,name\n\n', 'mem', ID);
  assert.deepEqual(table, { source: 'mem', columns: ['id', 'name'], ids: [], rows: [] });
  assert.deepEqual(warnings, ['mem has a header (line 3) but no records, so the table is empty.']);
});

test('blank and whitespace-only lines are skipped; line numbers still count them', () => {
  const text = 'id,name\n\n1,a\n   \r\n\t\n2,b\n\n\n2,c\n';
  const e = expectError(() => readTableFromString(text, 'mem', ID));
  assert.equal(e.detail.line, 9);
  assert.equal(e.detail['firstLine'], 6);
});

test('CRLF line ends read like LF', () => {
  const { table } = readTableFromString('id,name\r\n1,a\r\n2,"b\r\nc"\r\n', 'mem', ID);
  assert.deepEqual(table.rows, [
    ['1', 'a'],
    ['2', 'b\r\nc'],
  ]);
});

test('quoted commas, quotes and line breaks keep later line numbers right', () => {
  const text = [
    'id,name,address',
    '1,"Smith, Jo","12 High St',
    'Flat 3',
    'Leeds"',
    '2,"say ""hi""",x',
    '3,"two\r\nlines",y',
    '4,a,b,c',
  ].join('\n');
  const e = expectError(() => readTableFromString(text, 'mem', ID));
  assert.equal(e.detail.line, 8);
  assert.equal(e.detail['found'], 4);
  assert.equal(e.detail['headerColumns'], 3);
  const ok = readTableFromString(text.split('\n').slice(0, 7).join('\n'), 'mem', ID).table;
  assert.deepEqual(ok.rows, [
    ['1', 'Smith, Jo', '12 High St\nFlat 3\nLeeds'],
    ['2', 'say "hi"', 'x'],
    ['3', 'two\r\nlines', 'y'],
  ]);
});

test('unclosed quote: the error names the line and column where the quoted value starts', () => {
  const file = tempCsv('id,name,city\n1,a,b\n2,"Jo,x\n3,c,d\n4,e,f\n');
  const e = expectError(() => readTable(file, ID));
  assert.equal(e.detail.file, file);
  assert.equal(e.detail.line, 3);
  assert.equal(e.detail.field, 'name');
  assert.equal(e.detail['column'], 2);
  assert.match(e.message, /line 3: the value in column 2 \("name"\) starts with a double quote .* never closed/);
});

test('a closing quote followed by text is refused, naming both lines', () => {
  const e = expectError(() => readTableFromString('id,name\n1,"ab\ncd"e\n', 'mem', ID));
  assert.equal(e.detail.line, 3);
  assert.equal(e.detail['quoteLine'], 2);
  assert.equal(e.detail.field, 'name');
  assert.match(e.message, /line 3: in column 2 \("name"\), a closing double quote is followed by "e" .* started on line 2/);
});

test('a quote inside an unquoted value is refused', () => {
  const e = expectError(() => readTableFromString('id,name\n1,John "Jack" Smith\n', 'mem', ID));
  assert.equal(e.detail.line, 2);
  assert.equal(e.detail.field, 'name');
  assert.match(e.message, /not enclosed in quotes/);
});

test('quote errors in the header name the column by number', () => {
  const e = expectError(() => readTableFromString('id,"name\n1,a\n', 'mem', ID));
  assert.equal(e.detail.line, 1);
  assert.equal(e.detail['column'], 2);
  assert.equal(e.detail.field, undefined);
});

test('wrong number of values: how many found, how many the header has', () => {
  const file = tempCsv('id,name,city\n1,a,b\n2,c\n');
  const e = expectError(() => readTable(file, ID));
  assert.equal(e.detail.line, 3);
  assert.equal(e.detail['found'], 2);
  assert.equal(e.detail['headerColumns'], 3);
  assert.equal(e.detail.expected, '3 values, one per header column');
  assert.match(e.message, /line 3: found 2 values but the header \(line 1\) has 3 columns/);
  const extra = expectError(() => readTableFromString('id,name\n1,a,\n', 'mem', ID));
  assert.equal(extra.detail['found'], 3);
});

test('the id column missing from the header: field and the columns found', () => {
  const e = expectError(() => readTableFromString('ID,name\n1,a\n', 'mem', ID));
  assert.equal(e.detail.field, 'id');
  assert.equal(e.detail.line, 1);
  assert.deepEqual(e.detail['columns'], ['ID', 'name']);
  assert.match(e.message, /no column named "id".*Columns found: "ID", "name"\. Did you mean "ID"\?/);
  const semi = expectError(() => readTableFromString('id;name\n1;a\n', 'mem', ID));
  assert.match(semi.message, /semicolons/);
});

test('an empty id is refused with its line', () => {
  const e = expectError(() => readTableFromString('name,id\na,1\nb,  \n', 'mem', ID));
  assert.equal(e.detail.line, 3);
  assert.equal(e.detail.field, 'id');
});

test('a duplicate id names both lines', () => {
  const file = tempCsv('id,name\nx1,a\nx2,b\n x1 ,c\n');
  const e = expectError(() => readTable(file, ID));
  assert.equal(e.detail.line, 4);
  assert.equal(e.detail['firstLine'], 2);
  assert.equal(e.detail.field, 'id');
  assert.equal(e.detail['id'], 'x1');
  assert.match(e.message, /line 4: the id "x1" .* already used on line 2/);
});

test('duplicate and unnamed header columns are refused', () => {
  const dup = expectError(() => readTableFromString('id,name, name\n1,a,b\n', 'mem', ID));
  assert.equal(dup.detail.line, 1);
  assert.equal(dup.detail.field, 'name');
  assert.deepEqual(dup.detail['positions'], [2, 3]);
  const unnamed = expectError(() => readTableFromString('id,name,\n1,a,b\n', 'mem', ID));
  assert.equal(unnamed.detail.line, 1);
  assert.equal(unnamed.detail['column'], 3);
});

test('inputs over maxBytes are refused before parsing', () => {
  const file = tempCsv('id,name\n1,a\n2,b\n');
  const e = expectError(() => readTable(file, { idColumn: 'id', maxBytes: 10 }));
  assert.equal(e.detail.file, file);
  assert.equal(e.detail['size'], 16);
  assert.equal(e.detail['maxBytes'], 10);
  assert.match(e.message, /is 16 bytes, more than the 10 bytes/);
  assert.equal(readTable(file, { idColumn: 'id', maxBytes: 16 }).table.rows.length, 2);
  expectError(() => readTableFromString('id\né\n', 'mem', { idColumn: 'id', maxBytes: 5 }));
});

test('a missing file is not_found; a folder is invalid_file', () => {
  const missing = join(dir, 'nope.csv');
  const e = expectError(() => readTable(missing, ID), 'not_found');
  assert.equal(e.detail.file, missing);
  const sub = join(dir, 'folder.csv');
  mkdirSync(sub);
  assert.match(expectError(() => readTable(sub, ID)).message, /is a folder/);
});

test('UTF-16 files and carriage-return-only line ends are refused with advice', () => {
  const u16 = tempCsv(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('id,name\n1,a\n', 'utf16le')]));
  assert.match(expectError(() => readTable(u16, ID)).message, /UTF-16.*CSV UTF-8/);
  const mac = expectError(() => readTableFromString('id,name\r1,a\r', 'mem', ID));
  assert.equal(mac.detail.line, 1);
  assert.match(mac.message, /carriage return/);
});

test('parseCsvRecords gives every record with its starting line', () => {
  assert.deepEqual(parseCsvRecords('a,b\n\n"x\ny",\nz', 'mem'), [
    { line: 1, cells: ['a', 'b'] },
    { line: 3, cells: ['x\ny', null] },
    { line: 5, cells: ['z'] },
  ]);
});

test('csvLine quotes what needs quoting and neutralises formulas in text only', () => {
  assert.equal(csvLine(['a', 'b,c', 'say "hi"', 'x\ny', null, 3.5, -2]), 'a,"b,c","say ""hi""","x\ny",,3.5,-2\n');
  assert.equal(csvLine(['=1+1', '+1', '-1', '@SUM(A1)', '\tx', '\rx', 'a=b']), "'=1+1,'+1,'-1,'@SUM(A1),'\tx,\"'\rx\",a=b\n");
});

test('writeCsv round-trips through readTable and neutralises formulas', () => {
  const file = join(dir, 'out.csv');
  const header = ['id', 'text', 'score'];
  writeCsv(file, header, [
    ['1', 'Smith, "Jo"\nsecond line', 0.25],
    ['2', '=1+1', -3],
    ['3', null, null],
  ]);
  assert.equal(readFileSync(file, 'utf8'), 'id,text,score\n1,"Smith, ""Jo""\nsecond line",0.25\n2,\'=1+1,-3\n3,,\n');
  const { table, warnings } = readTable(file, ID);
  assert.deepEqual(warnings, []);
  assert.deepEqual(table.rows, [
    ['1', 'Smith, "Jo"\nsecond line', '0.25'],
    ['2', "'=1+1", '-3'],
    ['3', null, null],
  ]);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left behind',
  );
});

test('writeCsv accepts any iterable, refuses ragged rows and leaves no partial file', () => {
  const file = join(dir, 'gen.csv');
  function* rows(): Generator<(string | number)[]> {
    for (let i = 0; i < 3; i++) yield [`r${i}`, i];
  }
  writeCsv(file, ['id', 'n'], rows());
  assert.deepEqual(readTable(file, ID).table.ids, ['r0', 'r1', 'r2']);
  const bad = join(dir, 'bad.csv');
  assert.throws(() => writeCsv(bad, ['id', 'n'], [['1']]), /row 1 has 1 values but the header has 2/);
  assert.equal(existsSync(bad), false);
  const e = expectError(() => writeCsv(join(dir, 'no-such-dir', 'x.csv'), ['id'], []));
  assert.match(e.message, /could not be written \(ENOENT\)/);
});

test('a NUL byte is refused with its line: a binary file or UTF-16 without a BOM is not read as text', () => {
  const file = tempCsv(Buffer.from('id,name\n1,Ann\n2,Jo\u0000e\n', 'utf8'));
  const e = expectError(() => readTable(file, ID));
  assert.equal(e.detail.file, file);
  assert.equal(e.detail.line, 3);
  assert.match(e.message, /NUL byte/);
  // "id,name" in UTF-16 LE without its byte-order mark: every other byte is zero.
  const utf16 = tempCsv(Buffer.from('id,name\n1,Ann\n', 'utf16le'));
  assert.equal(expectError(() => readTable(utf16, ID)).detail.line, 1);
  assert.equal(expectError(() => readTableFromString('id,name\n1,\u0000\n', 'body', ID)).detail.file, 'body');
});

test('a device is refused instead of being read for ever', () => {
  const e = expectError(() => readTable('/dev/zero', ID));
  assert.equal(e.detail.file, '/dev/zero');
  assert.match(e.message, /device/);
});

test('each row comes with the line it starts on', () => {
  const { lines, table } = readTableFromString('id,name\n\n1,"two\nlines"\n   \n2,b\n', 'mem', ID);
  assert.deepEqual(table.ids, ['1', '2']);
  assert.deepEqual(lines, [3, 6]);
});

test('a first line holding a date, an email address or a postcode is refused as a header, without echoing it', () => {
  for (const [header, what] of [['1,Ann,Smith,1990-01-01', 'a date'], ['1,Ann,12/03/1990', 'a date'], ['1,ann@example.com', 'an email address'], ['1,Ann,LS1 4AB', 'a postcode']] as const) {
    const e = expectError(() => readTableFromString(`${header}\n2,x,y,z\n`, 'mem', { idColumn: '1' }));
    assert.equal(e.detail.line, 1);
    assert.ok(e.message.includes(`holds ${what}`), e.message);
    assert.ok(!e.message.includes(header.split(',').at(-1)!), 'the value itself is not in the message');
  }
  // Ordinary headers, numbered ones included, are names.
  assert.deepEqual(readTableFromString('id,dob,postcode,email,2024\n1,a,b,c,d\n', 'mem', ID).table.columns, ['id', 'dob', 'postcode', 'email', '2024']);
});

test('refuseLongValues names the file, line and column of an over-long compared value, never the value', () => {
  const long = 'x'.repeat(MAX_COMPARED_CHARS + 1);
  const result = readTableFromString(`id,name,notes\n1,Ann,${long}\n\n2,${'y'.repeat(MAX_COMPARED_CHARS)},ok\n`, 'mem', ID);
  // A long value in a column that is not compared is no concern, nor is one at the limit.
  refuseLongValues(result.table, ['name'], MAX_COMPARED_CHARS, result.lines);
  let e = expectError(() => refuseLongValues(result.table, ['name', 'notes'], MAX_COMPARED_CHARS, result.lines));
  assert.deepEqual([e.detail.file, e.detail.line, e.detail.field], ['mem', 2, 'notes']);
  assert.ok(!e.message.includes(long));
  e = expectError(() => refuseLongValues(result.table, ['name'], MAX_COMPARED_CHARS - 1));
  assert.equal(e.detail['record'], 2, 'without line numbers the record is counted');
});

test('writeTextFile replaces a file whole, refuses a planted temporary file, and names a file it cannot write', () => {
  const file = join(dir, 'model.json');
  writeTextFile(file, '{"a":1}\n');
  writeTextFile(file, '{"b":2}\n');
  assert.equal(readFileSync(file, 'utf8'), '{"b":2}\n');
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('model.json.')), [], 'no temporary file left');
  // A symbolic link planted where the temporary file goes is not written through.
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'keep');
  const target = join(dir, 'out.json');
  symlinkSync(victim, `${target}.${process.pid}.tmp`);
  expectError(() => writeTextFile(target, 'evil'));
  assert.equal(readFileSync(victim, 'utf8'), 'keep');
  const e = expectError(() => writeTextFile(join(dir, 'no-such-dir', 'x.json'), '{}'));
  assert.equal(e.detail.file, join(dir, 'no-such-dir', 'x.json'));
});

test('writing through a symbolic link keeps the link; a link to a device is written to, never replaced', () => {
  const real = join(dir, 'real.csv');
  writeFileSync(real, 'old');
  const link = join(dir, 'link.csv');
  symlinkSync(real, link);
  writeCsv(link, ['id'], [['1']]);
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readFileSync(real, 'utf8'), 'id\n1\n');
  // Renaming over /dev/null itself would replace it; here only the link would suffer if that happened.
  const toNull = join(dir, 'null.csv');
  symlinkSync('/dev/null', toNull);
  writeCsv(toNull, ['id'], [['1']]);
  writeTextFile(toNull, 'text');
  assert.ok(lstatSync(toNull).isSymbolicLink(), 'the link is still a link');
  assert.ok(statSync('/dev/null').isCharacterDevice());
});

/** The cell as our reader reports it: trimmed, empty as null. */
const norm = (v: string): string | null => (v.trim() === '' ? null : v.trim());

test('property: written rows read back as written (trimmed), with correct line numbers', () => {
  const cell = fc.stringMatching(/^[a-z ,"\n\r=é]{0,8}$/);
  fc.assert(
    fc.property(fc.array(fc.array(cell, { minLength: 2, maxLength: 2 }), { maxLength: 8 }), (rows) => {
      const text = rows.map((r) => csvLine(r)).join('');
      const records = parseCsvRecords(text, 'gen');
      let line = 1;
      const expected = [];
      for (const r of rows) {
        // Two cells make a comma, so no written record is a blank line the reader would skip.
        expected.push({ line, cells: r.map((v) => norm(/^[=\r]/.test(v) ? `'${v}` : v)) });
        line += (csvLine(r).match(/\n/g) ?? []).length;
      }
      assert.deepEqual(records, expected);
    }),
    { numRuns: 300 },
  );
});

test('property: agrees with csv-parse on every input both accept, and fails wherever csv-parse fails', () => {
  const token = fc.constantFrom('a', 'b', ' ', ',', '"', '\n', '\r\n', 'é');
  let bothParsed = 0;
  fc.assert(
    fc.property(fc.array(token, { maxLength: 30 }), (tokens) => {
      const text = tokens.join('');
      let theirs: string[][] | undefined;
      try {
        theirs = csvParse(text, { trim: true, skip_empty_lines: true, relax_column_count: true, record_delimiter: ['\r\n', '\n'] });
      } catch {
        theirs = undefined;
      }
      let ours: (string | null)[][] | undefined;
      try {
        ours = parseCsvRecords(text, 'gen').map((r) => r.cells);
      } catch (e) {
        assert.ok(isOnceOnlyError(e) && e.type === 'invalid_file', String(e));
        ours = undefined;
      }
      if (theirs === undefined) {
        assert.equal(ours, undefined, `csv-parse refused ${JSON.stringify(text)} but we read ${JSON.stringify(ours)}`);
      } else if (ours !== undefined) {
        bothParsed++;
        assert.deepEqual(ours, theirs.map((r) => r.map(norm)));
      }
    }),
    { numRuns: 2000 },
  );
  assert.ok(bothParsed > 500, `only ${bothParsed} inputs were compared`);
});
