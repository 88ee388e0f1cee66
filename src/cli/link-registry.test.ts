/**
 * @module cli/link-registry.test
 * `onceonly link --right registry:population`: an agency's extract linked to the register in the
 * store, checked against the extract generator's own truth.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExtractTruth } from '../audit/extracts.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'onceonly-link-registry-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin/onceonly.js'), ...args], { cwd: scratch, encoding: 'utf8', env: { ...process.env, DATABASE_URL: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('an extract links to the population register in the store, and the best pair of each known person is right', () => {
  const data = join(scratch, 'reg');
  const extracts = join(scratch, 'extracts');
  const gen = cli('registry', 'generate', '--people', '1500', '--data', data, '--extracts', extracts);
  assert.equal(gen.status, 0, gen.stderr);
  const out = join(scratch, 'pairs.csv');
  const r = cli('link', '--left', join(extracts, 'gp-practice.csv'), '--id', 'patient_id', '--right', 'registry:population', '--data', data, '--out', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { mode: string; right: { file: string; records: number } };
  assert.equal(summary.mode, 'link');
  assert.equal(summary.right.records, 1500);
  const truth = JSON.parse(readFileSync(join(extracts, 'extracts-truth.json'), 'utf8')) as ExtractTruth;
  const person = new Map(truth.agencies.find((a) => a.key === 'gp-practice')!.rows.map((row) => [row.recordId, row.personId]));
  const best = new Map<string, string>();
  for (const line of readFileSync(out, 'utf8').trim().split('\n').slice(1)) {
    const [l, rid] = line.split(',') as [string, string];
    if (!best.has(l)) best.set(l, rid);
  }
  const known = [...person.values()].filter(Boolean).length;
  let right = 0;
  for (const [l, rid] of best) if (person.get(l) === rid) right++;
  assert.ok(right >= known * 0.99, `${right} of ${known} known people linked to the right register entry`);
  assert.ok(best.size - right <= known * 0.005, `${best.size - right} rows linked to the wrong person or to someone the register does not know`);
});

test('only the population register can be linked, and an empty one is refused by name', () => {
  const bad = cli('link', '--left', 'registry:companies', '--id', 'id', '--out', join(scratch, 'x.csv'), '--data', join(scratch, 'reg'));
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /only the population register can be linked/);
  const missing = cli('link', '--left', 'registry:population', '--id', 'id', '--out', join(scratch, 'x.csv'), '--data', join(scratch, 'nowhere'));
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /there is no store under .*nowhere/);
  assert.equal(existsSync(join(scratch, 'nowhere')), false, 'nothing created');
  const emptyDir = join(scratch, 'empty');
  mkdirSync(emptyDir);
  const empty = cli('link', '--left', 'registry:population', '--id', 'id', '--out', join(scratch, 'x.csv'), '--data', emptyDir);
  assert.equal(empty.status, 2, empty.stderr);
  assert.match(empty.stderr, /population register at .* is empty/);
});
