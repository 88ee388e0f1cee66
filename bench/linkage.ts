/**
 * @module bench/linkage
 * Issue "Record linkage" benchmarks:
 *
 * 1. Speed: link a 100,000-row agency extract (made from the register with the demo's damage) to
 *    a generated 1,000,000-person register, in its own process so its peak memory is its own:
 *    seconds, pairs compared per second and peak RSS, against an exact join on name and date of
 *    birth over the same inputs in the same process (the least any linkage must do).
 * 2. Accuracy, trained without labels: pairwise F1 on FEBRL4 (link), FEBRL3 and Splink's
 *    fake_20000 (dedupe), with pairs blocking never compared counted as missed, against the F1 of
 *    an exact match on normalised name and date of birth over the same files; with each, the
 *    blocking ceiling (true pairs compared / all true pairs), the recall no threshold can pass.
 * 3. With BENCH_LINKAGE_BEFORE=<commit>: the speed benchmark again with that commit's code, in the
 *    same run, and the ratio after / before (issue 11 allows the new blocking rules 1.5x).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readTable } from '../src/linkage/csv.ts';
import { blockingCeiling, link } from '../src/linkage/engine.ts';
import { normalise } from '../src/linkage/compare.ts';
import type { ScoredPair, Table } from '../src/linkage/types.ts';
import type { BenchResult } from './foundation.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DATA = fileURLToPath(new URL('../test/fixtures/linkage/', import.meta.url));

interface WorkerResult {
  people: number;
  rows: number;
  baselineSeconds: number;
  baseline: { precision: number; recall: number };
  linkSeconds: number;
  compared: number;
  engine: { precision: number; recall: number };
  peakRssMiB: number;
}

function worker(people: number, rows: number, root = ROOT): Promise<WorkerResult> {
  // The register and its normalised columns take a few GB at a million people: more than Node's default heap.
  const child = spawn(process.execPath, ['--max-old-space-size=8192', '--import', 'tsx', 'bench/processes/linkage-worker.ts', String(people), String(rows)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as WorkerResult) : reject(new Error(`linkage worker exited with ${code}: ${err}`))));
  });
}

/**
 * The speed benchmark run with the code of `commit` (its src and bench, from `git archive`, with
 * this tree's node_modules), so that before and after are measured on the same machine in the
 * same run: these machines are shared, and a figure from another day says little.
 */
async function workerAt(commit: string, people: number, rows: number): Promise<WorkerResult> {
  const dir = mkdtempSync(join(tmpdir(), 'onceonly-bench-before-'));
  try {
    const archive = spawnSync('git', ['-C', ROOT, 'archive', '--format=tar', commit, 'src', 'bench', 'package.json'], { maxBuffer: 1 << 30 });
    if (archive.status !== 0) throw new Error(`git archive ${commit}: ${archive.stderr.toString()}`);
    const untar = spawnSync('tar', ['-x', '-C', dir], { input: archive.stdout });
    if (untar.status !== 0) throw new Error(`tar: ${untar.stderr.toString()}`);
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    return await worker(people, rows, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const key = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`);

function f1(pred: Iterable<[string, string]>, truth: Set<string>): number {
  let tp = 0;
  let n = 0;
  for (const [a, b] of pred) {
    n++;
    if (truth.has(key(a, b))) tp++;
  }
  const p = n ? tp / n : 0;
  const r = tp / truth.size;
  return p + r ? (2 * p * r) / (p + r) : 0;
}

/** The true pairs, as keys for F1 and as id pairs (left first) for the blocking ceiling. */
interface Truth {
  keys: Set<string>;
  pairs: { leftId: string; rightId: string }[];
}

function truthPairs(ids: string[], group: (i: number) => string, other?: { ids: string[]; group: (i: number) => string }): Truth {
  const by = new Map<string, string[]>();
  ids.forEach((id, i) => (by.get(group(i)) ?? by.set(group(i), []).get(group(i))!).push(id));
  const truth: Truth = { keys: new Set(), pairs: [] };
  const add = (leftId: string, rightId: string): void => {
    truth.keys.add(key(leftId, rightId));
    truth.pairs.push({ leftId, rightId });
  };
  if (other) {
    other.ids.forEach((id, j) => {
      for (const x of by.get(other.group(j)) ?? []) add(x, id);
    });
  } else {
    for (const l of by.values()) for (let i = 0; i < l.length; i++) for (let j = i + 1; j < l.length; j++) add(l[i]!, l[j]!);
  }
  return truth;
}

/** The baseline linkage: records agree exactly on normalised given name, surname and date of birth. */
function exactPairs(a: Table, b: Table | null, cols: [string, string, string]): [string, string][] {
  const keyOf = (t: Table, i: number): string | null => {
    const [g, s, d] = cols.map((c) => t.columns.indexOf(c)) as [number, number, number];
    const r = t.rows[i]!;
    const parts = [normalise('given_name', r[g] ?? null), normalise('surname', r[s] ?? null), normalise('dob', r[d] ?? null)];
    return parts.every((x) => x !== null) ? parts.join('|') : null;
  };
  const index = new Map<string, string[]>();
  const target = b ?? a;
  target.ids.forEach((id, j) => {
    const k = keyOf(target, j);
    if (k !== null) (index.get(k) ?? index.set(k, []).get(k)!).push(id);
  });
  const out: [string, string][] = [];
  a.ids.forEach((id, i) => {
    const k = keyOf(a, i);
    if (k === null) return;
    for (const other of index.get(k) ?? []) if (b || id < other) out.push([id, other]);
  });
  return out;
}

function accuracy(name: string, a: Table, b: Table | null, truth: Truth, cols: [string, string, string]): BenchResult {
  const t = performance.now();
  const r = link(a, b);
  const seconds = (performance.now() - t) / 1000;
  const engine = f1(r.pairs.map((p: ScoredPair) => [p.leftId, p.rightId] as [string, string]), truth.keys);
  const exact = f1(exactPairs(a, b, cols), truth.keys);
  const ceiling = blockingCeiling(r, a, b, truth.pairs);
  return {
    name: `linkage accuracy: ${name}, trained without labels`,
    value: engine,
    unit: 'F1',
    baseline: exact,
    baselineName: 'exact match on name and date of birth',
    ratio: engine / exact,
    extra: { seconds, compared: r.compared, blocking_ceiling: ceiling.ceiling, true_pairs_compared: ceiling.compared, true_pairs: ceiling.truePairs },
  };
}

export async function runLinkage(opts: { people: number; rows: number }): Promise<BenchResult[]> {
  const febrl = (f: string): Table => readTable(`${DATA}febrl/${f}`, { idColumn: 'rec_id' }).table;
  const entity = (t: Table) => (i: number): string => t.ids[i]!.split('-')[1]!;
  const a4 = febrl('dataset4a.csv');
  const b4 = febrl('dataset4b.csv');
  const d3 = febrl('dataset3.csv');
  const fake = readTable(`${DATA}splink/fake_20000.csv`, { idColumn: 'unique_id' }).table;
  const group = fake.columns.indexOf('group');
  const febrlCols: [string, string, string] = ['given_name', 'surname', 'date_of_birth'];
  const results = [
    accuracy('FEBRL4 link', a4, b4, truthPairs(a4.ids, entity(a4), { ids: b4.ids, group: entity(b4) }), febrlCols),
    accuracy('FEBRL3 dedupe', d3, null, truthPairs(d3.ids, entity(d3)), febrlCols),
    accuracy('fake_20000 dedupe', fake, null, truthPairs(fake.ids, (i) => fake.rows[i]![group]!), ['first_name', 'surname', 'dob']),
  ];
  const w = await worker(opts.people, opts.rows);
  results.push({
    name: `linkage: ${w.rows.toLocaleString('en-GB')}-row extract to a ${w.people.toLocaleString('en-GB')}-person register`,
    value: w.linkSeconds,
    unit: 's',
    baseline: w.baselineSeconds,
    baselineName: 'exact join on name and date of birth',
    ratio: w.linkSeconds / w.baselineSeconds,
    extra: {
      target_seconds: 60,
      pairs_compared: w.compared,
      pairs_per_second: w.compared / w.linkSeconds,
      peak_rss_mib: w.peakRssMiB,
      recall: w.engine.recall,
      precision: w.engine.precision,
      baseline_recall: w.baseline.recall,
      baseline_precision: w.baseline.precision,
    },
  });
  const before = process.env['BENCH_LINKAGE_BEFORE'];
  if (before) {
    const b = await workerAt(before, opts.people, opts.rows);
    results.push({
      name: `linkage: the same link with the code of ${before}`,
      value: w.linkSeconds,
      unit: 's',
      baseline: b.linkSeconds,
      baselineName: `${before}, measured in this run`,
      ratio: w.linkSeconds / b.linkSeconds,
      extra: { target_ratio: 1.5, pairs_compared: w.compared, before_pairs_compared: b.compared, recall: w.engine.recall, before_recall: b.engine.recall, precision: w.engine.precision, before_precision: b.engine.precision },
    });
  }
  return results;
}
