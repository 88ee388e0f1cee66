/**
 * Tests for linkage/labels: both layouts are read, and a labels file that cannot train (no pairs,
 * a label that is not a flag, an empty id) or cannot be read is a typed error naming file and line.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isOnceOnlyError, type ErrorType } from '../core/errors.ts';
import { readLabels } from './labels.ts';

const dir = mkdtempSync(join(tmpdir(), 'onceonly-labels-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = (text: string): string => {
  const f = join(dir, `l${++n}.csv`);
  writeFileSync(f, text);
  return f;
};

function refused(f: string, type: ErrorType, line?: number): void {
  assert.throws(() => readLabels(f), (e: unknown) => {
    assert.ok(isOnceOnlyError(e), String(e));
    assert.equal(e.type, type, e.message);
    assert.equal(e.detail.file, f);
    if (line !== undefined) assert.equal(e.detail.line, line, e.message);
    return true;
  });
}

test('our layout and Splink\'s clerical labels are read; a score counts as a match from 0.5', () => {
  assert.deepEqual(readLabels(file('left_id,right_id,match\n1,2,true\n1,3,no\n')), [
    { leftId: '1', rightId: '2', match: true },
    { leftId: '1', rightId: '3', match: false },
  ]);
  assert.deepEqual(readLabels(file('\ufeffunique_id_l,source_dataset_l,unique_id_r,source_dataset_r,clerical_match_score\n0,a,1,a,0.5\n0,a,2,a,0.49\n')).map((l) => l.match), [true, false]);
});

test('a labels file that cannot train, or cannot be read, is refused by name', () => {
  refused(file(''), 'invalid_file', 1);
  refused(file('left_id,right_id,match\n'), 'invalid_file', 2);
  refused(file('left_id,right_id,match\n\n'), 'invalid_file', 2);
  refused(file('a,b,c\n1,2,true\n'), 'invalid_file', 1);
  refused(file('left_id,right_id,match\n1,2,true\n1,3,maybe\n'), 'invalid_file', 3);
  refused(file('left_id,right_id,match\n1,,true\n'), 'invalid_file', 2);
  refused(file('left_id,right_id,match\n1,2,"true\n'), 'invalid_file');
  refused(join(dir, 'missing.csv'), 'not_found');
  refused(dir, 'invalid_file');
  refused('/dev/zero', 'invalid_file');
});
