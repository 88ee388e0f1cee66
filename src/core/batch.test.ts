/**
 * Group commit (core/batch): items submitted together are flushed together, in order, one batch
 * at a time, at most `max` per batch; a failing batch rejects its own items only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GroupCommit } from './batch.ts';

test('items of one turn form one batch; items arriving during a flush form the next; results in order', async () => {
  const batches: number[][] = [];
  let inFlight = 0;
  const g = new GroupCommit<number, string>(async (items) => {
    inFlight++;
    assert.equal(inFlight, 1, 'one batch at a time');
    batches.push(items);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
    return items.map((i) => `r${i}`);
  }, { max: 3 });
  const first = [1, 2, 3, 4, 5].map((i) => g.submit(i));
  await new Promise((r) => setImmediate(r));
  const during = [6, 7].map((i) => g.submit(i));
  assert.deepEqual(await Promise.all([...first, ...during]), ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
  assert.deepEqual(batches, [[1, 2, 3], [4, 5, 6], [7]]);
  await g.drained();
});

test('a failing batch rejects its items, and the next batch runs', async () => {
  let n = 0;
  const g = new GroupCommit<string, string>((items) => {
    n++;
    if (n === 1) throw new Error('disk full');
    return items.map((x) => x.toUpperCase());
  });
  const a = g.submit('a');
  await assert.rejects(a, /disk full/);
  assert.equal(await g.submit('b'), 'B');
  const short = new GroupCommit<string, string>(() => []);
  await assert.rejects(short.submit('x'), /fewer results/);
});
