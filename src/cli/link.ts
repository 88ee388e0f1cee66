/**
 * @module cli/link
 * `onceonly link`: links two CSV files (or deduplicates one) and writes the matching pairs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { OnceOnlyError } from '../core/errors.ts';
import { readTable, writeCsv } from '../linkage/csv.ts';
import { clusters, explain, link, parseBlockingRule, type LinkOptions } from '../linkage/engine.ts';
import { readLabels } from '../linkage/labels.ts';
import type { Explanation, FieldKind, FieldSpec, Model, Table } from '../linkage/types.ts';
import { openCliStore, reportError } from './common.ts';
import { registerFromStore, registerTable } from '../audit/register.ts';

interface LinkCliOptions {
  left: string;
  right?: string;
  id: string;
  rightId?: string;
  out: string;
  threshold: number;
  seed: number;
  field: string[];
  block: string[];
  model?: string;
  modelOut?: string;
  labels?: string;
  clusters?: string;
  explain: string[];
  json?: boolean;
  quiet?: boolean;
  data: string;
}

function probabilityOption(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new Error(`--threshold must be a probability from 0 to 1, got ${JSON.stringify(v)}`);
  return n;
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** `--field COLUMN=KIND` overrides: applied to whichever file has the column. */
function fieldOverrides(specs: string[]): Map<string, FieldKind> {
  const out = new Map<string, FieldKind>();
  for (const s of specs) {
    const eq = s.lastIndexOf('=');
    if (eq <= 0) throw new OnceOnlyError('invalid_request', `--field ${s}: expected COLUMN=KIND`, { field: '--field', expected: 'COLUMN=KIND, e.g. forename=given_name' });
    out.set(s.slice(0, eq), s.slice(eq + 1) as FieldKind);
  }
  return out;
}

function fieldsFor(table: Table, overrides: Map<string, FieldKind>): FieldSpec[] | undefined {
  const own = [...overrides].filter(([c]) => table.columns.includes(c));
  return own.length ? own.map(([column, kind]) => ({ column, kind })) : undefined;
}

function readModel(file: string): Model {
  let m: unknown;
  try {
    m = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `${file} is not a model written by --model-out: ${(e as Error).message}`, { file });
  }
  const model = m as Model;
  if (!model || model.version !== 1 || !Array.isArray(model.comparisons) || !(model.lambda > 0 && model.lambda < 1)) {
    throw new OnceOnlyError('invalid_file', `${file} is not a model written by --model-out`, { file, expected: 'JSON with version 1, lambda and comparisons' });
  }
  return model;
}

function progressBar(quiet: boolean | undefined): { onProgress: NonNullable<LinkOptions['onProgress']>; stop: () => void } {
  if (quiet || !process.stderr.isTTY) return { onProgress: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar({ format: '{phase} {bar} {percentage}%', stream: process.stderr, hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic);
  let phase = '';
  return {
    onProgress: (p, done, total) => {
      if (p !== phase) {
        if (phase) bar.stop();
        phase = p;
        bar.start(Math.max(total, 1), done, { phase: p.padEnd(32) });
      } else bar.update(done);
    },
    stop: () => phase && bar.stop(),
  };
}

export function formatExplanation(e: Explanation): string {
  const rows = [`pair ${e.leftId} / ${e.rightId}`, `  ${'prior (two random records match)'.padEnd(48)} ${e.prior.toFixed(2).padStart(7)}`];
  for (const s of e.steps) {
    rows.push(`  ${`${s.comparison}: ${s.level}`.padEnd(48)} ${s.weight.toFixed(2).padStart(7)}   (${s.left ?? '∅'} | ${s.right ?? '∅'})`);
  }
  rows.push(`  ${'match weight'.padEnd(48)} ${e.weight.toFixed(2).padStart(7)}`, `  ${'match probability'.padEnd(48)} ${e.probability.toFixed(6).padStart(9)}`);
  return rows.join('\n');
}

const REGISTRY_INPUT = 'registry:';

/**
 * A CSV file, or `registry:population`: the population register in the store as it stands now
 * (one row per person, current name, date of birth and address; ids are person ids).
 */
async function readInput(spec: string, idColumn: string, o: LinkCliOptions): Promise<{ table: Table; warnings: string[] }> {
  if (!spec.startsWith(REGISTRY_INPUT)) return readTable(spec, { idColumn });
  const name = spec.slice(REGISTRY_INPUT.length);
  if (name !== 'population') throw new OnceOnlyError('invalid_request', `${spec}: only the population register can be linked`, { field: '--left/--right', expected: 'a CSV file or registry:population' });
  const store = await openCliStore({ data: o.data });
  try {
    const snapshot = await registerFromStore(store.db, { source: `population register at ${store.location}` });
    if (snapshot.people.length === 0) throw new OnceOnlyError('not_found', `the population register at ${store.location} is empty`, { field: spec, expected: 'a loaded register (onceonly registry generate)' });
    return { table: registerTable(snapshot).table, warnings: [] };
  } finally {
    await store.close();
  }
}

async function runLink(o: LinkCliOptions): Promise<void> {
  if (o.clusters && o.right) throw new OnceOnlyError('invalid_request', '--clusters applies when deduplicating one file (no --right)', { field: '--clusters', expected: 'no --right' });
  const left = await readInput(o.left, o.id, o);
  const right = o.right ? await readInput(o.right, o.rightId ?? o.id, o) : null;
  for (const w of [...left.warnings, ...(right?.warnings ?? [])]) process.stderr.write(`warning: ${w}\n`);
  const overrides = fieldOverrides(o.field);
  const progress = progressBar(o.quiet || o.json);
  const fields = fieldsFor(left.table, overrides);
  const rightFields = right ? fieldsFor(right.table, overrides) : undefined;
  const opts: LinkOptions = {
    threshold: o.threshold,
    seed: o.seed,
    onProgress: progress.onProgress,
    ...(fields ? { fields } : {}),
    ...(rightFields ? { rightFields } : {}),
    ...(o.block.length ? { blocking: o.block.map(parseBlockingRule) } : {}),
    ...(o.model ? { model: readModel(o.model) } : {}),
    ...(o.labels ? { labels: readLabels(o.labels) } : {}),
    onBlocking: (report) => {
      if (o.quiet || o.json) return;
      process.stderr.write('comparisons generated by blocking (before scoring):\n');
      for (const r of report) process.stderr.write(`  ${r.rule.padEnd(44)} ${r.pairs.toLocaleString('en-GB').padStart(12)}\n`);
    },
  };
  let result;
  try {
    result = link(left.table, right?.table ?? null, opts);
  } finally {
    progress.stop();
  }
  if (!o.quiet && !o.json) for (const n of result.notes) process.stderr.write(`columns: ${n}\n`);
  writeCsv(o.out, ['left_id', 'right_id', 'match_weight', 'match_probability'], result.pairs.map((p) => [p.leftId, p.rightId, Number(p.weight.toFixed(4)), Number(p.probability.toFixed(6))]));
  if (o.modelOut) writeFileSync(o.modelOut, JSON.stringify(result.model, null, 2));
  let clusterCount: number | undefined;
  if (o.clusters) {
    const c = clusters(left.table.rows.length, result.pairs);
    clusterCount = new Set(c).size;
    writeCsv(o.clusters, ['id', 'cluster_id'], left.table.ids.map((id, i) => [id, left.table.ids[c[i]!]!]));
  }
  const explanations = o.explain.map((spec) => {
    const [l, r] = spec.split(',');
    const li = left.table.ids.indexOf(l ?? '');
    const rt = right?.table ?? left.table;
    const ri = rt.ids.indexOf(r ?? '');
    if (li < 0 || ri < 0) throw new OnceOnlyError('not_found', `--explain ${spec}: no record with id ${li < 0 ? l : r}`, { field: '--explain', expected: 'LEFT_ID,RIGHT_ID of records in the inputs' });
    return explain(result.model, left.table, li, rt, ri, { fields: result.fields, rightFields: result.rightFields });
  });
  const summary = {
    mode: right ? 'link' : 'dedupe',
    left: { file: o.left, records: left.table.rows.length },
    ...(right ? { right: { file: o.right, records: right.table.rows.length } } : {}),
    blocking: result.blocking,
    compared: result.compared,
    matches: result.pairs.length,
    ...(clusterCount !== undefined ? { clusters: clusterCount } : {}),
    threshold: o.threshold,
    out: o.out,
    columns: result.notes,
    training: result.model.training,
    explanations,
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${result.compared.toLocaleString('en-GB')} pairs compared, ${result.pairs.length.toLocaleString('en-GB')} at or above ${o.threshold} written to ${o.out}\n`);
  if (clusterCount !== undefined) process.stdout.write(`${clusterCount.toLocaleString('en-GB')} clusters written to ${o.clusters}\n`);
  for (const e of explanations) process.stdout.write(`${formatExplanation(e)}\n`);
}

/** Registers `onceonly link`. */
export function registerLinkCommand(program: Command): void {
  program
    .command('link')
    .description('link two CSV files of person records (or deduplicate one) without labels: Fellegi-Sunter with EM')
    .requiredOption('--left <file>', 'CSV file of records, or registry:population for the register in the store')
    .option('--right <file>', 'second CSV file (or registry:population): link --left to it (without it, deduplicate --left)')
    .option('--data <dir>', 'data directory of the embedded store, for registry:population (ignored when DATABASE_URL is set)', 'data')
    .requiredOption('--id <column>', 'record id column')
    .option('--right-id <column>', 'record id column of --right when it differs')
    .requiredOption('--out <file>', 'CSV of matching pairs: left_id,right_id,match_weight,match_probability')
    .option('--threshold <p>', 'lowest match probability written', probabilityOption, 0.5)
    .option('--seed <n>', 'seed of the random-pair sample', (v) => {
      if (!/^\d{1,9}$/.test(v)) throw new Error(`--seed must be a whole number, got ${JSON.stringify(v)}`);
      return Number(v);
    }, 1)
    .option('--field <column=kind>', 'say what a column holds (repeatable), e.g. forename=given_name', collect, [])
    .option('--block <rule>', 'a blocking rule instead of the defaults (repeatable), e.g. surname:dm+dob:year', collect, [])
    .option('--model <file>', 'use a model written by --model-out instead of training (fixed m and u)')
    .option('--model-out <file>', 'write the trained model (m, u, prior, term frequencies) as JSON')
    .option('--labels <file>', 'train m from labelled pairs (left_id,right_id,match or Splink clerical labels)')
    .option('--clusters <file>', 'when deduplicating, write each record\'s cluster: id,cluster_id')
    .option('--explain <left,right>', 'print how a pair\'s weight is made up (repeatable)', collect, [])
    .option('--json', 'print the summary as JSON')
    .option('--quiet', 'no progress bar or notes')
    .action(async (o: LinkCliOptions) => {
      try {
        await runLink(o);
      } catch (e) {
        process.exitCode = reportError(e);
      }
    });
}
