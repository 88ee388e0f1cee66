/**
 * Tests for cli/outputs: an output that is an input (by path or by link), two outputs that are one
 * file, a missing folder and a folder in an output's place are all refused before any work.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { isOnceOnlyError } from '../core/errors.ts';
import { checkOutputs, sameFile } from './outputs.ts';

const dir = mkdtempSync(join(tmpdir(), 'onceonly-outputs-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const input = join(dir, 'input.csv');
writeFileSync(input, 'id\n1\n');

function refused(outputs: [string, string | undefined][], inputs: [string, string | undefined][], message: RegExp, field: string): void {
  assert.throws(() => checkOutputs(outputs, inputs), (e: unknown) => {
    assert.ok(isOnceOnlyError(e), String(e));
    assert.match(e.message, message);
    assert.equal(e.detail.field, field);
    return true;
  });
}

test('sameFile sees through relative paths, symbolic links and hard links', () => {
  symlinkSync(input, join(dir, 'soft.csv'));
  linkSync(input, join(dir, 'hard.csv'));
  assert.ok(sameFile(input, relative(process.cwd(), input)));
  assert.ok(sameFile(join(dir, 'soft.csv'), input));
  assert.ok(sameFile(join(dir, 'hard.csv'), input));
  assert.ok(!sameFile(join(dir, 'other.csv'), input));
});

test('an output may not be an input, another output, in a missing folder, or a folder', () => {
  refused([['--out', join(dir, 'soft.csv')]], [['--left', input]], /--out .*soft\.csv is also an input \(--left\)/, '--out');
  refused([['--out', join(dir, 'a.csv')], ['--clusters', join(dir, '.', 'a.csv')]], [['--left', input]], /--clusters and --out are the same file/, '--clusters');
  refused([['--out', join(dir, 'nope', 'a.csv')]], [], /the folder .*nope does not exist/, '--out');
  mkdirSync(join(dir, 'folder'));
  refused([['--out', join(dir, 'folder')]], [], /is a folder; --out needs a file name/, '--out');
  // Options not given are skipped, and a fresh file in an existing folder is fine.
  checkOutputs([['--out', join(dir, 'new.csv')], ['--clusters', undefined]], [['--left', input], ['--right', undefined]]);
});
