/**
 * @module bench/processes/linkage-worker
 * Runs the linkage benchmark in its own process so that its peak memory is its own: generates a
 * register of N people and an agency extract of M rows made from it with the demo's damage, then
 * links the extract to the register twice: with an exact join on name and date of birth (the
 * baseline: the least any linkage must do) and with the engine. Prints one JSON line.
 *
 * Usage: node --import tsx bench/processes/linkage-worker.ts PEOPLE ROWS
 */
import { generate } from '../../src/registry/generate.ts';
import { registerFieldsFor, registerFromRecords, registerTable } from '../../src/audit/register.ts';
import { AGENCIES, makeExtracts } from '../../src/audit/extracts.ts';
import { detectFields, link } from '../../src/linkage/engine.ts';
import { normalise } from '../../src/linkage/compare.ts';
import type { Table } from '../../src/linkage/types.ts';

const people = Number(process.argv[2] ?? 1_000_000);
const rows = Number(process.argv[3] ?? 100_000);

let t = performance.now();
const register = registerFromRecords(generate({ people, seed: 11 }));
const right = registerTable(register).table;
const prepareSeconds = (performance.now() - t) / 1000;

// One agency holding about `rows` people: the GP-practice profile of damage, resized.
const spec = { ...AGENCIES[2]!, share: Math.min(1, (rows / people) * 1.02), rates: { ...AGENCIES[2]!.rates, deceased: 0 } };
const { extracts, truth } = makeExtracts(register, { seed: 5, agencies: [spec] });
const ex = extracts[0]!;
const kept = ex.rows.slice(0, rows);
const left: Table = { source: 'benchmark extract', columns: ex.header, ids: kept.map((r) => r[0]!), rows: kept.map((r) => r.map((v) => (v === '' ? null : v))) };
const truthById = new Map(truth.agencies[0]!.rows.map((r) => [r.recordId, r.personId]));

function accuracy(best: Map<string, string>): { precision: number; recall: number } {
  let tp = 0;
  let known = 0;
  for (const id of left.ids) if (truthById.get(id)) known++;
  for (const [l, r] of best) if (truthById.get(l) === r) tp++;
  return { precision: best.size ? tp / best.size : 0, recall: tp / known };
}

// Baseline: exact join on normalised given name, family name and date of birth.
const cols = (tb: Table, names: string[]): number[] => names.map((n) => tb.columns.indexOf(n));
t = performance.now();
const [rg, rs, rd] = cols(right, ['given_name', 'surname', 'date_of_birth']) as [number, number, number];
const index = new Map<string, string>();
right.rows.forEach((r, i) => index.set(`${normalise('given_name', r[rg]!)}|${normalise('surname', r[rs]!)}|${normalise('dob', r[rd]!)}`, right.ids[i]!));
const [lg, ls, ld] = cols(left, [ex.header[1]!, ex.header[2]!, ex.header[3]!]) as [number, number, number];
const exact = new Map<string, string>();
left.rows.forEach((r, i) => {
  const hit = index.get(`${normalise('given_name', r[lg] ?? null)}|${normalise('surname', r[ls] ?? null)}|${normalise('dob', r[ld] ?? null)}`);
  if (hit) exact.set(left.ids[i]!, hit);
});
const baselineSeconds = (performance.now() - t) / 1000;

t = performance.now();
const fields = detectFields(left).fields;
const phases: Record<string, number> = {};
let phase = 'preparing';
let phaseStart = process.cpuUsage().user / 1e6;
const result = link(left, right, {
  fields,
  rightFields: registerFieldsFor(fields),
  onProgress: (p) => {
    if (p === phase) return;
    phases[phase] = process.cpuUsage().user / 1e6 - phaseStart;
    phase = p;
    phaseStart = process.cpuUsage().user / 1e6;
  },
});
phases[phase] = process.cpuUsage().user / 1e6 - phaseStart;
const linkSeconds = (performance.now() - t) / 1000;
const best = new Map<string, string>();
for (const p of result.pairs) if (!best.has(p.leftId)) best.set(p.leftId, p.rightId);

process.stdout.write(`${JSON.stringify({
  people,
  rows: left.rows.length,
  prepareSeconds,
  baselineSeconds,
  baseline: accuracy(exact),
  linkSeconds,
  phases,
  compared: result.compared,
  blocking: result.blocking,
  engine: accuracy(best),
  peakRssMiB: process.resourceUsage().maxRSS / 1024,
})}\n`);
