/**
 * @module cli/link
 * `onceonly link`: links two CSV files (or deduplicates one) and writes the matching pairs.
 */
import { RegistryRepository } from '../registry/repository.ts';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { OnceOnlyError } from '../core/errors.ts';
import { MAX_COMPARED_CHARS, readTable, refuseLongValues, writeCsv } from '../linkage/csv.ts';
import { writeTextFile } from '../core/files.ts';
import { blockingCeiling, clusters, detectFields, explain, KINDS, link, parseBlockingRule, type LinkOptions } from '../linkage/engine.ts';
import { readLabels, type Label } from '../linkage/labels.ts';
import { checkModel } from '../linkage/model-check.ts';
import type { Explanation, FieldKind, FieldSpec, Model, Table } from '../linkage/types.ts';
import { action, openCliStore } from './common.ts';
import { checkOutputs } from './outputs.ts';
import { registerFromStore, registerTable } from '../audit/register.ts';
import { clip, shown, shownList } from '../linkage/shown.ts';

interface LinkCliOptions {
  left: string;
  right?: string;
  id: string;
  rightId?: string;
  out: string;
  threshold: string;
  seed: string;
  field: string[];
  block: string[];
  model?: string;
  modelOut?: string;
  labels?: string;
  truth?: string;
  clusters?: string;
  explain: string[];
  json?: boolean;
  quiet?: boolean;
  data: string;
}

/**
 * Options are checked here rather than by commander's argument parsers: a parser's plain Error
 * escapes commander as a stack trace, and bad input is a typed error with exit code 2.
 */
function thresholdOf(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new OnceOnlyError('invalid_request', `--threshold must be a probability from 0 to 1, got ${JSON.stringify(v)}`, { field: '--threshold', expected: 'a number from 0 to 1, e.g. 0.9' });
  }
  return n;
}

function seedOf(v: string): number {
  if (!/^\d{1,9}$/.test(v)) throw new OnceOnlyError('invalid_request', `--seed must be a whole number, got ${JSON.stringify(v)}`, { field: '--seed', expected: 'a whole number from 0 to 999999999' });
  return Number(v);
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** `--field COLUMN=ignore` leaves a column out of the comparison whatever detection made of it. */
const IGNORE = 'ignore';
type Override = FieldKind | typeof IGNORE;

function listColumns(columns: readonly string[]): string {
  return shownList(columns);
}

/** `--field COLUMN=KIND` overrides, each checked: a known kind, and a column one of the inputs has. */
function fieldOverrides(specs: string[], tables: Table[]): Map<string, Override> {
  const out = new Map<string, Override>();
  for (const s of specs) {
    const eq = s.lastIndexOf('=');
    const column = s.slice(0, Math.max(eq, 0)).trim();
    const kind = s.slice(eq + 1).trim();
    if (eq < 0 || column === '') throw new OnceOnlyError('invalid_request', `--field ${shown(s)}: expected COLUMN=KIND`, { field: '--field', expected: 'COLUMN=KIND, e.g. forename=given_name' });
    if (kind !== IGNORE && !KINDS.includes(kind as FieldKind)) {
      throw new OnceOnlyError('invalid_request', `--field ${shown(s)}: ${shown(kind)} is not a field kind`, { field: '--field', expected: `${KINDS.join(', ')}, or ${IGNORE}` });
    }
    if (!tables.some((t) => t.columns.includes(column))) {
      const where = tables.map((t) => `${t.source} has ${listColumns(t.columns)}`).join('; ');
      throw new OnceOnlyError('invalid_request', `--field ${shown(s)}: no input has a column named ${shown(column)} (${where})`, { field: '--field', expected: 'the name of a column in the header of an input (names are case-sensitive)' });
    }
    if (out.has(column)) throw new OnceOnlyError('invalid_request', `--field names the column ${shown(column)} twice`, { field: '--field', expected: 'each column once' });
    out.set(column, kind as Override);
  }
  return out;
}

/**
 * The columns of one input and what each holds: detection (as the engine does it), with the
 * `--field` overrides that name this input's columns put over it. A column an override gives a
 * kind displaces the column detection had chosen for that kind.
 */
function fieldsFor(table: Table, overrides: Map<string, Override>): { fields: FieldSpec[]; notes: string[] } {
  const detected = detectFields(table);
  const own = [...overrides].filter(([c]) => table.columns.includes(c));
  const named = new Set(own.map(([c]) => c));
  const claimed = new Map(own.flatMap(([c, k]) => (k === IGNORE ? [] : [[k, c] as const])));
  const fields: FieldSpec[] = [];
  const displaced: string[] = [];
  for (const f of detected.fields) {
    if (named.has(f.column)) continue;
    if (claimed.has(f.kind)) displaced.push(f.column);
    else fields.push(f);
  }
  // Detection's notes, except on the columns whose use --field changed: those get notes of their own.
  const changed = [...named, ...displaced];
  const notes = detected.notes.filter((n) => !changed.some((c) => n.startsWith(`${clip(c)}: `)));
  for (const f of detected.fields) if (displaced.includes(f.column)) notes.push(`${clip(f.column)}: not compared, ${f.kind} is taken from ${clip(claimed.get(f.kind) ?? '')} (--field)`);
  for (const [column, kind] of own) {
    if (kind === IGNORE) notes.push(`${clip(column)}: not compared (--field)`);
    else {
      fields.push({ column, kind });
      notes.push(`${clip(column)}: ${kind} (by --field)`);
    }
  }
  return { fields, notes: notes.map((n) => `${table.source}: ${n}`) };
}

function readModel(file: string): Model {
  let m: unknown;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new OnceOnlyError('invalid_file', `${file} is not a file`, { file, expected: 'a model written by --model-out' });
    if (st.size > 256 * 1024 * 1024) throw new OnceOnlyError('invalid_file', `${file} is ${st.size} bytes, too large for a model`, { file, expected: 'a model written by --model-out' });
    m = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    if (e instanceof OnceOnlyError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new OnceOnlyError('not_found', `${file} does not exist`, { file, expected: 'a model written by --model-out' });
    throw new OnceOnlyError('invalid_file', `${file} is not a model written by --model-out: ${(e as Error).message}`, { file, expected: 'a model written by --model-out (JSON)' });
  }
  return checkModel(m, { file });
}

/**
 * `--explain LEFT,RIGHT` as two record indices. An id may itself hold commas, so every comma is
 * tried as the separator and the first split naming a record on each side is taken.
 */
function explainPair(spec: string, left: Table, right: Table, index: (t: Table) => Map<string, number>): [number, number] {
  const commas: number[] = [];
  for (let p = spec.indexOf(','); p !== -1; p = spec.indexOf(',', p + 1)) commas.push(p);
  if (commas.length === 0) throw new OnceOnlyError('invalid_request', `--explain ${shown(spec)}: expected two record ids separated by a comma`, { field: '--explain', expected: 'LEFT_ID,RIGHT_ID' });
  for (const p of commas) {
    const li = index(left).get(spec.slice(0, p).trim());
    const ri = index(right).get(spec.slice(p + 1).trim());
    if (li !== undefined && ri !== undefined) return [li, ri];
  }
  const l = spec.slice(0, commas[0]).trim();
  const r = spec.slice(commas[0]! + 1).trim();
  const [id, table] = index(left).has(l) ? [r, right] : [l, left];
  throw new OnceOnlyError('not_found', `--explain ${shown(spec)}: no record with id ${shown(id)} in ${table.source}`, { field: '--explain', file: table.source, expected: 'LEFT_ID,RIGHT_ID of records in the inputs' });
}

/**
 * Checks labelled pairs against the inputs: at least one match must name records of both, and
 * pairs that name unknown records are counted in a warning rather than dropped in silence.
 */
function checkLabels(labels: Label[], file: string, left: Table, right: Table, index: (t: Table) => Map<string, number>): string[] {
  if (!labels.some((l) => l.match)) {
    throw new OnceOnlyError('invalid_file', `${file} labels no pair as a match; m is learnt from the pairs labelled as matches`, { file, field: 'match', expected: 'at least one pair labelled as a match' });
  }
  const known = labels.filter((l) => index(left).has(l.leftId) && index(right).has(l.rightId));
  if (!known.some((l) => l.match)) {
    throw new OnceOnlyError('invalid_file', `none of the matches labelled in ${file} names a record of ${left.source}${right === left ? '' : ` and ${right.source}`} (ids are compared as text, exactly)`, { file, field: 'ids', expected: 'labelled pairs whose ids are record ids of the inputs' });
  }
  return known.length < labels.length ? [`${file}: ${labels.length - known.length} of ${labels.length} labelled pairs name a record that is not in the inputs; they were not used.`] : [];
}

/** Warnings about a trained model that would otherwise pass without remark. */
function modelWarnings(model: Model, trained: boolean, modelOut: string | undefined): string[] {
  const out: string[] = [];
  if (trained && model.lambda <= 1e-11) {
    out.push('training found no matches at all (the prior is at its floor): the inputs are too few, or too alike, to learn from. Train on a larger extract and pass its model with --model, or give --labels.');
  }
  const never: string[] = [];
  for (const c of model.comparisons) {
    const exact = c.levels[1];
    if (trained && exact && exact.u >= 1 - 1e-5) out.push(`${c.name}: every record has the same value, so it says nothing about who matches.`);
    if (c.levels.slice(1).some((l) => !(l.u > 0))) never.push(c.name);
  }
  if (modelOut && never.length) {
    out.push(`the model written to ${modelOut} has levels of ${never.join(', ')} that no non-matching pair reached (u = 0), which would weigh infinitely; --model will refuse it.`);
  }
  return out;
}

function unprintable(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
}

/** Text from the inputs made safe to print on a terminal: control and bidirectional-override characters escaped. */
function printable(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const code = v.charCodeAt(i);
    out += unprintable(code) ? `\\u${code.toString(16).padStart(4, '0')}` : v[i];
  }
  return out;
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
  const rows = [`pair ${printable(e.leftId)} / ${printable(e.rightId)}`, `  ${'prior (two random records match)'.padEnd(48)} ${e.prior.toFixed(2).padStart(7)}`];
  for (const s of e.steps) {
    rows.push(`  ${`${s.comparison}: ${s.level}`.padEnd(48)} ${s.weight.toFixed(2).padStart(7)}   (${printable(s.left ?? '∅')} | ${printable(s.right ?? '∅')})${s.note ? `  ${s.note}` : ''}`);
  }
  if (e.household) rows.push(`  ${e.household.rule.padEnd(48)} ${e.household.weight.toFixed(2).padStart(7)}`);
  rows.push(`  ${'match weight'.padEnd(48)} ${e.weight.toFixed(2).padStart(7)}`, `  ${'match probability'.padEnd(48)} ${e.probability.toFixed(6).padStart(9)}`);
  return rows.join('\n');
}

const REGISTRY_INPUT = 'registry:';

/**
 * A CSV file, or `registry:population`: the population register in the store as it stands now
 * (one row per person, current name, date of birth and address; ids are person ids).
 */
async function readInput(spec: string, idColumn: string, o: LinkCliOptions): Promise<{ table: Table; warnings: string[]; lines?: number[] }> {
  if (!spec.startsWith(REGISTRY_INPUT)) return readTable(spec, { idColumn });
  const name = spec.slice(REGISTRY_INPUT.length);
  if (name !== 'population') throw new OnceOnlyError('invalid_request', `${shown(spec)}: only the population register can be linked`, { field: '--left/--right', expected: 'a CSV file or registry:population' });
  // Opening a store creates it: a mistyped --data must not leave an empty store behind.
  if (!process.env['DATABASE_URL'] && !existsSync(o.data)) throw new OnceOnlyError('not_found', `there is no store under ${o.data}`, { field: '--data', expected: 'the data directory of a loaded register (onceonly registry generate --data DIR)' });
  const store = await openCliStore({ data: o.data });
  try {
    const snapshot = await registerFromStore(new RegistryRepository(store.db), { source: `population register at ${store.location}` });
    if (snapshot.people.length === 0) throw new OnceOnlyError('not_found', `the population register at ${store.location} is empty`, { field: spec, expected: 'a loaded register (onceonly registry generate)' });
    return { table: registerTable(snapshot).table, warnings: [] };
  } finally {
    await store.close();
  }
}

async function runLink(o: LinkCliOptions): Promise<void> {
  // Everything that can be checked without reading the inputs is checked first.
  const threshold = thresholdOf(o.threshold);
  const seed = seedOf(o.seed);
  if (o.clusters && o.right) throw new OnceOnlyError('invalid_request', '--clusters applies when deduplicating one file (no --right)', { field: '--clusters', expected: 'no --right' });
  // A given model is used as it is, so labels would be read and then silently ignored.
  if (o.model && o.labels) throw new OnceOnlyError('invalid_request', '--labels trains a model and --model uses one without training; give one of them', { field: '--labels', expected: '--labels or --model, not both' });
  const blocking = o.block.map(parseBlockingRule);
  const fileInput = (spec: string | undefined): string | undefined => (spec?.startsWith(REGISTRY_INPUT) ? undefined : spec);
  checkOutputs([['--out', o.out], ['--clusters', o.clusters], ['--model-out', o.modelOut]], [['--left', fileInput(o.left)], ['--right', fileInput(o.right)], ['--labels', o.labels], ['--truth', o.truth], ['--model', o.model]]);
  const model = o.model ? readModel(o.model) : undefined;
  const labels = o.labels ? readLabels(o.labels) : undefined;
  const truth = o.truth ? readLabels(o.truth) : undefined;
  const left = await readInput(o.left, o.id, o);
  const right = o.right ? await readInput(o.right, o.rightId ?? o.id, o) : null;
  const warnings = [...left.warnings, ...(right?.warnings ?? [])];
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  const rightTable = right?.table ?? left.table;
  const indices = new Map<Table, Map<string, number>>();
  const index = (t: Table): Map<string, number> => {
    let m = indices.get(t);
    if (!m) indices.set(t, (m = new Map(t.ids.map((id, i) => [id, i]))));
    return m;
  };
  const explainPairs = o.explain.map((spec) => explainPair(spec, left.table, rightTable, index));
  if (labels && o.labels) {
    const w = checkLabels(labels, o.labels, left.table, rightTable, index);
    for (const x of w) process.stderr.write(`warning: ${x}\n`);
    warnings.push(...w);
  }
  const overrides = fieldOverrides(o.field, right ? [left.table, right.table] : [left.table]);
  const leftSide = fieldsFor(left.table, overrides);
  const rightSide = right ? fieldsFor(right.table, overrides) : undefined;
  refuseLongValues(left.table, leftSide.fields.map((f) => f.column), MAX_COMPARED_CHARS, left.lines);
  if (right && rightSide) refuseLongValues(right.table, rightSide.fields.map((f) => f.column), MAX_COMPARED_CHARS, right.lines);
  const progress = progressBar(o.quiet || o.json);
  const opts: LinkOptions = {
    threshold,
    seed,
    onProgress: progress.onProgress,
    fields: leftSide.fields,
    ...(rightSide ? { rightFields: rightSide.fields } : {}),
    ...(blocking.length ? { blocking } : {}),
    ...(model ? { model } : {}),
    ...(labels ? { labels } : {}),
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
  const notes = [...leftSide.notes, ...(rightSide?.notes ?? []), ...result.notes];
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  warnings.push(...result.warnings);
  // The pairs known to be true (--truth, else the matches of --labels): what share of them blocking
  // compared is the recall no threshold can pass, and the first thing to read when recall is low.
  const known = truth ?? labels;
  const ceiling = known ? blockingCeiling(result, left.table, right?.table ?? null, known.filter((l) => l.match)) : undefined;
  if (!o.quiet && !o.json) for (const n of notes) process.stderr.write(`columns: ${n}\n`);
  const bad = result.pairs.find((p) => !Number.isFinite(p.weight) || !(p.probability >= 0 && p.probability <= 1));
  if (bad) {
    throw new OnceOnlyError('internal_error', `the engine gave the pair ${shown(bad.leftId)} / ${shown(bad.rightId)} the weight ${bad.weight}; nothing was written. Run --explain on it and report the fault.`, { field: 'weight', expected: 'a finite match weight' });
  }
  const modelNotes = modelWarnings(result.model, !model, o.modelOut);
  for (const w of modelNotes) process.stderr.write(`warning: ${w}\n`);
  warnings.push(...modelNotes);
  writeCsv(o.out, ['left_id', 'right_id', 'match_weight', 'match_probability'], result.pairs.map((p) => [p.leftId, p.rightId, Number(p.weight.toFixed(4)), Number(p.probability.toFixed(6))]));
  if (o.modelOut) writeTextFile(o.modelOut, `${JSON.stringify(result.model, null, 2)}\n`);
  let clusterCount: number | undefined;
  if (o.clusters) {
    const c = clusters(left.table.rows.length, result.pairs);
    clusterCount = new Set(c).size;
    writeCsv(o.clusters, ['id', 'cluster_id'], left.table.ids.map((id, i) => [id, left.table.ids[c[i]!]!]));
  }
  const explanations = explainPairs.map(([li, ri]) => explain(result.model, left.table, li, rightTable, ri, { fields: result.fields, rightFields: result.rightFields }));
  const summary = {
    mode: right ? 'link' : 'dedupe',
    left: { file: o.left, records: left.table.rows.length },
    ...(right ? { right: { file: o.right, records: right.table.rows.length } } : {}),
    blocking: result.blocking,
    compared: result.compared,
    ...(ceiling ? { ceiling: { ...ceiling, from: o.truth ? '--truth' : '--labels' } } : {}),
    matches: result.pairs.length,
    ...(clusterCount !== undefined ? { clusters: clusterCount } : {}),
    threshold,
    out: o.out,
    columns: notes,
    warnings,
    training: result.model.training,
    explanations,
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${result.compared.toLocaleString('en-GB')} pairs compared, ${result.pairs.length.toLocaleString('en-GB')} at or above ${threshold} written to ${o.out}\n`);
  if (clusterCount !== undefined) process.stdout.write(`${clusterCount.toLocaleString('en-GB')} clusters written to ${o.clusters}\n`);
  if (ceiling) process.stdout.write(`blocking compared ${ceiling.compared.toLocaleString('en-GB')} of ${ceiling.truePairs.toLocaleString('en-GB')} true pairs (ceiling on recall ${ceiling.ceiling.toFixed(4)})\n`);
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
    .option('--threshold <p>', 'lowest match probability written', '0.5')
    .option('--seed <n>', 'seed of the random-pair sample', '1')
    .option('--field <column=kind>', `say what a column holds instead of detecting it (repeatable), e.g. forename=given_name; kinds: ${KINDS.join(', ')}, or ${IGNORE} to leave a column out`, collect, [])
    .option('--block <rule>', 'a blocking rule instead of the defaults (repeatable), e.g. surname:dm+dob:year', collect, [])
    .option('--model <file>', 'use a model written by --model-out instead of training (fixed m and u)')
    .option('--model-out <file>', 'write the trained model (m, u, prior, term frequencies) as JSON')
    .option('--labels <file>', 'train m from labelled pairs (left_id,right_id,match or Splink clerical labels)')
    .option('--truth <file>', 'known true pairs (the --labels format): report the blocking ceiling, the share of them blocking compared')
    .option('--clusters <file>', 'when deduplicating, write each record\'s cluster: id,cluster_id')
    .option('--explain <left,right>', 'print how a pair\'s weight is made up (repeatable)', collect, [])
    .option('--json', 'print the summary as JSON')
    .option('--quiet', 'no progress bar or notes')
    // A usage error (a missing or unknown option) is bad input too: exit code 2, as reportError gives.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .action(action(async (o: LinkCliOptions) => {
      await runLink(o);
    }));
}
