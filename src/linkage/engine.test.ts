import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readTable } from './csv.ts';
import { clusters, detectFields, explain, link, parseBlockingRule } from './engine.ts';
import { readLabels } from './labels.ts';
import type { ScoredPair, Table } from './types.ts';
import { isOnceOnlyError } from '../core/errors.ts';

const DATA = fileURLToPath(new URL('../../test/fixtures/linkage/', import.meta.url));
const febrl = (f: string): Table => readTable(`${DATA}febrl/${f}`, { idColumn: 'rec_id' }).table;
/** FEBRL ids are `rec-N-org` / `rec-N-dup-K`: the same N is the same person. */
const entity = (id: string): string => id.split('-')[1]!;
const key = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`);

/** Precision, recall and F1 over pairs; true pairs that blocking never compared count as missed. */
function score(pred: ScoredPair[], truth: Set<string>): { precision: number; recall: number; f1: number } {
  let tp = 0;
  for (const p of pred) if (truth.has(key(p.leftId, p.rightId))) tp++;
  const precision = pred.length ? tp / pred.length : 0;
  const recall = tp / truth.size;
  return { precision, recall, f1: (2 * precision * recall) / (precision + recall) };
}

function truthWithin(ids: string[], group: (i: number) => string): Set<string> {
  const by = new Map<string, string[]>();
  ids.forEach((id, i) => {
    const g = group(i);
    const l = by.get(g);
    if (l) l.push(id);
    else by.set(g, [id]);
  });
  const truth = new Set<string>();
  for (const l of by.values()) for (let i = 0; i < l.length; i++) for (let j = i + 1; j < l.length; j++) truth.add(key(l[i]!, l[j]!));
  return truth;
}

test('FEBRL4 link-only, trained without labels: F1 >= 0.99 at the default threshold', () => {
  const a = febrl('dataset4a.csv');
  const b = febrl('dataset4b.csv');
  const r = link(a, b);
  const inB = new Map(b.ids.map((id) => [entity(id), id]));
  const truth = new Set(a.ids.flatMap((id) => (inB.has(entity(id)) ? [key(id, inB.get(entity(id))!)] : [])));
  assert.equal(truth.size, 5000, 'the dataset README: 5,000 links');
  const s = score(r.pairs, truth);
  assert.ok(s.f1 >= 0.99, `F1 ${s.f1} (precision ${s.precision}, recall ${s.recall})`);
  assert.ok(r.pairs.every((p) => p.probability >= 0.5 && a.ids[p.left] === p.leftId && b.ids[p.right] === p.rightId));
  assert.equal(r.blocking.reduce((n, x) => n + x.pairs, 0), r.compared, 'every compared pair is credited to exactly one rule');
  assert.match(String(r.model.training['m']), /^EM with u fixed, one session per blocking rule: identifier: \d+ pairs/);
  assert.match(String(r.model.training['lambda']), /^EM on the match share/);
});

test('FEBRL3 dedupe, trained without labels: F1 >= 0.99 at the default threshold; clusters follow the pairs', () => {
  const t = febrl('dataset3.csv');
  const r = link(t, null);
  const truth = truthWithin(t.ids, (i) => entity(t.ids[i]!));
  assert.equal(truth.size, 6538, 'the dataset README: 6,538 true pairs');
  const s = score(r.pairs, truth);
  assert.ok(s.f1 >= 0.99, `F1 ${s.f1} (precision ${s.precision}, recall ${s.recall})`);
  assert.ok(r.pairs.every((p) => p.left < p.right), 'each unordered pair once');
  const c = clusters(t.ids.length, r.pairs);
  for (const p of r.pairs) assert.equal(c[p.left], c[p.right]);
  assert.ok(new Set(c).size < t.ids.length && new Set(c).size >= 2000 * 0.95, 'about the 2,000 people the README names');
});

test('linking is deterministic for a seed, and a saved model gives the same answer without training', () => {
  const a = febrl('dataset1.csv');
  const r1 = link(a, null, { seed: 7 });
  const r2 = link(a, null, { seed: 7 });
  assert.deepEqual(r2.pairs, r1.pairs);
  assert.deepEqual(r2.model, r1.model);
  const fixed = link(a, null, { model: JSON.parse(JSON.stringify(r1.model)) as typeof r1.model });
  assert.deepEqual(fixed.pairs, r1.pairs);
});

test('an explanation adds up to the pair\'s weight and names each comparison\'s level', () => {
  const a = febrl('dataset4a.csv');
  const b = febrl('dataset4b.csv');
  const r = link(a, b);
  const p = r.pairs[0]!;
  const e = explain(r.model, a, p.left, b, p.right);
  assert.equal(e.leftId, p.leftId);
  const sum = e.prior + e.steps.reduce((n, s) => n + s.weight, 0);
  assert.ok(Math.abs(sum - e.weight) < 1e-9);
  assert.ok(Math.abs(e.weight - p.weight) < 1e-9, 'the explanation is the scoring, not a separate calculation');
  assert.deepEqual(e.steps.map((s) => s.comparison), r.model.comparisons.map((c) => c.name));
  for (const s of e.steps) assert.ok(r.model.comparisons.find((c) => c.name === s.comparison)!.levels.some((l) => l.label === s.level));
  assert.throws(() => explain(r.model, a, 99999, b, 0), (e: unknown) => isOnceOnlyError(e) && e.type === 'not_found');
});

test('m trained from Splink\'s clerical labels scores the labelled fake_1000 pairs well', () => {
  const t = readTable(`${DATA}splink/fake_1000.csv`, { idColumn: 'unique_id' }).table;
  const labels = readLabels(`${DATA}splink/fake_1000_labels.csv`);
  assert.equal(labels.length, 3176);
  const r = link(t, null, { labels });
  assert.match(String(r.model.training['m']), /labelled matching pairs/);
  const cluster = t.columns.indexOf('cluster');
  const truth = truthWithin(t.ids, (i) => t.rows[i]![cluster]!);
  const s = score(r.pairs, truth);
  assert.ok(s.precision >= 0.9, `precision ${s.precision}`);
});

test('columns are recognised by header and content, and say what was chosen', () => {
  const t: Table = {
    source: 'x.csv',
    columns: ['ref', 'Forename', 'Family Name', 'born', 'col7', 'Post Code'],
    ids: ['1', '2'],
    rows: Array.from({ length: 30 }, (_, i) => [String(i), 'ann', 'lee', '1990-01-02', `a${i}@b.org`, 'LS1 4AB']),
  };
  t.ids = t.rows.map((r) => r[0]!);
  const d = detectFields(t);
  assert.deepEqual(d.fields.map((f) => `${f.column}=${f.kind}`), ['Forename=given_name', 'Family Name=surname', 'born=dob', 'Post Code=postcode', 'col7=email']);
  assert.ok(d.notes.some((n) => n.startsWith('ref: the record id')));
  assert.ok(d.notes.some((n) => n === 'col7: email (by content)'));
});

test('bad requests get typed errors naming what is wrong', () => {
  const a = febrl('dataset1.csv');
  const expectError = (f: () => unknown, field: string): void => {
    assert.throws(f, (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_request' && e.detail.field === field);
  };
  expectError(() => link(a, null, { threshold: 1.5 }), 'threshold');
  expectError(() => link(a, null, { fields: [{ column: 'nope', kind: 'surname' }] }), 'nope');
  expectError(() => link(a, null, { fields: [{ column: 'surname', kind: 'shoe_size' as never }] }), 'surname');
  expectError(() => parseBlockingRule('surname:soundex'), 'blocking');
  expectError(() => parseBlockingRule('height'), 'blocking');
  const none: Table = { source: 'n.csv', columns: ['id', 'colour'], ids: ['1', '2'], rows: [['1', 'red'], ['2', 'blue']] };
  expectError(() => link(none, null), 'columns');
  // A rule on a near-constant key would compare nearly every pair: refused before memory runs out.
  expectError(() => link(a, null, { blocking: [parseBlockingRule('surname:first')], maxPairs: 1000 }), 'blocking');
});
