/**
 * @module linkage/engine
 * Fellegi-Sunter record linkage (Fellegi & Sunter, JASA 1969) trained without labels, as Splink
 * does it:
 *
 * 1. each table's columns are mapped to field kinds and normalised;
 * 2. blocking: a union of rules on derived keys yields the candidate pairs, each pair once (a
 *    pair is credited to the first rule that produces it, the Splink convention), counted per
 *    rule before anything is scored;
 * 3. u (the chance that a non-matching pair lands on a level) from random pairs;
 * 4. m (the same for matching pairs) and the share of matches among the blocked pairs by
 *    expectation-maximisation over the blocked pairs' comparison patterns;
 * 5. each pair's match weight = log2(prior odds) + sum of log2(m/u), with u replaced at the
 *    exact level by the value's term frequency for names, towns, streets and postcodes (a shared
 *    "Smith" is weaker evidence than a shared "Featherstonehaugh");
 * 6. the pairs at or above the threshold probability, and for dedupe their clusters.
 *
 * Memory grows with the blocked pairs (16 bytes each), never with the square of the input.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { derive, normalise } from './compare.ts';
import { chooseComparisons, COMPARISONS, type ComparisonDef, type Side } from './comparisons.ts';
import { detectFields } from './detect.ts';
import type { BlockingReport, BlockingRule, Explanation, FieldKind, FieldSpec, Model, ScoredPair, Table } from './types.ts';

export { detectFields };

export interface LinkOptions {
  /** The left table's columns and their kinds; default {@link detectFields}. */
  fields?: FieldSpec[];
  /** The right table's; default {@link detectFields}. */
  rightFields?: FieldSpec[];
  /** Pairs with probability at or above this are returned; default 0.5. */
  threshold?: number;
  /** Seed of the random-pair sample; same seed, same model, same answer. Default 1. */
  seed?: number;
  /** Use this model instead of training one (fixed m and u). */
  model?: Model;
  /** Blocking rules instead of the defaults for the fields present. */
  blocking?: BlockingRule[];
  /** Labelled pairs: when given, m is estimated from the pairs labelled as matches instead of by EM. */
  labels?: { leftId: string; rightId: string; match: boolean }[];
  /** Random pairs sampled to estimate u's inexact levels; default 300,000 (exact levels are counted, not sampled). */
  randomPairs?: number;
  /** Refuse to run past this many blocked pairs (a rule that blocks on a near-constant key); default 200,000,000. */
  maxPairs?: number;
  onProgress?: (phase: string, done: number, total: number) => void;
  /** Called once blocking has counted its pairs, before any scoring. */
  onBlocking?: (report: BlockingReport[]) => void;
}

export interface LinkResult {
  pairs: ScoredPair[];
  model: Model;
  blocking: BlockingReport[];
  /** Pairs scored (all blocked pairs). */
  compared: number;
  fields: FieldSpec[];
  rightFields: FieldSpec[];
  notes: string[];
}

export const KINDS: readonly FieldKind[] = ['given_name', 'surname', 'full_name', 'dob', 'postcode', 'house_number', 'street', 'address', 'locality', 'email', 'identifier', 'sex'];

/** Builds one side: each field's normalised values, plus the combined fields derivable from split ones. */
export function makeSide(table: Table, fields: FieldSpec[]): Side {
  const values: Side['values'] = {};
  for (const f of fields) {
    if (!KINDS.includes(f.kind)) throw new OnceOnlyError('invalid_request', `${f.kind} is not a field kind (column ${f.column} of ${table.source})`, { file: table.source, field: f.column, expected: KINDS.join(', ') });
    const c = table.columns.indexOf(f.column);
    if (c < 0) throw new OnceOnlyError('invalid_request', `${table.source} has no column ${f.column}`, { file: table.source, field: f.column, expected: `one of ${table.columns.join(', ')}` });
    if (values[f.kind]) throw new OnceOnlyError('invalid_request', `two columns of ${table.source} are mapped to ${f.kind}`, { file: table.source, field: f.column, expected: 'at most one column per field kind' });
    // Names, towns and streets repeat heavily across a population, so each distinct raw value is normalised once.
    const cache = new Map<string, string | null>();
    values[f.kind] = table.rows.map((r) => {
      const raw = r[c] ?? null;
      if (raw === null) return null;
      let v = cache.get(raw);
      if (v === undefined) {
        v = normalise(f.kind, raw);
        cache.set(raw, v);
      }
      return v;
    });
  }
  const n = table.rows.length;
  const g = values.given_name;
  const s = values.surname;
  if (!values.full_name && g && s) values.full_name = Array.from({ length: n }, (_, i) => [g[i], s[i]].filter(Boolean).join(' ') || null);
  const st = values.street;
  const hn = values.house_number;
  if (!values.address && st) values.address = Array.from({ length: n }, (_, i) => (st[i] ? [hn?.[i], st[i]].filter(Boolean).join(' ') : null));
  return { n, ids: table.ids, values };
}

/** The default blocking rules for person data, each kept only when both sides have its fields. */
export const DEFAULT_BLOCKING: BlockingRule[] = [
  { name: 'identifier', keys: ['identifier'] },
  { name: 'dob', keys: ['dob'] },
  { name: 'email', keys: ['email'] },
  { name: 'given_name:dm + surname:dm + dob:year', keys: ['given_name:dm', 'surname:dm', 'dob:year'] },
  { name: 'given_name:dm + surname:dm + postcode', keys: ['given_name:dm', 'surname:dm', 'postcode'] },
  { name: 'surname:dm + dob:monthday', keys: ['surname:dm', 'dob:monthday'] },
  { name: 'given_name:dm + dob:monthday', keys: ['given_name:dm', 'dob:monthday'] },
  { name: 'postcode + surname:first', keys: ['postcode', 'surname:first'], train: false },
  { name: 'postcode + street', keys: ['postcode', 'street'], train: false },
  { name: 'postcode + address', keys: ['postcode', 'address'], train: false },
  { name: 'given_name:dm + surname:dm + locality', keys: ['given_name:dm', 'surname:dm', 'locality'] },
];

function parseKey(k: string): { kind: FieldKind; transform: string | undefined } {
  const [kind, transform] = k.split(':') as [FieldKind, string | undefined];
  return { kind, transform };
}

/** Derived key columns, computed once per side and shared by every rule that uses them (a phonetic code is in several). */
type DerivedCache = Map<string, (string | null)[]>;

function derivedColumn(side: Side, key: string, cache: DerivedCache): (string | null)[] {
  let column = cache.get(key);
  if (!column) {
    const { kind, transform } = parseKey(key);
    const values = side.values[kind]!;
    column = transform === undefined ? values : values.map((v) => derive(kind, transform, v));
    cache.set(key, column);
  }
  return column;
}

/** A record's blocking key for a rule: the rule's derived keys joined, or null if any is missing. */
function keyOf(columns: (string | null)[][], i: number): string | null {
  let key = columns[0]![i] ?? null;
  if (key === null) return null;
  for (let p = 1; p < columns.length; p++) {
    const d = columns[p]![i] ?? null;
    if (d === null) return null;
    key += '\u0001' + d;
  }
  return key;
}

/**
 * Each record's key for a rule as a small integer (0: no key, or a key the other side never has),
 * numbered over the side with fewer records. Integers rather than strings because every pair a
 * later rule finds is checked against all earlier rules, and because a million key strings per
 * rule kept alive made garbage collection the largest cost of blocking.
 */
function ruleIds(a: Side, b: Side, rule: BlockingRule, dedupe: boolean, cacheA: DerivedCache, cacheB: DerivedCache): { ida: Int32Array; idb: Int32Array; keys: number; indexOnA: boolean } {
  const indexOnA = dedupe || a.n <= b.n;
  const small = indexOnA ? a : b;
  const smallColumns = rule.keys.map((k) => derivedColumn(small, k, indexOnA ? cacheA : cacheB));
  const ids = new Map<string, number>();
  const idSmall = new Int32Array(small.n);
  for (let i = 0; i < small.n; i++) {
    const k = keyOf(smallColumns, i);
    if (k === null) continue;
    let id = ids.get(k);
    if (id === undefined) {
      id = ids.size + 1;
      ids.set(k, id);
    }
    idSmall[i] = id;
  }
  if (dedupe) return { ida: idSmall, idb: idSmall, keys: ids.size, indexOnA };
  const large = indexOnA ? b : a;
  const largeColumns = rule.keys.map((k) => derivedColumn(large, k, indexOnA ? cacheB : cacheA));
  const idLarge = new Int32Array(large.n);
  for (let j = 0; j < large.n; j++) {
    const k = keyOf(largeColumns, j);
    if (k !== null) idLarge[j] = ids.get(k) ?? 0;
  }
  return indexOnA ? { ida: idSmall, idb: idLarge, keys: ids.size, indexOnA } : { ida: idLarge, idb: idSmall, keys: ids.size, indexOnA };
}

/** Parses `surname:dm+dob:year` into a rule, naming the part that is wrong. */
export function parseBlockingRule(text: string): BlockingRule {
  const keys = text.split('+').map((k) => k.trim());
  for (const k of keys) {
    const { kind, transform } = parseKey(k);
    if (!KINDS.includes(kind)) throw new OnceOnlyError('invalid_request', `blocking rule "${text}": ${kind} is not a field kind`, { field: 'blocking', expected: KINDS.join(', ') });
    try {
      derive(kind, transform, 'x');
    } catch {
      throw new OnceOnlyError('invalid_request', `blocking rule "${text}": ${transform} is not a key transform`, { field: 'blocking', expected: 'dm, first, year, monthday, outward, sector, local or prefixN (e.g. prefix3)' });
    }
  }
  return { name: keys.join(' + '), keys };
}

function usableRules(a: Side, b: Side, rules: BlockingRule[]): BlockingRule[] {
  return rules.filter((r) => r.keys.every((k) => {
    const { kind } = parseKey(k);
    return a.values[kind] !== undefined && b.values[kind] !== undefined;
  }));
}

/** A growable store of pairs: left and right indices and their comparison pattern. */
class PairStore {
  left = new Int32Array(1 << 16);
  right = new Int32Array(1 << 16);
  pattern = new Float64Array(1 << 16);
  size = 0;
  push(i: number, j: number): void {
    if (this.size === this.left.length) {
      const grow = <T extends Int32Array | Float64Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.left = grow(this.left);
      this.right = grow(this.right);
      this.pattern = grow(this.pattern);
    }
    this.left[this.size] = i;
    this.right[this.size++] = j;
  }
}

/**
 * Enumerates the blocked pairs. With `dedupe`, a and b are the same side and only i < j is kept.
 * A pair is kept by rule r only if no earlier rule's keys agree on it, so each pair appears once.
 */
interface Blocked {
  pairs: PairStore;
  report: BlockingReport[];
  /** Per rule, each record's key number on each side (0: none); pair (i, j) agrees on rule r when idsA[r][i] is non-zero and equals idsB[r][j]. */
  idsA: Int32Array[];
  idsB: Int32Array[];
}

function block(a: Side, b: Side, rules: BlockingRule[], dedupe: boolean, maxPairs: number, progress?: LinkOptions['onProgress']): Blocked {
  const idsA: Int32Array[] = [];
  const idsB: Int32Array[] = [];
  const pairs = new PairStore();
  const report: BlockingReport[] = [];
  const cacheA: DerivedCache = new Map();
  const cacheB: DerivedCache = dedupe ? cacheA : new Map<string, (string | null)[]>();
  const seenEarlier = (r: number, i: number, j: number): boolean => {
    for (let q = 0; q < r; q++) {
      const k = idsA[q]![i]!;
      if (k !== 0 && k === idsB[q]![j]) return true;
    }
    return false;
  };
  rules.forEach((rule, r) => {
    const { ida, idb, keys, indexOnA } = ruleIds(a, b, rule, dedupe, cacheA, cacheB);
    idsA.push(ida);
    idsB.push(idb);
    // The smaller side's records grouped by key (compressed rows: offsets, then members), and the
    // larger side streamed past it, so no per-key arrays are allocated.
    const inner = indexOnA ? ida : idb;
    const outer = indexOnA ? idb : ida;
    const start = new Int32Array(keys + 2);
    for (let x = 0; x < inner.length; x++) if (inner[x]) start[inner[x]! + 1]!++;
    for (let k = 1; k < start.length; k++) start[k]! += start[k - 1]!;
    const fill = start.slice();
    const members = new Int32Array(start[keys + 1]!);
    for (let x = 0; x < inner.length; x++) if (inner[x]) members[fill[inner[x]!]!++] = x;
    let count = 0;
    for (let o = 0; o < outer.length; o++) {
      const id = outer[o]!;
      if (id !== 0) {
        for (let m = start[id]!; m < start[id + 1]!; m++) {
          const i = indexOnA ? members[m]! : o;
          const j = indexOnA ? o : members[m]!;
          if (dedupe && i >= j) continue;
          if (seenEarlier(r, i, j)) continue;
          pairs.push(i, j);
          count++;
        }
        if (pairs.size > maxPairs) {
          throw new OnceOnlyError('invalid_request', `blocking rule "${rule.name}" produces more than ${maxPairs.toLocaleString('en-GB')} pairs; use a more specific rule`, { field: 'blocking', expected: 'rules on keys specific enough to keep the pairs within maxPairs', rule: rule.name });
        }
      }
      if ((o & 0xffff) === 0) progress?.('blocking', r * outer.length + o, rules.length * outer.length);
    }
    report.push({ rule: rule.name, pairs: count });
  });
  return { pairs, report, idsA, idsB };
}

/** Mulberry32: a small, well-distributed seeded PRNG, so the random-pair sample repeats for a seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASE = 8;

/** The comparisons' level functions bound to two sides. */
type Bound = ((i: number, j: number) => number)[];

function bindAll(comps: ComparisonDef[], a: Side, b: Side): Bound {
  return comps.map((c) => c.bind(a, b));
}

function patternOf(bound: Bound, i: number, j: number): number {
  let p = 0;
  for (let k = bound.length - 1; k >= 0; k--) p = p * BASE + bound[k]!(i, j);
  return p;
}

function levelsOf(pattern: number, count: number): number[] {
  const out: number[] = [];
  let p = pattern;
  for (let k = 0; k < count; k++) {
    out.push(p % BASE);
    p = Math.floor(p / BASE);
  }
  return out;
}

function totalPairs(a: Side, b: Side, dedupe: boolean): number {
  return dedupe ? (a.n * (a.n - 1)) / 2 : a.n * b.n;
}

/** Level shares among non-null levels, smoothed so that no level has probability zero. */
function shares(counts: number[]): number[] {
  const total = counts.slice(1).reduce((x, y) => x + y, 0);
  const L = counts.length - 1;
  return counts.map((c, l) => (l === 0 ? 0 : (c + 0.5) / (total + 0.5 * L)));
}

/**
 * The chance that two random records (one per side) agree exactly on a kind, among pairs where
 * both have a value: computed from the value counts, not sampled, because exact agreement on a
 * date of birth or an identifier is too rare for a sample to measure well.
 */
function exactAgreement(c: ComparisonDef, a: Side, b: Side, dedupe: boolean): number {
  const kind = c.kinds[0]!;
  const key = c.exactKey ?? ((s: Side, i: number) => s.values[kind]![i] ?? null);
  const count = (s: Side): Map<string, number> => {
    const m = new Map<string, number>();
    for (let i = 0; i < s.n; i++) {
      const v = key(s, i);
      if (v !== null) m.set(v, (m.get(v) ?? 0) + 1);
    }
    return m;
  };
  const ca = count(a);
  const cb = dedupe ? ca : count(b);
  let na = 0;
  let nb = 0;
  for (const c of ca.values()) na += c;
  for (const c of cb.values()) nb += c;
  let same = 0;
  for (const [v, c] of ca) same += dedupe ? c * (c - 1) : c * (cb.get(v) ?? 0);
  const all = dedupe ? na * (na - 1) : na * nb;
  return all > 0 ? same / all : 0;
}

/**
 * u per comparison level. The exact level's u comes from value counts ({@link exactAgreement});
 * the other levels share the rest in the proportions seen in a seeded sample of random pairs
 * (every pair when there are few enough).
 */
function estimateU(comps: ComparisonDef[], bound: Bound, a: Side, b: Side, dedupe: boolean, samples: number, seed: number): number[][] {
  const counts = comps.map((c) => new Array<number>(c.labels.length).fill(0));
  const all = totalPairs(a, b, dedupe);
  const add = (i: number, j: number): void => {
    for (let k = 0; k < bound.length; k++) counts[k]![bound[k]!(i, j)]!++;
  };
  if (all <= samples) {
    for (let i = 0; i < a.n; i++) for (let j = dedupe ? i + 1 : 0; j < b.n; j++) add(i, j);
  } else {
    const rand = prng(seed);
    for (let s = 0; s < samples; s++) {
      const i = Math.floor(rand() * a.n);
      let j = Math.floor(rand() * b.n);
      if (dedupe && j === i) j = (j + 1) % b.n;
      add(i, j);
    }
  }
  return comps.map((c, k) => {
    // Never 0 or 1: a column with one value everywhere (or none repeated) would otherwise give a
    // level u = 0 and an infinite weight when the model meets other data.
    const exact = Math.min(Math.max(exactAgreement(c, a, b, dedupe), 0.5 / Math.max(all, 1)), 1 - 1e-6);
    const rest = shares([0, ...counts[k]!.slice(2)]).slice(1);
    return [0, exact, ...rest.map((r) => r * (1 - exact))];
  });
}

interface EmResult {
  lambda: number;
  m: number[][];
  iterations: number;
  converged: boolean;
}

/**
 * EM for m and the match share over comparison patterns (Winkler 1988), with u held at its
 * random-pair estimate as Splink does by default. Re-estimating u inside blocked pairs was tried
 * and rejected: the "non-match" class then absorbs households (same surname, same address), and
 * m for "address differs" collapses, so that every copy with an old address is lost.
 */
function em(comps: ComparisonDef[], patterns: Map<number, number>, u: number[][], maxIter = 200, tol = 1e-7): EmResult {
  const K = comps.length;
  let m = comps.map((c) => shares(c.mStart.map((x) => x * 1000)));
  let lambda = 0.1;
  const entries = [...patterns.entries()].map(([p, c]) => ({ levels: levelsOf(p, K), count: c }));
  let N = 0;
  for (const e of entries) N += e.count;
  let iterations = 0;
  let converged = false;
  for (; iterations < maxIter && !converged; iterations++) {
    const mc = comps.map((c) => new Array<number>(c.labels.length).fill(0));
    let matches = 0;
    for (const e of entries) {
      let pm = lambda;
      let pu = 1 - lambda;
      for (let k = 0; k < K; k++) {
        const l = e.levels[k]!;
        if (l === 0) continue;
        pm *= m[k]![l]!;
        pu *= u[k]![l]!;
      }
      const w = pm / (pm + pu);
      matches += w * e.count;
      for (let k = 0; k < K; k++) {
        const l = e.levels[k]!;
        mc[k]![l]! += w * e.count;
      }
    }
    const newM = mc.map(shares);
    const newLambda = Math.min(Math.max(matches / N, 1e-9), 1 - 1e-9);
    let delta = Math.abs(newLambda - lambda);
    for (let k = 0; k < K; k++) for (let l = 1; l < newM[k]!.length; l++) delta = Math.max(delta, Math.abs(newM[k]![l]! - m[k]![l]!));
    m = newM;
    lambda = newLambda;
    converged = delta < tol;
  }
  return { lambda, m, iterations, converged };
}

/** Term frequencies of a kind's values over both sides: value -> share of the records that have one. */
function termFrequencies(kind: FieldKind, a: Side, b: Side, dedupe: boolean): Record<string, number> {
  const counts = new Map<string, number>();
  let total = 0;
  for (const s of dedupe ? [a] : [a, b]) {
    for (const v of s.values[kind] ?? []) {
      if (v === null) continue;
      counts.set(v, (counts.get(v) ?? 0) + 1);
      total++;
    }
  }
  const out: Record<string, number> = {};
  for (const [v, c] of counts) if (c > 1) out[v] = c / total;
  // Values seen once cannot agree across a pair of distinct records from the same file; their
  // frequency when they do agree (one in each file) is 2/total, recorded once as the floor.
  out['\u0000min'] = 1 / Math.max(total, 1);
  return out;
}

function tfShare(tf: Record<string, number>, v: string): number {
  // Own properties only: a value such as "constructor" must not find Object.prototype's.
  const floor = Object.hasOwn(tf, '\u0000min') ? tf['\u0000min']! : 0;
  const share = Object.hasOwn(tf, v) ? tf[v]! : 2 * floor;
  return share > 0 ? share : Number.MIN_VALUE;
}

/** Weights per pattern, before term-frequency adjustments. */
function patternWeight(model: Model, levels: number[]): number {
  let w = Math.log2(model.lambda / (1 - model.lambda));
  model.comparisons.forEach((c, k) => {
    const l = levels[k]!;
    if (l === 0) return;
    w += Math.log2(c.levels[l]!.m / c.levels[l]!.u);
  });
  return w;
}

function comparisonDefs(model: Model): ComparisonDef[] {
  return model.comparisons.map((c) => {
    const def = Object.hasOwn(COMPARISONS, c.name) ? COMPARISONS[c.name] : undefined;
    if (def && def.labels.length !== c.levels.length) {
      throw new OnceOnlyError('invalid_request', `the model's ${c.name} comparison has ${c.levels.length} levels, not ${def.labels.length}`, { field: 'model.comparisons', expected: def.labels.join(', ') });
    }
    if (!def) throw new OnceOnlyError('invalid_request', `the model names an unknown comparison ${c.name}`, { field: 'model.comparisons', expected: Object.keys(COMPARISONS).join(', ') });
    return def;
  });
}

function toProbability(w: number): number {
  if (Number.isNaN(w)) throw new OnceOnlyError('internal_error', 'a match weight is not a number: the model is inconsistent');
  const odds = 2 ** w;
  return odds === Infinity ? 1 : odds / (1 + odds);
}

/** A pair's weight: pattern weight plus the term-frequency adjustment at each exact tf level. */
function pairWeight(model: Model, defs: ComparisonDef[], base: number, levels: number[], a: Side, i: number): number {
  let w = base;
  for (let k = 0; k < defs.length; k++) {
    const d = defs[k]!;
    if (!d.tfKind || levels[k] !== 1 || !model.comparisons[k]!.tf) continue;
    const v = a.values[d.tfKind]![i];
    const tf = Object.hasOwn(model.tf, d.name) ? model.tf[d.name] : undefined;
    if (v == null || !tf) continue;
    // Splink's tf adjustment: log2(u_exact / tf(value)) on top of log2(m_exact / u_exact).
    w += Math.log2(model.comparisons[k]!.levels[1]!.u / tfShare(tf, v));
  }
  return w;
}

function sidesFor(left: Table, right: Table | null, opts: LinkOptions): { a: Side; b: Side; fields: FieldSpec[]; rightFields: FieldSpec[]; notes: string[] } {
  const notes: string[] = [];
  let fields = opts.fields;
  if (!fields) {
    const d = detectFields(left);
    fields = d.fields;
    notes.push(...d.notes.map((n) => `${left.source}: ${n}`));
  }
  let rightFields = right ? opts.rightFields : fields;
  if (right && !rightFields) {
    const d = detectFields(right);
    rightFields = d.fields;
    notes.push(...d.notes.map((n) => `${right.source}: ${n}`));
  }
  const a = makeSide(left, fields);
  const b = right ? makeSide(right, rightFields!) : a;
  return { a, b, fields, rightFields: rightFields!, notes };
}

/** The comparisons a blocking rule says nothing independent about: those on a kind the rule blocks on. */
function involved(comps: ComparisonDef[], rule: BlockingRule): boolean[] {
  const kinds = new Set(rule.keys.map((k) => parseKey(k).kind));
  // Combined fields are built from split ones, so blocking on either involves both.
  if (kinds.has('given_name') || kinds.has('surname')) kinds.add('full_name');
  if (kinds.has('street') || kinds.has('house_number')) kinds.add('address');
  return comps.map((c) => (c.trainKinds ?? [c.kinds[0]!]).some((k) => kinds.has(k)));
}

/**
 * m by EM in one session per blocking rule, as Splink trains: within the pairs a rule blocks
 * together, the comparisons on the rule's own fields agree by construction and are left out;
 * every other comparison's m is estimated there. Each comparison's m is the mean over the
 * sessions that estimated it.
 */
function trainM(comps: ComparisonDef[], rules: BlockingRule[], blocked: Blocked, u: number[][]): { m: number[][]; sessions: string[] } {
  const K = comps.length;
  const { pairs, idsA, idsB } = blocked;
  const sums = comps.map((c) => new Array<number>(c.labels.length).fill(0));
  const counts = new Array<number>(K).fill(0);
  const sessions: string[] = [];
  rules.forEach((rule, r) => {
    const skip = involved(comps, rule);
    if (rule.train === false || skip.every(Boolean)) return;
    const ia = idsA[r]!;
    const ib = idsB[r]!;
    const patterns = new Map<number, number>();
    let n = 0;
    for (let p = 0; p < pairs.size; p++) {
      const key = ia[pairs.left[p]!]!;
      if (key === 0 || key !== ib[pairs.right[p]!]) continue;
      // Involved comparisons become level 0 (no evidence) in this session.
      const levels = levelsOf(pairs.pattern[p]!, K);
      let pat = 0;
      for (let k = K - 1; k >= 0; k--) pat = pat * BASE + (skip[k] ? 0 : levels[k]!);
      patterns.set(pat, (patterns.get(pat) ?? 0) + 1);
      n++;
    }
    if (n < 100) return;
    const fit = em(comps, patterns, u);
    comps.forEach((c, k) => {
      if (skip[k]) return;
      for (let l = 0; l < c.labels.length; l++) sums[k]![l]! += fit.m[k]![l]!;
      counts[k]!++;
    });
    sessions.push(`${rule.name}: ${n} pairs, ${fit.iterations} iterations${fit.converged ? '' : ' (not converged)'}`);
  });
  // A comparison no session could estimate (every rule blocks on it) is estimated over all blocked pairs.
  let fallback: number[][] | undefined;
  const m = comps.map((c, k) => {
    if (counts[k]! > 0) return sums[k]!.map((x) => x / counts[k]!);
    if (!fallback) {
      const all = new Map<number, number>();
      for (let p = 0; p < pairs.size; p++) all.set(pairs.pattern[p]!, (all.get(pairs.pattern[p]!) ?? 0) + 1);
      fallback = em(comps, all, u).m;
      sessions.push(`all ${pairs.size} blocked pairs, for ${c.name}`);
    }
    return fallback[k]!;
  });
  return { m, sessions };
}

/**
 * The prior: the match share over all pairs, by EM on λ alone with m and u fixed, over the
 * blocked pairs and counting every pair blocking never formed as a non-match (blocking is built
 * to keep nearly every match).
 */
function estimateLambda(comps: ComparisonDef[], pairs: PairStore, m: number[][], u: number[][], total: number): { lambda: number; iterations: number } {
  const K = comps.length;
  const patterns = new Map<number, number>();
  for (let p = 0; p < pairs.size; p++) patterns.set(pairs.pattern[p]!, (patterns.get(pairs.pattern[p]!) ?? 0) + 1);
  const ratios = [...patterns].map(([pat, count]) => {
    const levels = levelsOf(pat, K);
    let r = 1;
    for (let k = 0; k < K; k++) if (levels[k]) r *= m[k]![levels[k]!]! / u[k]![levels[k]!]!;
    return { r, count };
  });
  let lambda = Math.min(pairs.size / Math.max(total, 1), 0.5) / 10 || 1e-9;
  let iterations = 0;
  for (; iterations < 500; iterations++) {
    const odds = lambda / (1 - lambda);
    let expected = 0;
    for (const { r, count } of ratios) expected += (count * odds * r) / (1 + odds * r);
    const next = Math.min(Math.max(expected / Math.max(total, 1), 1e-12), 0.5);
    const done = Math.abs(next - lambda) <= lambda * 1e-9;
    lambda = next;
    if (done) break;
  }
  return { lambda, iterations };
}

/** Trains a model on two sides (or one, for dedupe) without labels, or with labels for m. */
function train(a: Side, b: Side, dedupe: boolean, comps: ComparisonDef[], bound: Bound, rules: BlockingRule[], blocked: Blocked, opts: LinkOptions): Model {
  const seed = opts.seed ?? 1;
  const samples = opts.randomPairs ?? 300_000;
  const { pairs } = blocked;
  opts.onProgress?.('estimating u from random pairs', 0, 1);
  const u = estimateU(comps, bound, a, b, dedupe, samples, seed);
  opts.onProgress?.('estimating m by EM', 0, 1);
  const trained = trainM(comps, rules, blocked, u);
  let m = trained.m;
  let mSource = `EM with u fixed, one session per blocking rule: ${trained.sessions.join('; ')}`;
  if (opts.labels?.length) {
    const idxA = new Map(a.ids.map((id, i) => [id, i]));
    const idxB = dedupe ? idxA : new Map(b.ids.map((id, i) => [id, i]));
    const counts = comps.map((c) => new Array<number>(c.labels.length).fill(0));
    let used = 0;
    for (const l of opts.labels) {
      if (!l.match) continue;
      const i = idxA.get(l.leftId);
      const j = idxB.get(l.rightId);
      if (i === undefined || j === undefined) continue;
      bound.forEach((f, k) => counts[k]![f(i, j)]!++);
      used++;
    }
    if (used === 0) throw new OnceOnlyError('invalid_request', 'none of the labelled matches names a record in the input', { field: 'labels', expected: 'pairs of record ids present in the input files' });
    m = counts.map(shares);
    mSource = `${used} labelled matching pairs`;
  }
  const total = totalPairs(a, b, dedupe);
  const { lambda, iterations } = estimateLambda(comps, pairs, m, u, total);
  const model: Model = {
    version: 1,
    lambda,
    comparisons: comps.map((c, k) => ({
      name: c.name,
      kinds: c.kinds,
      tf: c.tfKind !== undefined,
      levels: c.labels.map((label, l) => ({ label, m: m[k]![l]!, u: u[k]![l]! })),
    })),
    tf: {},
    training: {
      u: `${Math.min(samples, totalPairs(a, b, dedupe))} random pairs, seed ${seed}`,
      m: mSource,
      lambda: `EM on the match share with m and u fixed, ${iterations} iterations: ${Math.round(lambda * total)} expected matches among ${total} pairs (${pairs.size} blocked)`,
    },
  };
  for (const c of comps) if (c.tfKind) model.tf[c.name] = termFrequencies(c.tfKind, a, b, dedupe);
  return model;
}

/**
 * Links `left` to `right`, or deduplicates `left` when `right` is null. Deterministic for a seed.
 */
export function link(left: Table, right: Table | null, opts: LinkOptions = {}): LinkResult {
  const threshold = opts.threshold ?? 0.5;
  if (!(threshold >= 0 && threshold <= 1)) throw new OnceOnlyError('invalid_request', `threshold must be a probability between 0 and 1, not ${threshold}`, { field: 'threshold', expected: 'a number from 0 to 1' });
  const dedupe = right === null;
  const { a, b, fields, rightFields, notes } = sidesFor(left, right, opts);
  const comps = opts.model ? comparisonDefs(opts.model) : chooseComparisons(a, b);
  for (const c of comps) for (const k of c.kinds) {
    if (!a.values[k] || !b.values[k]) throw new OnceOnlyError('invalid_request', `the ${c.name} comparison needs a ${k} column on both sides`, { field: k, expected: 'a column of that kind in each input' });
  }
  if (comps.length === 0) {
    throw new OnceOnlyError('invalid_request', `no column of ${left.source}${right ? ` and ${right.source}` : ''} can be compared: name, date of birth, address, postcode, email or identifier columns were expected`, { file: left.source, field: 'columns', expected: 'recognisable person-data headers, or --field COLUMN=KIND', columns: left.columns });
  }
  for (const r of opts.blocking ?? []) parseBlockingRule(r.keys.join('+'));
  const rules = usableRules(a, b, opts.blocking ?? DEFAULT_BLOCKING);
  if (rules.length === 0) throw new OnceOnlyError('invalid_request', 'no blocking rule can be applied to these columns', { field: 'blocking', expected: 'rules whose keys name kinds both inputs have' });
  const blocked = block(a, b, rules, dedupe, opts.maxPairs ?? 200_000_000, opts.onProgress);
  const { pairs, report } = blocked;
  opts.onBlocking?.(report);
  const bound = bindAll(comps, a, b);
  for (let p = 0; p < pairs.size; p++) {
    pairs.pattern[p] = patternOf(bound, pairs.left[p]!, pairs.right[p]!);
    if ((p & 0xffff) === 0) opts.onProgress?.('comparing', p, pairs.size);
  }
  const model = opts.model ?? train(a, b, dedupe, comps, bound, rules, blocked, opts);
  const byPattern = new Map<number, { base: number; levels: number[]; tf: boolean }>();
  const out: ScoredPair[] = [];
  for (let p = 0; p < pairs.size; p++) {
    const pat = pairs.pattern[p]!;
    let scored = byPattern.get(pat);
    if (scored === undefined) {
      const levels = levelsOf(pat, comps.length);
      scored = { base: patternWeight(model, levels), levels, tf: comps.some((c, k) => c.tfKind !== undefined && levels[k] === 1) };
      byPattern.set(pat, scored);
    }
    const i = pairs.left[p]!;
    const j = pairs.right[p]!;
    const w = scored.tf ? pairWeight(model, comps, scored.base, scored.levels, a, i) : scored.base;
    const prob = toProbability(w);
    if (prob >= threshold) out.push({ left: i, right: j, leftId: a.ids[i]!, rightId: b.ids[j]!, weight: w, probability: prob });
    if ((p & 0xffff) === 0) opts.onProgress?.('scoring', p, pairs.size);
  }
  out.sort((x, y) => x.left - y.left || y.probability - x.probability || x.right - y.right);
  return { pairs: out, model, blocking: report, compared: pairs.size, fields, rightFields, notes };
}

/** Each comparison's level and its contribution to the weight for one pair: Splink's waterfall. */
export function explain(model: Model, left: Table, leftIndex: number, right: Table, rightIndex: number, opts: { fields?: FieldSpec[]; rightFields?: FieldSpec[] } = {}): Explanation {
  const fields = opts.fields ?? detectFields(left).fields;
  const rightFields = opts.rightFields ?? (left === right ? fields : detectFields(right).fields);
  const a = makeSide(left, fields);
  const b = left === right && rightFields === fields ? a : makeSide(right, rightFields);
  for (const [side, idx, name] of [[a, leftIndex, 'left'], [b, rightIndex, 'right']] as const) {
    if (!Number.isInteger(idx) || idx < 0 || idx >= side.n) throw new OnceOnlyError('not_found', `no ${name} record at index ${idx}`, { field: name, expected: `0 to ${side.n - 1}` });
  }
  const defs = comparisonDefs(model);
  for (const d of defs) for (const k of d.kinds) {
    if (!a.values[k] || !b.values[k]) throw new OnceOnlyError('invalid_request', `the model's ${d.name} comparison needs a ${k} column on both sides`, { field: k, expected: 'inputs with the columns the model was trained on' });
  }
  const prior = Math.log2(model.lambda / (1 - model.lambda));
  let weight = prior;
  const steps = defs.map((d, k) => {
    const c = model.comparisons[k]!;
    const l = d.bind(a, b)(leftIndex, rightIndex);
    const kind = d.kinds[0]!;
    const shown = (s: Side, i: number): string | null => (d.exactKey ? d.kinds.map((k) => s.values[k]?.[i] ?? '∅').join(' | ') : s.values[kind]?.[i] ?? null);
    let w = l === 0 ? 0 : Math.log2(c.levels[l]!.m / c.levels[l]!.u);
    let u = c.levels[l]!.u;
    const v = a.values[kind]?.[leftIndex] ?? null;
    if (l === 1 && c.tf && d.tfKind && v !== null && Object.hasOwn(model.tf, c.name)) {
      u = tfShare(model.tf[c.name]!, v);
      w = Math.log2(c.levels[1]!.m / u);
    }
    weight += w;
    return { comparison: c.name, level: c.levels[l]!.label, left: shown(a, leftIndex), right: shown(b, rightIndex), weight: w, m: c.levels[l]!.m, u };
  });
  return { leftId: a.ids[leftIndex]!, rightId: b.ids[rightIndex]!, prior, steps, weight, probability: toProbability(weight) };
}

/** Connected components of the matched pairs (union-find with path halving): a cluster id per row. */
export function clusters(size: number, pairs: readonly ScoredPair[]): Int32Array {
  const parent = new Int32Array(size);
  for (let i = 0; i < size; i++) parent[i] = i;
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  for (const p of pairs) {
    const x = find(p.left);
    const y = find(p.right);
    if (x !== y) parent[Math.max(x, y)] = Math.min(x, y);
  }
  for (let i = 0; i < size; i++) parent[i] = find(i);
  return parent;
}
