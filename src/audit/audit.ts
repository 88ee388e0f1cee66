/**
 * @module audit/audit
 * The duplication audit: links each agency's extract to the population register and counts what
 * the copies cost. Per agency and across agencies: rows linked, unmatched and ambiguous;
 * duplicate rows for one person; per data item, copies held beyond the register's and how many of
 * them are stale or conflict; people whose data is held in redundant copies; and an estimated
 * yearly cost. Every figure is defined in docs/audit.md.
 *
 * The figures are counts. The per-row outcome ({@link AuditResult.rows}) names record ids and
 * register ids only, for callers that must check or act on it; the report never includes it.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { MAX_COMPARED_CHARS, refuseLongValues } from '../linkage/csv.ts';
import { applicableRules, detectFields, link } from '../linkage/engine.ts';
import { clipList, shown } from '../linkage/shown.ts';
import type { FieldKind, FieldSpec, Model, ScoredPair, Table } from '../linkage/types.ts';
import { heldValues, registerFieldsFor, registerTable, type RegisterSnapshot } from './register.ts';
import { classify, ITEM_INFO, ITEMS, type HeldValues, type Item, type ItemState } from './values.ts';

/** Yearly costs, in `currency`. Defaults and their sources: {@link DEFAULT_COSTS}, docs/audit.md. */
export interface CostSettings {
  currency: string;
  /** Keeping one agency record of a person for a year. */
  perRecord: number;
  /** Keeping one copy of an item up to date for a year. */
  perItem: Record<Item, number>;
  /** Putting right one stale or conflicting copy, once. */
  perDiscrepancy: number;
}

/**
 * Defaults (GBP). Per item: the yearly chance the item changes times the cost of the agency
 * handling one change by telephone (£2.83, SOCITM's local-government average); address and
 * postcode move together about once in ten years (Census 2001: one person in eight moved in the
 * year; English Housing Survey 2021-22: 22% of households moved within three years), so the
 * address carries the cost and the postcode none; about 0.4% of people marry in a year (ONS,
 * 219,850 marriages in England and Wales in 2019), and most name changes follow a marriage; given
 * names and dates of birth hardly ever change. Per discrepancy: one telephone contact to put it
 * right. Per record: an assumption (£1), not a sourced figure. docs/audit.md has the references
 * and how to replace these.
 */
export const DEFAULT_COSTS: CostSettings = {
  currency: 'GBP',
  perRecord: 1,
  perItem: { givenName: 0, familyName: 0.01, birthDate: 0, address: 0.28, postcode: 0 },
  perDiscrepancy: 2.83,
};

export interface AuditSettings {
  /** Link probability at or above which a register person is a candidate for a row; default 0.5. */
  threshold?: number;
  /**
   * A row with two or more candidates is ambiguous when the best candidate's match weight exceeds
   * the runner-up's by less than this many bits (log2 of the Bayes factor); default 3, i.e. the
   * best must be at least 8 times as likely as the next to be taken.
   */
  margin?: number;
  /** Seed for training the linkage model; default 1. */
  seed?: number;
  /**
   * Random pairs sampled to estimate u; default 300,000. The engine's default (a million) costs
   * seconds per extract and gains nothing here: the rarest level the audit relies on (an exact
   * postcode, about one pair in a thousand) is still seen hundreds of times.
   */
  randomPairs?: number;
  /**
   * Refuse an extract whose rows form more candidate pairs with the register than this (rows that
   * are all alike, say); default: the engine's. A server sets it so one request cannot take all
   * its memory and time.
   */
  maxPairs?: number;
  costs?: CostSettings;
  onProgress?: (agency: string, phase: string, done: number, total: number) => void;
}

/** One extract to audit. */
export interface ExtractInput {
  agency: string;
  table: Table;
  /** Columns and kinds; default: detected from the headers and content. */
  fields?: FieldSpec[];
  /** The line each row starts on in its file, for messages about a row (from the CSV reader). */
  lines?: readonly number[];
}

export interface ItemFigures {
  /** The extract's column(s) holding the item, or null when the agency does not hold it. */
  column: string | null;
  /** Copies beyond the register's: linked rows with a value. */
  copies: number;
  current: number;
  stale: number;
  conflict: number;
  /** Linked rows with the column empty. */
  missing: number;
}

export interface CostFigures {
  records: number;
  items: number;
  discrepancies: number;
  total: number;
}

/** Counts shared by an agency and the whole. */
export interface Figures {
  rows: number;
  linked: number;
  unmatched: number;
  ambiguous: number;
  /** Of the linked rows, those found on name and date of birth alone (their address did not fit). */
  linkedOnIdentity: number;
  /** Linked rows beyond the first for the same register person in the same agency. */
  duplicateRows: number;
  /** Linked rows of people the register records as dead. */
  deceasedRows: number;
  /** Distinct register people linked. */
  peopleHeld: number;
  items: Record<Item, ItemFigures>;
  cost: CostFigures;
}

export interface AgencyFigures extends Figures {
  agency: string;
  source: string;
  /** The columns used and what each was taken to hold. */
  fields: FieldSpec[];
  /** How the columns were read (from the linkage engine's detection). */
  notes: string[];
  /**
   * What the linkage could not use: a kind of column the register holds and the extract lacks
   * (a date of birth, say), or one the register has nothing to compare with (an email).
   */
  warnings: string[];
  /** Register people with more than one row in this agency. */
  peopleWithDuplicateRows: number;
}

/** The field kinds that say who a person is, as opposed to where they live. */
const IDENTITY = new Set<FieldKind>(['given_name', 'surname', 'full_name', 'dob']);

/** The register's kinds an extract may lack, as the warning names them. */
const REGISTER_KINDS: [FieldKind[], string][] = [
  [['given_name', 'full_name'], 'given name'],
  [['surname', 'full_name'], 'family name'],
  [['dob'], 'date of birth'],
  [['address', 'street'], 'address line'],
  [['postcode'], 'postcode'],
  [['locality'], 'town'],
];

/** What the register holds that an extract has no column for: linked without it, and said so. */
function missingKinds(source: string, fields: readonly FieldSpec[]): string[] {
  const kinds = new Set(fields.map((f) => f.kind));
  return REGISTER_KINDS.filter(([ks]) => !ks.some((k) => kinds.has(k))).map(([, name]) => `${shown(source)} has no ${name} column, which the register has: linked without it`);
}

export interface TotalFigures extends Figures {
  /** Register people by how many agencies hold them: `{"1": n, "2": n, ...}`. */
  peopleHeldBy: Record<string, number>;
  /** People held by two or more agencies. */
  peopleHeldBySeveral: number;
  /** People with two or more rows in one agency. */
  peopleWithDuplicateRows: number;
}

/** The report: counts only, no person's data. */
export interface AuditReport {
  version: 1;
  register: { source: string; people: number };
  settings: { threshold: number; margin: number; seed: number; costs: CostSettings };
  items: { id: Item; label: string; catalogue: string }[];
  agencies: AgencyFigures[];
  total: TotalFigures;
}

/** The outcome for one row. */
export interface RowOutcome {
  recordId: string;
  status: 'linked' | 'unmatched' | 'ambiguous';
  /** The register person (linked), or the best candidate (ambiguous). */
  personId: string | null;
  probability: number | null;
  /** Linked in the second pass, on name and date of birth alone. */
  onIdentity?: boolean;
  /** Linked rows: each held item's state. */
  states: Partial<Record<Item, ItemState>> | null;
}

export interface AuditResult {
  report: AuditReport;
  rows: { agency: string; rows: RowOutcome[] }[];
}

function emptyItems(columns: Partial<Record<Item, string>>): Record<Item, ItemFigures> {
  return Object.fromEntries(ITEMS.map((i) => [i, { column: columns[i] ?? null, copies: 0, current: 0, stale: 0, conflict: 0, missing: 0 }])) as Record<Item, ItemFigures>;
}

function emptyFigures(columns: Partial<Record<Item, string>>): Figures {
  return { rows: 0, linked: 0, linkedOnIdentity: 0, unmatched: 0, ambiguous: 0, duplicateRows: 0, deceasedRows: 0, peopleHeld: 0, items: emptyItems(columns), cost: { records: 0, items: 0, discrepancies: 0, total: 0 } };
}

/** How to read each item from a row of the extract, given its columns' kinds. */
function itemReaders(table: Table, fields: readonly FieldSpec[]): { columns: Partial<Record<Item, string>>; read: Partial<Record<Item, (row: Table['rows'][number]) => string | null>> } {
  const col = (kind: FieldKind): { name: string; index: number } | null => {
    const f = fields.find((x) => x.kind === kind);
    return f ? { name: f.column, index: table.columns.indexOf(f.column) } : null;
  };
  const columns: Partial<Record<Item, string>> = {};
  const read: Partial<Record<Item, (row: Table['rows'][number]) => string | null>> = {};
  const direct = (item: Item, kind: FieldKind): void => {
    const c = col(kind);
    if (!c) return;
    columns[item] = c.name;
    read[item] = (row) => row[c.index] ?? null;
  };
  direct('givenName', 'given_name');
  direct('familyName', 'surname');
  direct('birthDate', 'dob');
  direct('postcode', 'postcode');
  const full = col('full_name');
  if (full && !read.givenName && !read.familyName) {
    // One name column: the last word is taken as the family name, the rest as given names.
    columns.givenName = columns.familyName = full.name;
    const parts = (row: Table['rows'][number]): [string, string] | null => {
      const v = row[full.index]?.trim();
      if (!v) return null;
      const i = v.lastIndexOf(' ');
      return i < 0 ? ['', v] : [v.slice(0, i), v.slice(i + 1)];
    };
    read.givenName = (row) => parts(row)?.[0] || null;
    read.familyName = (row) => parts(row)?.[1] || null;
  }
  const address = col('address');
  const street = col('street');
  const number = col('house_number');
  if (address) direct('address', 'address');
  else if (street) {
    columns.address = number ? `${number.name} + ${street.name}` : street.name;
    read.address = (row) => [number ? row[number.index] : null, row[street.index]].filter((v) => v).join(' ') || null;
  }
  return { columns, read };
}

/** Checks that an extract has something a person can be linked on, naming the file otherwise. */
function requireLinkable(table: Table, fields: readonly FieldSpec[]): void {
  const kinds = new Set(fields.map((f) => f.kind));
  const names = (kinds.has('given_name') && kinds.has('surname')) || kinds.has('full_name');
  if (!names && !kinds.has('dob')) {
    throw new OnceOnlyError('invalid_file', `no column of ${table.source} was recognised as a person's name or date of birth`, {
      file: table.source,
      field: 'columns',
      expected: 'headers such as first_name, surname, date_of_birth, address, postcode',
      columns: clipList(table.columns),
    });
  }
}

function addCost(c: CostFigures, items: Record<Item, ItemFigures>, linked: number, s: CostSettings): void {
  c.records = linked * s.perRecord;
  c.items = ITEMS.reduce((sum, i) => sum + items[i].copies * s.perItem[i], 0);
  c.discrepancies = ITEMS.reduce((sum, i) => sum + (items[i].stale + items[i].conflict) * s.perDiscrepancy, 0);
  c.total = c.records + c.items + c.discrepancies;
}

const round2 = (n: number): number => Math.round(n * 100) / 100;
function roundCost(c: CostFigures): void {
  c.records = round2(c.records);
  c.items = round2(c.items);
  c.discrepancies = round2(c.discrepancies);
  c.total = round2(c.total);
}

/** Runs one linkage of an extract, turning the engine's pair cap into an error about the extract. */
function tooManyPairs<T>(table: Table, run: () => T): T {
  try {
    return run();
  } catch (e) {
    // The cap's error names the rule that passed it; other blocking errors go on as they are.
    if (!(e instanceof OnceOnlyError) || e.detail.field !== 'blocking' || e.detail['rule'] === undefined) throw e;
    throw new OnceOnlyError('invalid_file', `${table.source}: its rows form too many candidate pairs with the register to audit here (${e.message}). Rows that are all alike do this; split the extract or use the command line.`, {
      file: table.source,
      field: 'rows',
      expected: 'an extract whose rows are not all alike',
    });
  }
}

/** Runs the audit of `extracts` against `register`. */
export function runAudit(register: RegisterSnapshot, extracts: readonly ExtractInput[], settings: AuditSettings = {}): AuditResult {
  const threshold = settings.threshold ?? 0.5;
  const margin = settings.margin ?? 3;
  const seed = settings.seed ?? 1;
  const costs = settings.costs ?? DEFAULT_COSTS;
  if (!(threshold > 0 && threshold <= 1)) throw new OnceOnlyError('invalid_request', `threshold must be above 0 and at most 1, not ${threshold}`, { field: 'threshold', expected: 'a probability, e.g. 0.5' });
  if (!(margin >= 0) || !Number.isFinite(margin)) throw new OnceOnlyError('invalid_request', `margin must be zero or more bits, not ${margin}`, { field: 'margin', expected: 'a number of bits, e.g. 3' });
  if (extracts.length === 0) throw new OnceOnlyError('invalid_request', 'no extract to audit', { field: 'extracts', expected: 'one or more CSV files' });
  const names = new Set<string>();
  for (const e of extracts) {
    if (names.has(e.agency)) throw new OnceOnlyError('invalid_request', `two extracts are named ${shown(e.agency)}`, { field: 'agency', expected: 'a different name per extract' });
    names.add(e.agency);
  }

  const { table: right, personOf } = registerTable(register, { history: true });
  const heldCache = new Map<number, HeldValues>();
  const heldAt = (j: number): HeldValues => {
    let h = heldCache.get(j);
    if (!h) heldCache.set(j, (h = heldValues(register.people[j]!)));
    return h;
  };

  const agencies: AgencyFigures[] = [];
  const outcomes: AuditResult['rows'] = [];
  const agenciesOf = new Map<number, number>();
  const peopleWithDuplicates = new Set<number>();
  const total: TotalFigures = { ...emptyFigures({}), peopleHeldBy: {}, peopleHeldBySeveral: 0, peopleWithDuplicateRows: 0 };

  for (const e of extracts) {
    const table = e.table;
    const detected = e.fields ? { fields: e.fields, notes: [] } : detectFields(table);
    requireLinkable(table, detected.fields);
    // One enormous value in a compared column would hold the comparison (and a server) for hours.
    refuseLongValues(table, detected.fields.map((f) => f.column), MAX_COMPARED_CHARS, e.lines);
    const { columns, read } = itemReaders(table, detected.fields);
    const fig: AgencyFigures = { agency: e.agency, source: table.source, fields: detected.fields, notes: detected.notes, warnings: missingKinds(table.source, detected.fields), peopleWithDuplicateRows: 0, ...emptyFigures(columns) };
    const rows: RowOutcome[] = [];
    fig.rows = table.rows.length;

    // Candidates per row: the register people reaching the threshold, each with their best
    // version (now, or as they were before a move or a change of name).
    const candidates = table.rows.map(() => new Map<number, { weight: number; probability: number }>());
    const collect = (pairs: readonly ScoredPair[], rowOf: (left: number) => number): void => {
      for (const p of pairs) {
        const person = personOf[p.right]!;
        const mine = candidates[rowOf(p.left)]!;
        const seen = mine.get(person);
        if (!seen || p.weight > seen.weight) mine.set(person, { weight: p.weight, probability: p.probability });
      }
    };
    const onIdentity = new Set<number>();
    if (table.rows.length > 0 && right.rows.length > 0) {
      const progress = settings.onProgress ? { onProgress: (phase: string, done: number, n: number) => settings.onProgress!(e.agency, phase, done, n) } : {};
      const cap = settings.maxPairs !== undefined ? { maxPairs: settings.maxPairs } : {};
      const res = tooManyPairs(table, () => link(table, right, { fields: detected.fields, rightFields: registerFieldsFor(detected.fields), threshold, seed, randomPairs: settings.randomPairs ?? 300_000, ...cap, ...progress }));
      fig.notes = [...fig.notes, ...res.notes];
      fig.warnings.push(...res.warnings);
      collect(res.pairs, (i) => i);
      // Second pass, for rows no one matched: the same model on identity items alone. A person
      // who moved without telling the register keeps their name and birth date, and their new
      // address is exactly the conflict the audit is there to count; with the address compared,
      // its disagreement can outweigh a full agreement on who they are.
      const unmatched = table.rows.flatMap((_, i) => (candidates[i]!.size === 0 ? [i] : []));
      const idFields = detected.fields.filter((f) => IDENTITY.has(f.kind));
      const idModel: Model = { ...res.model, comparisons: res.model.comparisons.filter((c) => c.kinds.every((k) => IDENTITY.has(k))) };
      // Without a date of birth the identity items may leave no blocking rule (names alone,
      // when the rules in use all need a date or an address): the second pass is then skipped,
      // as `link` would have nothing to block on, rather than stopping the audit.
      const idKinds = idFields.map((f) => f.kind);
      const idBlockable = applicableRules(idKinds, registerFieldsFor(idFields).map((f) => f.kind)).length > 0;
      if (unmatched.length > 0 && idModel.comparisons.length >= 2 && !idBlockable) {
        fig.warnings.push(`${shown(table.source)}: the ${unmatched.length} rows not linked were not tried again on name and date of birth alone: no blocking rule applies to ${idKinds.join(', ')}`);
      }
      if (unmatched.length > 0 && idModel.comparisons.length >= 2 && idBlockable) {
        const sub: Table = { source: table.source, columns: clipList(table.columns), ids: unmatched.map((i) => table.ids[i]!), rows: unmatched.map((i) => table.rows[i]!) };
        const again = tooManyPairs(table, () => link(sub, right, { fields: idFields, rightFields: registerFieldsFor(idFields), threshold, seed, model: idModel, ...cap, ...progress }));
        collect(again.pairs, (k) => unmatched[k]!);
        for (const i of unmatched) if (candidates[i]!.size > 0) onIdentity.add(i);
      }
    }

    const rowsOf = new Map<number, number>();
    table.rows.forEach((row, i) => {
      const cands = [...candidates[i]!].map(([right, c]) => ({ right, ...c })).sort((x, y) => y.weight - x.weight || x.right - y.right);
      const best = cands[0];
      if (!best) {
        fig.unmatched++;
        rows.push({ recordId: table.ids[i]!, status: 'unmatched', personId: null, probability: null, states: null });
        return;
      }
      const second = cands[1];
      if (second && best.weight - second.weight < margin) {
        fig.ambiguous++;
        rows.push({ recordId: table.ids[i]!, status: 'ambiguous', personId: register.people[best.right]!.id, probability: best.probability, states: null });
        return;
      }
      fig.linked++;
      if (onIdentity.has(i)) fig.linkedOnIdentity++;
      const person = register.people[best.right]!;
      if (person.deceased) fig.deceasedRows++;
      rowsOf.set(best.right, (rowsOf.get(best.right) ?? 0) + 1);
      const held = heldAt(best.right);
      const states: Partial<Record<Item, ItemState>> = {};
      for (const item of ITEMS) {
        const reader = read[item];
        if (!reader) continue;
        const s = classify(item, reader(row), held);
        states[item] = s;
        const f = fig.items[item];
        f[s]++;
        if (s !== 'missing') f.copies++;
      }
      rows.push({ recordId: table.ids[i]!, status: 'linked', personId: person.id, probability: best.probability, onIdentity: onIdentity.has(i), states });
    });

    fig.peopleHeld = rowsOf.size;
    for (const [j, n] of rowsOf) {
      fig.duplicateRows += n - 1;
      if (n > 1) {
        fig.peopleWithDuplicateRows++;
        peopleWithDuplicates.add(j);
      }
      agenciesOf.set(j, (agenciesOf.get(j) ?? 0) + 1);
    }
    addCost(fig.cost, fig.items, fig.linked, costs);
    roundCost(fig.cost);
    agencies.push(fig);
    outcomes.push({ agency: e.agency, rows });

    for (const k of ['rows', 'linked', 'linkedOnIdentity', 'unmatched', 'ambiguous', 'duplicateRows', 'deceasedRows'] as const) total[k] += fig[k];
    for (const item of ITEMS) {
      const t = total.items[item];
      const f = fig.items[item];
      if (f.column !== null) t.column = t.column === null ? f.column : t.column === f.column ? t.column : '(various)';
      for (const k of ['copies', 'current', 'stale', 'conflict', 'missing'] as const) t[k] += f[k];
    }
  }

  total.peopleHeld = agenciesOf.size;
  for (const n of agenciesOf.values()) {
    total.peopleHeldBy[String(n)] = (total.peopleHeldBy[String(n)] ?? 0) + 1;
    if (n > 1) total.peopleHeldBySeveral++;
  }
  total.peopleWithDuplicateRows = peopleWithDuplicates.size;
  addCost(total.cost, total.items, total.linked, costs);
  roundCost(total.cost);

  return {
    report: {
      version: 1,
      register: { source: register.source, people: register.people.length },
      settings: { threshold, margin, seed, costs },
      items: ITEMS.map((id) => ({ id, ...ITEM_INFO[id] })),
      agencies,
      total,
    },
    rows: outcomes,
  };
}
