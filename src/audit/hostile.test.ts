/**
 * The duplication audit against a hostile or careless caller: `onceonly audit`, `POST /audit`
 * and the audit itself given malformed and adversarial extracts. Every refusal must be a typed
 * error naming the input (and the line and column where there is one), never a stack trace, a
 * hang or a silent wrong answer; nothing a caller sends may reach the HTML report unescaped; no
 * record id or value may reach the report at all; an input file is never overwritten.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isOnceOnlyError, type ErrorType } from '../core/errors.ts';
import type { App } from '../core/http.ts';
import { loadCatalogue } from '../catalogue/catalogue.ts';
import { generate } from '../registry/generate.ts';
import { populate } from '../registry/populate.ts';
import { createRegistries } from '../registry/registries.ts';
import { createRegistryServer } from '../registry/routes.ts';
import { openStore, type Store } from '../store/db.ts';
import { runAudit, type AuditReport } from './audit.ts';
import { writeExtracts } from './extracts.ts';
import { loadCosts, readExtractFile, readExtractText } from './input.ts';
import { registerFromRecords } from './register.ts';
import { renderHtml } from './report.ts';
import { auditRoutes } from './routes.ts';
import { runCli, type Run } from '../../test/support/cli.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CATALOGUE = join(ROOT, 'config/catalogue.yaml');

const tmp = mkdtempSync(join(tmpdir(), 'onceonly-audit-hostile-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = join(tmp, 'reg');
const extractsDir = join(tmp, 'extracts');
const register = registerFromRecords(generate({ people: 1000, seed: 1 }));
writeExtracts(extractsDir, register, { seed: 1 });
const GP = join(extractsDir, 'gp-practice.csv');
const gpText = readFileSync(GP, 'utf8');
const [gpHeader, ...gpRows] = gpText.trim().split('\n') as [string, ...string[]];

/** Text a browser would run, and text a spreadsheet would run. */
const SCRIPT = '<script>alert("x")</script>';
const IMG = '"><img src=x onerror=alert(1)>';
const FORMULA = '=HYPERLINK("http://evil.example","click")';

/** Asserts `fn` throws an OnceOnlyError of `type` whose detail has the given file, line and field. */
function rejects(fn: () => unknown, type: ErrorType, where: { file?: string; line?: number; field?: string }, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isOnceOnlyError(e), `expected a typed error, got ${String(e)}`);
    assert.equal(e.type, type, e.message);
    for (const [k, v] of Object.entries(where)) assert.equal(e.detail[k], v, `${k}: ${JSON.stringify(e.toJSON())}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** The report as a page and as figures, checked for anything a caller sent that must not be there. */
function assertClean(report: AuditReport, forbidden: string[]): string {
  const html = renderHtml(report);
  assert.ok(!/<script|<img/i.test(html), 'nothing a caller sent runs in the page');
  for (const f of forbidden) {
    assert.ok(!html.includes(f), `the page does not carry ${JSON.stringify(f)}`);
    assert.ok(!JSON.stringify(report).includes(f), `the figures do not carry ${JSON.stringify(f)}`);
  }
  return html;
}

const extract = (rows: string[], header = gpHeader): string => `${[header, ...rows].join('\n')}\n`;
const audit = (agency: string, csv: string): AuditReport => runAudit(register, [{ agency, ...readExtractText(csv, agency) }]).report;

describe('the audit given odd extracts', () => {
  test('every row the same person: one person held, the rest duplicate rows, and the counts add up', () => {
    const row = gpRows[0]!.split(',');
    const rows = Array.from({ length: 60 }, (_, i) => [`DUP${i}`, ...row.slice(1)].join(','));
    const a = audit('same', extract(rows)).agencies[0]!;
    assert.equal(a.rows, 60);
    assert.equal(a.linked + a.unmatched + a.ambiguous, 60);
    assert.equal(a.linked, 60, 'the row links, so each copy of it does');
    assert.equal(a.peopleHeld, 1);
    assert.equal(a.duplicateRows, 59);
  });

  test('a one-row extract, and a header with no rows, are audited without complaint', () => {
    const one = audit('one', extract([gpRows[0]!])).agencies[0]!;
    assert.equal(one.rows, 1);
    assert.equal(one.linked + one.unmatched + one.ambiguous, 1);
    const none = audit('none', extract([])).agencies[0]!;
    assert.deepEqual([none.rows, none.linked, none.peopleHeld], [0, 0, 0]);
  });

  test('a header of 10,000 columns: the person columns are found, the rest ignored', () => {
    const junk = Array.from({ length: 10_000 }, (_, i) => `c${i}`);
    const rows = gpRows.slice(0, 40).map((r) => `${r},${junk.map(() => 'x').join(',')}`);
    const a = audit('wide', extract(rows, `${gpHeader},${junk.join(',')}`)).agencies[0]!;
    assert.equal(a.rows, 40);
    assert.deepEqual(a.fields.map((f) => f.column).sort(), ['address_line_1', 'birth_date', 'family_name', 'given_name', 'postcode', 'town']);
    assert.ok(a.linked >= 35, `${a.linked} of 40 linked`);
  });

  test('ids and agency names that would run in a browser or a spreadsheet never reach the report', () => {
    // Each id carries a marker, so that any id in the report would be found.
    const quoted = gpRows.slice(0, 30).map((r, i) => [`"${`${[SCRIPT, IMG, FORMULA][i % 3]!}ZQX${i}`.replaceAll('"', '""')}"`, ...r.split(',').slice(1)].join(','));
    const report = runAudit(register, [{ agency: `${SCRIPT} & ${IMG}`, ...readExtractText(extract(quoted), `${IMG}.csv`) }]).report;
    const html = assertClean(report, ['ZQX', 'HYPERLINK', 'evil.example']);
    assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;&gt;&lt;img src=x onerror=alert(1)&gt;'), 'the agency name is shown, escaped');
    assert.equal(report.agencies[0]!.rows, 30);
  });

  test('malformed extracts are refused with the file, line and column', () => {
    const source = 'extracts[0] (GP)';
    const long = 'A'.repeat(200_000);
    // A huge value in a compared column would hold the linkage for minutes; in a column that is not compared it is harmless.
    rejects(() => audit('GP', extract([gpRows[0]!, `GP999999,${long},Smith,19800101,1 Mill Lane,Leeds,LS1 4AB`])), 'invalid_file', { file: 'GP', line: 3, field: 'given_name' }, /200,000 characters/);
    assert.equal(audit('GP', extract(gpRows.slice(0, 5).map((r) => `${r},${long}`), `${gpHeader},notes`)).agencies[0]!.rows, 5);
    rejects(() => readExtractText(extract([gpRows[0]!, `,${gpRows[1]!.split(',').slice(1).join(',')}`]), source), 'invalid_file', { file: source, line: 3, field: 'patient_id' });
    rejects(() => readExtractText(extract([`${gpRows[0]!}\u0000`]), source), 'invalid_file', { file: source, line: 2 }, /NUL byte/);
    // Without a header the first person would become the column names, and travel into the report.
    rejects(() => readExtractText(`${gpRows.slice(0, 20).join('\n')}\n`, source), 'invalid_file', { file: source, line: 1 }, /looks like a record, not a header/);
    rejects(() => readExtractText(extract([`${gpRows[0]!},extra`]), source), 'invalid_file', { file: source, line: 2 });
    rejects(() => readExtractFile(extractsDir), 'invalid_file', { file: extractsDir }, /is a folder/);
    rejects(() => readExtractFile('/dev/zero'), 'invalid_file', { file: '/dev/zero' }, /device/);
    // The costs file too: a device is never read, a folder is named.
    rejects(() => loadCosts('/dev/zero'), 'invalid_file', { file: '/dev/zero' }, /not a file/);
    rejects(() => loadCosts(extractsDir), 'invalid_file', { file: extractsDir });
  });
});

function cli(...args: string[]): Promise<Run> {
  return runCli(['audit', ...args], tmp);
}

async function refused(args: string[], ...patterns: RegExp[]): Promise<Run> {
  const r = await cli(...args);
  const what = `onceonly audit ${args.join(' ')}\n${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 2, what);
  assert.match(r.stderr, /^error/m, what);
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `no stack trace: ${what}`);
  for (const p of patterns) assert.match(r.stderr, p, what);
  return r;
}

/** The same register in a store, for the command and the API. */
before(async () => {
  const store = await openStore({ dataDir: data });
  try {
    await populate(store, { people: 1000, seed: 1 });
  } finally {
    await store.close();
  }
});

describe('onceonly audit', { concurrency: true }, () => {
  test('bad options and impossible outputs are refused before the register is read, and no input is overwritten', async () => {
    const copy = join(tmp, 'gp-copy.csv');
    writeFileSync(copy, gpText);
    const runs = await Promise.all([
      refused([GP, '--data', data, '--threshold', '2'], /--threshold must be a probability above 0 and at most 1, got "2"/, /at: --threshold/),
      refused([GP, '--data', data, '--margin', 'abc'], /--margin must be a number of bits/),
      refused(['--data', data], /missing required argument 'extracts'/),
      refused([copy, '--data', data, '--out-html', copy], /--out-html .*gp-copy\.csv is also an input \(an extract\)/),
      refused([GP, '--data', data, '--out-html', join(tmp, 'r.html'), '--out-json', join(tmp, 'r.html')], /--out-json and --out-html are the same file/),
      refused([GP, '--data', data, '--out-html', join(tmp, 'no-such-folder', 'r.html')], /r\.html cannot be written: the folder .*no-such-folder does not exist/),
      refused([GP, copy, '--data', data, '--agency', 'Same', '--agency', 'Same'], /two extracts are named "Same"/),
      refused([GP, '--data', join(tmp, 'no-such-store')], /not_found/, /the data folder .*no-such-store does not exist/),
    ]);
    for (const r of runs) assert.doesNotMatch(r.stderr, /reading the population register/, 'refused before the register is read');
    assert.equal(readFileSync(copy, 'utf8'), gpText);
    assert.equal(existsSync(join(tmp, 'no-such-store')), false, 'no empty store is created at a mistyped path');
  });

  test('an agency name taken from a file name is escaped in the HTML report', async () => {
    const hostileDir = join(tmp, 'hostile');
    mkdirSync(hostileDir);
    const agency = `${IMG}<b onmouseover=alert(2)>`;
    const named = join(hostileDir, `${agency}.csv`);
    writeFileSync(named, gpText);
    const html = join(tmp, 'hostile.html');
    const json = join(tmp, 'hostile.json');
    const r = await cli(named, GP, '--data', data, '--out-html', html, '--out-json', json);
    assert.equal(r.status, 0, r.stderr);
    const page = readFileSync(html, 'utf8');
    assert.ok(!/<img|<b |onerror=alert\(1\)>/i.test(page), 'nothing runs in the page');
    assert.ok(page.includes('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;b onmouseover=alert(2)&gt;'));
    const report = JSON.parse(readFileSync(json, 'utf8')) as AuditReport;
    assert.deepEqual(report.agencies.map((a) => a.agency), [agency, 'gp practice']);
  });
});

describe('POST /audit', () => {
  let store: Store;
  let app: App;
  let small: App;
  before(async () => {
    store = await openStore({ dataDir: data });
    const regs = createRegistries(store.db, loadCatalogue(CATALOGUE));
    app = await createRegistryServer(regs.population);
    auditRoutes(app, { db: store.db });
    small = await createRegistryServer(regs.population);
    auditRoutes(small, { db: store.db, bodyLimit: 64 * 1024, maxPairs: 500 });
  });
  after(async () => {
    await app.close();
    await small.close();
    await store.close();
  });

  const post = async (payload: unknown, url = '/audit', to?: App): Promise<{ status: number; body: string; json: () => { type: string; message: string; detail: Record<string, unknown> } }> => {
    const res = await (to ?? app).inject({ method: 'POST', url, payload: payload as Record<string, unknown> });
    return { status: res.statusCode, body: res.body, json: () => res.json() };
  };
  const csv = extract(gpRows.slice(0, 40));

  test('values of the wrong type are refused by name, not converted', async () => {
    for (const [payload, field] of [
      [{ extracts: [{ agency: 'GP', csv: 5 }] }, 'body.extracts.0.csv'],
      [{ extracts: [{ agency: 7, csv }] }, 'body.extracts.0.agency'],
      [{ extracts: { agency: 'GP', csv } }, 'body.extracts'],
      [{ extracts: [{ agency: 'GP', csv }], threshold: '0.9' }, 'body.threshold'],
      [{ extracts: [{ agency: 'GP', csv }], margin: true }, 'body.margin'],
      [{ extracts: [{ agency: 'GP', csv }], costs: [] }, 'body.costs'],
    ] as const) {
      const r = await post(payload);
      assert.equal(r.status, 400, `${JSON.stringify(payload).slice(0, 80)}: ${r.body}`);
      assert.equal(r.json().type, 'invalid_request');
      assert.equal(r.json().detail['field'], field, r.body);
    }
  });

  test('a misspelt or unknown property is refused rather than silently ignored', async () => {
    for (const payload of [{ extracts: [{ agency: 'GP', csv }], treshold: 0.9 }, { extracts: [{ agency: 'GP', csv, idcolumn: 'patient_id' }] }]) {
      const r = await post(payload);
      assert.equal(r.status, 400, r.body);
      assert.match(r.json().message, /must NOT have additional properties/);
    }
  });

  test('too many extracts, a body over the limit, and rows forming too many pairs are refused', async () => {
    const many = await post({ extracts: Array.from({ length: 51 }, (_, i) => ({ agency: `A${i}`, csv })) });
    assert.equal(many.status, 400, many.body);
    assert.equal(many.json().detail['field'], 'body.extracts');
    const big = await post({ extracts: [{ agency: 'GP', csv: csv + 'x'.repeat(80 * 1024) }] }, '/audit', small);
    assert.equal(big.status, 413, big.body);
    assert.equal(big.json().type, 'payload_too_large');
    // Hundreds of copies of one person: every copy meets the same register people in every blocking rule.
    const same = gpRows[0]!.split(',').slice(1).join(',');
    const alike = await post({ extracts: [{ agency: 'Alike', csv: extract(Array.from({ length: 600 }, (_, i) => `A${i},${same}`)) }] }, '/audit', small);
    assert.equal(alike.status, 422, alike.body);
    assert.equal(alike.json().detail['file'], 'extracts[0] (Alike)');
    assert.match(alike.json().message, /too many candidate pairs/);
  });

  test('malformed and hostile extracts are refused naming the extract, line and column', async () => {
    const cases: [string, string, number, RegExp][] = [
      [extract([`${gpRows[0]!}\u0000`]), 'GP', 2, /NUL byte/],
      [extract([`GP9,${'A'.repeat(100_000)},Smith,19800101,1 Mill Lane,Leeds,LS1 4AB`]), 'GP', 2, /100,000 characters/],
      [`${gpRows.slice(0, 20).join('\n')}\n`, 'GP', 1, /looks like a record, not a header/],
      [extract([gpRows[0]!, gpRows[0]!]), 'GP', 3, /already used on line 2/],
    ];
    for (const [text, agency, line, message] of cases) {
      const r = await post({ extracts: [{ agency, csv: text }] });
      assert.equal(r.status, 422, r.body.slice(0, 300));
      const e = r.json();
      assert.equal(e.type, 'invalid_file');
      assert.equal(e.detail['file'], `extracts[0] (${agency})`);
      assert.equal(e.detail['line'], line);
      assert.match(e.message, message);
    }
    const twice = await post({ extracts: [{ agency: 'GP', csv }, { agency: 'GP', csv }] });
    assert.equal(twice.status, 400, twice.body);
    assert.match(twice.json().message, /two extracts are named "GP"/);
  });

  test('with ?format=html, agency names are escaped and no id reaches the page', async () => {
    const rows = gpRows.slice(0, 30).map((r, i) => [`"${(i % 2 ? SCRIPT : FORMULA).replaceAll('"', '""')}${i}"`, ...r.split(',').slice(1)].join(','));
    const r = await post({ extracts: [{ agency: `${SCRIPT}${IMG}`, csv: extract(rows) }] }, '/audit?format=html');
    assert.equal(r.status, 200, r.body.slice(0, 300));
    assert.ok(!/<script|<img/i.test(r.body));
    assert.ok(!r.body.includes('HYPERLINK') && !r.body.includes('evil.example'));
    assert.ok(r.body.includes('&lt;script&gt;'));
  });
});
