import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createApp } from '../core/http.ts';
import { linkageRoutes } from './routes.ts';

const DATA = fileURLToPath(new URL('../../test/fixtures/linkage/febrl/', import.meta.url));
const csv1 = readFileSync(`${DATA}dataset1.csv`, 'utf8');

async function app(): Promise<Awaited<ReturnType<typeof createApp>>> {
  const a = await createApp({ title: 'linkage test' });
  linkageRoutes(a, { maxPairs: 20_000 });
  return a;
}

interface LinkAnswer {
  mode: string;
  compared: number;
  blocking: { rule: string; pairs: number }[];
  pairs: { left_id: string; right_id: string; match_weight: number; match_probability: number }[];
  model: Record<string, unknown>;
}

test('POST /linkage/link deduplicates CSV text and POST /linkage/explain explains a pair with the returned model', async () => {
  const a = await app();
  try {
    const res = await a.inject({ method: 'POST', url: '/linkage/link', payload: { left: { csv: csv1, idColumn: 'rec_id' } } });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json<LinkAnswer>();
    assert.equal(body.mode, 'dedupe');
    assert.equal(body.blocking.reduce((n, b) => n + b.pairs, 0), body.compared);
    // FEBRL1: 500 true pairs of rec-N-org / rec-N-dup-0.
    const truth = body.pairs.filter((p) => p.left_id.split('-')[1] === p.right_id.split('-')[1]);
    assert.ok(truth.length >= 490 && body.pairs.length - truth.length <= 5, `${truth.length} true of ${body.pairs.length}`);
    const p = body.pairs[0]!;
    const ex = await a.inject({ method: 'POST', url: '/linkage/explain', payload: { left: { csv: csv1, idColumn: 'rec_id' }, model: body.model, leftId: p.left_id, rightId: p.right_id } });
    assert.equal(ex.statusCode, 200, ex.body);
    const e = ex.json<{ weight: number; prior: number; steps: { weight: number; level: string }[] }>();
    assert.ok(Math.abs(e.weight - p.match_weight) < 1e-9);
    assert.ok(Math.abs(e.prior + e.steps.reduce((n, s) => n + s.weight, 0) - e.weight) < 1e-9);

    const fixed = await a.inject({ method: 'POST', url: '/linkage/link', payload: { left: { csv: csv1, idColumn: 'rec_id' }, model: body.model, threshold: 0.9 } });
    assert.equal(fixed.statusCode, 200, fixed.body);
    assert.ok(fixed.json<LinkAnswer>().pairs.every((q) => q.match_probability >= 0.9));
  } finally {
    await a.close();
  }
});

test('the linkage API refuses bad input with typed errors that name the field', async () => {
  const a = await app();
  try {
    const cases: [unknown, number, string, RegExp][] = [
      [{ left: { csv: 'id,name\n1,"x\n', idColumn: 'id' } }, 422, 'invalid_file', /quote/i],
      [{ left: { csv: csv1, idColumn: 'nope' } }, 422, 'invalid_file', /nope/],
      [{ left: { csv: csv1, idColumn: 'rec_id' }, threshold: 3 }, 400, 'invalid_request', /threshold/],
      [{ left: { csv: csv1, idColumn: 'rec_id' }, blocking: ['height'] }, 400, 'invalid_request', /height/],
      [{ left: { csv: csv1, idColumn: 'rec_id', fields: [{ column: 'surname', kind: 'shoe' }] } }, 400, 'invalid_request', /kind/],
      [{ left: { csv: csv1, idColumn: 'rec_id' }, model: { version: 1, lambda: 7 } }, 400, 'invalid_request', /lambda/],
      // A rule on a near-constant key would form almost every pair: refused before it holds the server.
      [{ left: { csv: csv1, idColumn: 'rec_id' }, blocking: ['surname:first'] }, 400, 'invalid_request', /more than 20,000 pairs/],
      [{ left: { csv: 'id,colour\n1,red\n2,blue\n', idColumn: 'id' } }, 400, 'invalid_request', /no column/],
    ];
    for (const [payload, status, type, message] of cases) {
      const res = await a.inject({ method: 'POST', url: '/linkage/link', payload: payload as Record<string, unknown> });
      assert.equal(res.statusCode, status, `${JSON.stringify(payload).slice(0, 80)}: ${res.body.slice(0, 300)}`);
      const err = res.json<{ type: string; message: string }>();
      assert.equal(err.type, type);
      assert.match(err.message, message);
    }
    const model = (await a.inject({ method: 'POST', url: '/linkage/link', payload: { left: { csv: csv1, idColumn: 'rec_id' } } })).json<LinkAnswer>().model;
    const unknown = await a.inject({ method: 'POST', url: '/linkage/explain', payload: { left: { csv: csv1, idColumn: 'rec_id' }, model, leftId: 'rec-1-org', rightId: 'nobody' } });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json<{ detail: { field: string } }>().detail.field, 'rightId');
    const other = await a.inject({ method: 'POST', url: '/linkage/explain', payload: { left: { csv: 'id,colour\n1,red\n', idColumn: 'id' }, model, leftId: '1', rightId: '1' } });
    assert.equal(other.statusCode, 400, other.body);
    assert.match(other.json<{ message: string }>().message, /needs a/);
  } finally {
    await a.close();
  }
});
