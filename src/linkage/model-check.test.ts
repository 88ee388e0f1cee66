/**
 * Tests for linkage/model-check: a model from outside is used only when every number the engine
 * relies on is usable, and each refusal names the part of the JSON that is wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { isOnceOnlyError } from '../core/errors.ts';
import { link } from './engine.ts';
import { readTable, readTableFromString } from './csv.ts';
import { checkModel } from './model-check.ts';
import type { Model } from './types.ts';

const FAKE = fileURLToPath(new URL('../../test/fixtures/linkage/splink/fake_1000.csv', import.meta.url));
const trained: Model = link(readTable(FAKE, { idColumn: 'unique_id' }).table, null).model;

function refusal(value: unknown, source: { file?: string; field?: string }, path: RegExp): void {
  assert.throws(() => checkModel(value, source), (e: unknown) => {
    assert.ok(isOnceOnlyError(e), String(e));
    assert.equal(e.type, source.file ? 'invalid_file' : 'invalid_request');
    assert.match(String(e.detail.field), path, e.message);
    if (source.file) assert.equal(e.detail.file, source.file);
    return true;
  });
}

const edited = (change: (m: Model & Record<string, unknown>) => void): unknown => {
  const m = structuredClone(trained) as Model & Record<string, unknown>;
  change(m);
  return m;
};

test('a model the engine wrote passes, and comes back usable', () => {
  const m = checkModel(JSON.parse(JSON.stringify(trained)), { file: 'model.json' });
  assert.deepEqual(JSON.parse(JSON.stringify(m)), JSON.parse(JSON.stringify(trained)));
});

test('each unusable part is named by its path in the JSON', () => {
  const f = { file: 'model.json' };
  refusal(null, f, /^\(root\)$/);
  refusal([], f, /^\(root\)$/);
  refusal(edited((m) => ((m as Record<string, unknown>)['version'] = 2)), f, /^version$/);
  refusal(edited((m) => (m.lambda = 1)), f, /^lambda$/);
  refusal(edited((m) => (m.lambda = Number.NaN)), f, /^lambda$/);
  refusal(edited((m) => (m.comparisons = [])), f, /^comparisons$/);
  refusal(edited((m) => (m.comparisons[0]!.name = 'toString')), f, /^comparisons\[0\]\.name$/);
  refusal(edited((m) => (m.comparisons[0]!.name = '__proto__')), f, /^comparisons\[0\]\.name$/);
  refusal(edited((m) => (m.comparisons[1]!.name = m.comparisons[0]!.name)), f, /^comparisons\[1\]\.name$/);
  refusal(edited((m) => (m.comparisons[0]!.kinds = ['email'])), f, /^comparisons\[0\]\.kinds$/);
  refusal(edited((m) => m.comparisons[0]!.levels.pop()), f, /^comparisons\[0\]\.levels$/);
  refusal(edited((m) => (m.comparisons[0]!.levels[2]!.u = 0)), f, /^comparisons\[0\]\.levels\[2\]\.u$/);
  refusal(edited((m) => (m.comparisons[0]!.levels[1]!.m = 1.5)), f, /^comparisons\[0\]\.levels\[1\]\.m$/);
  refusal(edited((m) => ((m.comparisons[0]!.levels[1] as unknown as Record<string, unknown>)['m'] = '0.9')), f, /^comparisons\[0\]\.levels\[1\]\.m$/);
  refusal(edited((m) => delete m.tf['given_name']!['\u0000min']), f, /^tf\.given_name\["\\u0000min"\]$/);
  refusal(edited((m) => (m.tf['given_name']!['anna'] = 0)), f, /^tf\.given_name\["anna"\]$/);
  // From a request, the error is the caller's and the field is prefixed with where the model was.
  refusal(edited((m) => (m.lambda = 0)), { field: 'body.model' }, /^body\.model\.lambda$/);
});

test('term frequencies are looked up as data: a value named like an Object property weighs as a rare value, not NaN', () => {
  const m = checkModel(JSON.parse(JSON.stringify(trained)), { field: 'model' });
  const people = readTableFromString('unique_id,first_name,surname,dob,city,email\n1,Ann,Constructor,1990-01-01,Leeds,ann@example.com\n2,Bob,Constructor,1971-03-03,York,bob@example.org\n', 'two', { idColumn: 'unique_id' }).table;
  const r = link(people, null, { model: m, threshold: 0, blocking: [{ name: 'surname', keys: ['surname'] }] });
  assert.equal(r.pairs.length, 1);
  assert.ok(Number.isFinite(r.pairs[0]!.weight), `weight ${r.pairs[0]!.weight}`);
  assert.ok(r.pairs[0]!.probability < 0.5, 'a shared surname alone, with another given name and date of birth, is not a match');
});
