/**
 * The duplication audit against the truth its own extract generator keeps: the demo extracts of a
 * 2,000-person register are written to CSV, read back, linked and counted, and every count is
 * compared with what the generator recorded doing. Rows the audit linked to the right person must
 * agree with the truth exactly, item by item; aggregate counts may differ only by the rows that
 * linkage got wrong or missed, and those must be few (TOLERANCE). Also: the generator is
 * deterministic and its truth consistent, the store-backed register equals the generated one,
 * the HTML report is self-contained, the CLI runs end to end, the API answers, and bad input gets
 * a typed error naming the file.
 */
import { RegistryRepository } from '../registry/repository.ts';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isOnceOnlyError } from '../core/errors.ts';
import { generate } from '../registry/generate.ts';
import { populate } from '../registry/populate.ts';
import { loadCatalogue } from '../catalogue/catalogue.ts';
import { createRegistries } from '../registry/registries.ts';
import { createRegistryServer } from '../registry/routes.ts';
import { openStore } from '../store/db.ts';
import { eachEngine } from '../../test/support/stores.ts';
import { runAudit, type AuditResult } from './audit.ts';
import { AGENCIES, makeExtracts, TRUTH_FILE, writeExtracts, type ExtractTruth } from './extracts.ts';
import { agencyFromFile, loadCosts, readExtractFile } from './input.ts';
import { heldValues, registerFromRecords, registerFromStore, type RegisterSnapshot } from './register.ts';
import { renderHtml } from './report.ts';
import { auditRoutes } from './routes.ts';
import { classify, ITEMS, STATES } from './values.ts';

const BIN = fileURLToPath(new URL('../../bin/onceonly.js', import.meta.url));
const CATALOGUE = fileURLToPath(new URL('../../config/catalogue.yaml', import.meta.url));

/**
 * The largest share of an agency's rows the linkage may get wrong (linked to someone else, or not
 * linked although the register knows the person, or linked although it does not). Measured on
 * these extracts: see docs/audit.md.
 */
const TOLERANCE = 0.01;

const tmp = mkdtempSync(join(tmpdir(), 'onceonly-audit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const register: RegisterSnapshot = registerFromRecords(generate({ people: 2000, seed: 1 }));

function rejects(fn: () => unknown, type: string, file: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isOnceOnlyError(e), `expected a typed error, got ${String(e)}`);
    assert.equal(e.type, type, e.message);
    assert.equal(e.detail.file, file, `the error names the file: ${JSON.stringify(e.toJSON())}`);
    return true;
  });
}

describe('demo extracts', () => {
  test('are deterministic for a seed and differ between seeds', () => {
    const a = makeExtracts(register, { seed: 7 });
    const b = makeExtracts(register, { seed: 7 });
    assert.deepEqual(a.truth, b.truth);
    assert.deepEqual(a.extracts.map((e) => e.rows), b.extracts.map((e) => e.rows));
    const c = makeExtracts(register, { seed: 8 });
    assert.notDeepEqual(a.extracts.map((e) => e.rows), c.extracts.map((e) => e.rows));
  });

  test('keep a truth consistent with the rows, with every kind of damage, and none of it in the CSV', () => {
    const { extracts, truth } = makeExtracts(register, { seed: 1 });
    const byId = new Map(register.people.map((p) => [p.id, p]));
    assert.equal(extracts.length, 3);
    for (const e of extracts) {
      const t = e.truth;
      assert.equal(t.rows.length, e.rows.length);
      assert.equal(new Set(t.rows.map((r) => r.recordId)).size, t.rows.length, 'record ids are unique');
      e.rows.forEach((row, i) => {
        const tr = t.rows[i]!;
        assert.equal(row[0], tr.recordId);
        assert.equal(row.length, 7);
        // The truth lives beside the file, never in it.
        assert.ok(!row.some((c) => /\bP-\d{9}-[0-9X]\b/.test(c)), 'no register id in the extract');
        if (tr.personId === null) {
          assert.equal(tr.states, null);
          return;
        }
        const held = heldValues(byId.get(tr.personId)!);
        const values = { givenName: row[1], familyName: row[2], birthDate: row[3], address: row[4], postcode: row[6] };
        for (const item of ITEMS) assert.equal(classify(item, values[item], held), tr.states![item], `${e.file} ${tr.recordId} ${item}`);
        const damaged = new Set(tr.damage.map((d) => d.item));
        for (const item of ITEMS) if (tr.states![item] !== 'current') assert.ok(damaged.has(item), `${tr.recordId}: ${item} is ${tr.states![item]} without recorded damage`);
        if (tr.duplicateOf !== null) assert.equal(t.rows.find((r) => r.recordId === tr.duplicateOf)?.personId, tr.personId);
      });
    }
    const all = truth.agencies.map((a) => a.counts);
    const sum = (f: (c: (typeof all)[number]) => number): number => all.reduce((s, c) => s + f(c), 0);
    for (const kind of ['typo', 'nickname', 'swapped', 'transposed', 'old-name', 'old-address', 'other-address', 'missing'] as const) {
      assert.ok(sum((c) => c.damage[kind]) > 0, `some ${kind} damage`);
    }
    assert.ok(sum((c) => c.unknown) > 0 && sum((c) => c.duplicateRows) > 0 && sum((c) => c.deceasedRows) > 0);
    assert.ok((truth.across.heldBy['2'] ?? 0) > 0 && (truth.across.heldBy['3'] ?? 0) > 0, 'agencies overlap');
  });
});

eachEngine('the register read from the store', (getStore) => {
  test('equals the register built from the generator', async () => {
    await populate(getStore(), { people: 400, seed: 3 });
    const fromStore = await registerFromStore(new RegistryRepository(getStore().db), { source: 'generated population', pageSize: 97 });
    assert.deepEqual(fromStore, registerFromRecords(generate({ people: 400, seed: 3 })));
  });
});

describe('the audit of the demo extracts', () => {
  let truth: ExtractTruth;
  let result: AuditResult;
  const dir = join(tmp, 'extracts');
  before(() => {
    writeExtracts(dir, register, { seed: 1 });
    truth = JSON.parse(readFileSync(join(dir, TRUTH_FILE), 'utf8')) as ExtractTruth;
    const inputs = AGENCIES.map((a) => ({ agency: a.key, table: readExtractFile(join(dir, `${a.key}.csv`)).table }));
    result = runAudit(register, inputs);
  });

  test('reads each agency\'s own headers and date format', () => {
    const line: Record<string, string> = { 'council-tax': 'street', 'school-admissions': 'address', 'gp-practice': 'street' };
    for (const a of result.report.agencies) {
      const kinds = a.fields.map((f) => f.kind).sort();
      assert.deepEqual(kinds, ['dob', 'given_name', 'locality', 'postcode', line[a.agency]!, 'surname'].sort(), a.agency);
      for (const item of ITEMS) assert.notEqual(a.items[item].column, null, `${a.agency} ${item}`);
    }
  });

  test('finds the damage the generator recorded', () => {
    const report = result.report;
    for (const [ai, t] of truth.agencies.entries()) {
      const fig = report.agencies[ai]!;
      const outcomes = result.rows[ai]!.rows;
      const truthOf = new Map(t.rows.map((r) => [r.recordId, r]));
      let wrong = 0;
      let missed = 0;
      let falseLinks = 0;
      const right = { rows: 0, deceased: 0, items: Object.fromEntries(ITEMS.map((i) => [i, Object.fromEntries(STATES.map((s) => [s, 0]))])) as Record<string, Record<string, number>> };
      for (const o of outcomes) {
        const tr = truthOf.get(o.recordId)!;
        if (tr.personId === null) {
          if (o.status === 'linked') falseLinks++;
          continue;
        }
        if (o.status !== 'linked') {
          missed++;
          continue;
        }
        if (o.personId !== tr.personId) {
          wrong++;
          continue;
        }
        // A row linked to the right person: every item's state is exactly what the generator did.
        assert.deepEqual(o.states, tr.states, `${t.key} ${o.recordId}`);
        right.rows++;
        if (tr.deceased) right.deceased++;
      }
      const errors = wrong + missed + falseLinks;
      const c = t.counts;
      const msg = `${t.key}: ${wrong} wrong, ${missed} missed, ${falseLinks} false links of ${c.rows} rows`;
      assert.ok(errors <= TOLERANCE * c.rows, msg);
      assert.equal(fig.rows, c.rows);
      // Each linkage error moves any count by at most one row.
      const near = (got: number, want: number, what: string): void => assert.ok(Math.abs(got - want) <= errors, `${what}: audit ${got}, truth ${want} (${msg})`);
      near(fig.unmatched + fig.ambiguous, c.unknown, 'rows not linked vs rows of people the register does not know');
      near(fig.linked, c.known, 'linked rows vs rows of known people');
      near(fig.duplicateRows, c.duplicateRows, 'duplicate rows');
      near(fig.peopleHeld, c.people, 'people held');
      near(fig.deceasedRows, c.deceasedRows, 'rows of the dead');
      for (const item of ITEMS) {
        for (const s of STATES) near(fig.items[item][s], c.items[item][s], `${item} ${s}`);
        near(fig.items[item].copies, c.items[item].current + c.items[item].stale + c.items[item].conflict, `${item} copies`);
      }
      // Stale addresses and conflicts are found, not merely tolerated.
      assert.ok(fig.items.address.stale > 0 && fig.items.familyName.stale > 0 && fig.items.birthDate.conflict > 0, msg);
    }
    const total = report.total;
    assert.equal(total.rows, truth.agencies.reduce((s, a) => s + a.counts.rows, 0));
    assert.ok(Math.abs(total.peopleHeld - truth.across.people) <= TOLERANCE * truth.across.people);
    for (const k of ['1', '2', '3']) assert.ok(Math.abs((total.peopleHeldBy[k] ?? 0) - (truth.across.heldBy[k] ?? 0)) <= Math.max(3, TOLERANCE * (truth.across.heldBy[k] ?? 0)), `held by ${k}`);
    assert.ok(total.cost.total > 0 && Math.abs(total.cost.total - total.cost.records - total.cost.items - total.cost.discrepancies) < 0.02);
  });

  test('renders a self-contained HTML report with charts, tables and no personal data', () => {
    const html = renderHtml({ ...result.report, agencies: result.report.agencies.map((a, i) => (i === 0 ? { ...a, agency: '<script>alert("x")</script> & co' } : a)) });
    assert.match(html, /^<!DOCTYPE html>/);
    assert.equal(html.match(/<svg /g)?.length, 5);
    assert.equal(html.match(/<\/svg>/g)?.length, 5);
    assert.equal(html.match(/<title id="chart-\d+-t">/g)?.length, 5, 'every chart has a title');
    assert.ok(!/<script/i.test(html), 'no script, and agency names are escaped');
    assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co'));
    assert.ok(!/\s(src|href)=/i.test(html) && !/url\(/i.test(html) && !/@import/i.test(html), 'nothing fetched');
    assert.ok(html.includes(new Intl.NumberFormat('en-GB').format(result.report.total.rows)));
    assert.ok(html.includes('<table>') && html.includes('<caption>'));
    for (const o of result.rows[0]!.rows.slice(0, 50)) {
      assert.ok(!html.includes(o.recordId) && (o.personId === null || !html.includes(o.personId)), 'no record or register ids');
    }
    for (const p of register.people.slice(0, 200)) assert.ok(!html.includes(`${p.givenName} ${p.familyName}`), 'no names');
  });
});

describe('bad input', () => {
  const dir = join(tmp, 'bad');
  before(() => mkdirSync(dir, { recursive: true }));

  test('a missing file, a malformed CSV and an extract with no recognisable columns are refused, naming the file', () => {
    rejects(() => readExtractFile(join(dir, 'nope.csv')), 'not_found', join(dir, 'nope.csv'));
    const broken = join(dir, 'broken.csv');
    writeFileSync(broken, 'id,first_name,surname\n1,"Ann,Smith\n');
    rejects(() => readExtractFile(broken), 'invalid_file', broken);
    const odd = join(dir, 'odd.csv');
    writeFileSync(odd, 'ref,colour,size\n1,red,9\n2,blue,7\n');
    rejects(() => runAudit(register, [{ agency: 'odd', table: readExtractFile(odd).table }]), 'invalid_file', odd);
    const costs = join(dir, 'costs.yaml');
    writeFileSync(costs, 'perRecord: -1\n');
    rejects(() => loadCosts(costs), 'invalid_file', costs);
    writeFileSync(costs, 'currency: EUR\nperItem: {address: 0.5}\n');
    assert.equal(loadCosts(costs).perItem.address, 0.5);
    assert.equal(agencyFromFile('/x/gp_practice-list.csv'), 'gp practice list');
  });
});

describe('the command and the API', () => {
  const data = join(tmp, 'cli-data');
  const out = join(tmp, 'cli-extracts');
  const cli = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
    spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, DATABASE_URL: '' }, timeout: 120_000 });

  test('`registry generate --extracts` then `audit` writes the HTML and JSON reports', () => {
    const gen = cli('registry', 'generate', '--people', '2000', '--data', data, '--extracts', out);
    assert.equal(gen.status, 0, gen.stderr);
    const files = AGENCIES.map((a) => join(out, `${a.key}.csv`));
    const html = join(tmp, 'report.html');
    const json = join(tmp, 'report.json');
    const run = cli('audit', ...files, '--data', data, '--out-html', html, '--out-json', json, '--agency', 'Council tax', '--agency', 'Schools', '--agency', 'GP');
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(readFileSync(json, 'utf8')) as AuditResult['report'];
    assert.deepEqual(report.agencies.map((a) => a.agency), ['Council tax', 'Schools', 'GP']);
    assert.equal(report.register.people, 2000);
    assert.ok(report.total.linked > 0 && report.total.unmatched > 0);
    assert.match(readFileSync(html, 'utf8'), /<svg [^>]*role="img"/);
    assert.match(run.stdout, /people held in redundant copies/);

    const missing = cli('audit', join(out, 'missing.csv'), '--data', data);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /missing\.csv/);
  });

  test('POST /audit on the population register\'s server answers with the figures', async () => {
    const store = await openStore({ dataDir: data });
    const regs = createRegistries(store.db, loadCatalogue(CATALOGUE));
    const app = await createRegistryServer(regs.population);
    auditRoutes(app, { db: store.db });
    try {
      const csv = readFileSync(join(out, 'gp-practice.csv'), 'utf8');
      const res = await app.inject({ method: 'POST', url: '/audit', payload: { extracts: [{ agency: 'GP', csv }], costs: { currency: 'EUR' } } });
      assert.equal(res.statusCode, 200, res.body);
      const report = res.json<AuditResult['report']>();
      assert.equal(report.agencies[0]!.agency, 'GP');
      assert.equal(report.settings.costs.currency, 'EUR');
      assert.ok(report.agencies[0]!.linked > 0);
      const html = await app.inject({ method: 'POST', url: '/audit?format=html', payload: { extracts: [{ agency: 'GP', csv }] } });
      assert.equal(html.statusCode, 200);
      assert.match(String(html.headers['content-type']), /text\/html/);
      assert.match(html.body, /<svg /);

      const bad = await app.inject({ method: 'POST', url: '/audit', payload: { extracts: [{ agency: 'GP', csv: 'id,name\n1,"x\n' }] } });
      assert.equal(bad.statusCode, 422);
      assert.equal(bad.json<{ type: string }>().type, 'invalid_file');
      assert.equal(bad.json<{ detail: { file: string } }>().detail.file, 'extracts[0] (GP)');
      const odd = await app.inject({ method: 'POST', url: '/audit', payload: { extracts: [{ agency: 'Odd', csv: 'ref,colour\n1,red\n' }] } });
      assert.equal(odd.statusCode, 422);
      assert.equal(odd.json<{ detail: { file: string } }>().detail.file, 'extracts[0] (Odd)');
      const none = await app.inject({ method: 'POST', url: '/audit', payload: { extracts: [] } });
      assert.equal(none.statusCode, 400);
    } finally {
      await app.close();
      await store.close();
    }
  });
});
