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
import { chooseComparisons, COMPARISONS, SAME_ADDRESS_LEVELS, type ComparisonDef, type Side } from './comparisons.ts';
import { detectFields } from './detect.ts';
import { clip, clipList, shown, shownList } from './shown.ts';
import type { BlockingReport, BlockingRule, Explanation, ExplanationStep, FieldKind, FieldSpec, Model, ScoredPair, Table } from './types.ts';

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
  /**
   * The household rule (see {@link HOUSEHOLD_CAP}); default true. A model given in `model` keeps its own.
   */
  householdRule?: boolean;
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
  /** Columns of a kind the other input has no column for: neither compared nor blocked on (see {@link oneSidedKinds}). */
  warnings: string[];
  /** Whether blocking formed the pair of left record `left` and right record `right` (indices), i.e. whether it was ever scored. */
  wasCompared(left: number, right: number): boolean;
}

/** What blocking let through of a set of true pairs: its ceiling on recall. */
export interface BlockingCeiling {
  /** True pairs naming records of the inputs. */
  truePairs: number;
  /** Of those, the pairs blocking formed. */
  compared: number;
  /** compared / truePairs: the recall no threshold can exceed. */
  ceiling: number;
}

/**
 * The blocking ceiling of a linkage against known true pairs (record ids): how many of them
 * blocking ever compared. Pairs naming an id absent from the inputs are left out.
 */
export function blockingCeiling(result: LinkResult, left: Table, right: Table | null, truePairs: Iterable<{ leftId: string; rightId: string }>): BlockingCeiling {
  const ia = new Map(left.ids.map((id, i) => [id, i]));
  const ib = right ? new Map(right.ids.map((id, i) => [id, i])) : ia;
  let n = 0;
  let compared = 0;
  for (const p of truePairs) {
    const i = ia.get(p.leftId);
    const j = ib.get(p.rightId);
    if (i === undefined || j === undefined || (right === null && i === j)) continue;
    n++;
    if (result.wasCompared(i, j)) compared++;
  }
  return { truePairs: n, compared, ceiling: n ? compared / n : 0 };
}

export const KINDS: readonly FieldKind[] = ['given_name', 'surname', 'full_name', 'dob', 'postcode', 'house_number', 'street', 'address', 'locality', 'email', 'identifier', 'sex'];

/** Builds one side: each field's normalised values, plus the combined fields derivable from split ones. */
export function makeSide(table: Table, fields: FieldSpec[]): Side {
  const values: Side['values'] = {};
  for (const f of fields) {
    if (!KINDS.includes(f.kind)) throw new OnceOnlyError('invalid_request', `${shown(f.kind)} is not a field kind (column ${shown(f.column)} of ${table.source})`, { file: table.source, field: clip(f.column), expected: KINDS.join(', ') });
    const c = table.columns.indexOf(f.column);
    if (c < 0) throw new OnceOnlyError('invalid_request', `${table.source} has no column ${shown(f.column)}`, { file: table.source, field: clip(f.column), expected: `one of ${shownList(table.columns)}` });
    if (values[f.kind]) throw new OnceOnlyError('invalid_request', `two columns of ${table.source} are mapped to ${f.kind}`, { file: table.source, field: clip(f.column), expected: 'at most one column per field kind' });
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
  { name: 'surname:dm + dob:yearmonth', keys: ['surname:dm', 'dob:yearmonth'] },
  { name: 'given_name:dm + dob:yearmonth', keys: ['given_name:dm', 'dob:yearmonth'] },
  { name: 'surname:dm + dob:yearday', keys: ['surname:dm', 'dob:yearday'] },
  { name: 'given_name:dm + dob:yearday', keys: ['given_name:dm', 'dob:yearday'] },
  { name: 'email:local', keys: ['email:local'] },
  { name: 'given_name:dm~surname:dm', keys: ['given_name:dm~surname:dm'] },
  // An email mistyped after its first letters, with the year to keep the blocks small. (Splink's
  // first-two-letters-of-each-name-and-year rule was tried too: +0.002 F1 on fake_20000 for 8 s
  // more blocking on the 100k x 1M link, so it is left to --block.)
  { name: 'email:prefix4 + dob:year', keys: ['email:prefix4', 'dob:year'] },
];

function parseKey(k: string): { kind: FieldKind; transform: string | undefined } {
  const [kind, transform] = k.split(':') as [FieldKind, string | undefined];
  return { kind, transform };
}

/** The kinds a rule's key names: `surname:dm` one, `given_name:dm~surname:dm` (two keys in either order) two. */
function keyKinds(k: string): FieldKind[] {
  return k.split('~').map((p) => parseKey(p).kind);
}

/** A derived key as integer codes per record (0: no value), numbered over both sides so that equal values have equal codes. */
interface KeyCodes {
  a: Int32Array;
  b: Int32Array;
  size: number;
}

function derivedStrings(side: Side, key: string): (string | null)[] {
  const parts = key.split('~');
  const columns = parts.map((p) => {
    const { kind, transform } = parseKey(p);
    const values = side.values[kind]!;
    return transform === undefined ? values : values.map((v) => derive(kind, transform, v));
  });
  if (columns.length === 1) return columns[0]!;
  // Either order: the parts sorted, so that names entered in each other's box give the same key.
  return Array.from({ length: side.n }, (_, i) => {
    const vs = columns.map((c) => c[i] ?? null);
    return vs.some((v) => v === null) ? null : (vs as string[]).sort().join('\u0001');
  });
}

/**
 * Each derived key once per linkage as integer codes, shared by every rule that uses it (a phonetic
 * code is in several). Integers rather than strings because every pair a later rule finds is
 * checked against all earlier rules, and because a million key strings per rule kept alive made
 * garbage collection the largest cost of blocking.
 */
function keyCodes(a: Side, b: Side, key: string, dedupe: boolean, cache: Map<string, KeyCodes>): KeyCodes {
  let codes = cache.get(key);
  if (codes) return codes;
  const dict = new Map<string, number>();
  const encode = (side: Side): Int32Array => {
    const column = derivedStrings(side, key);
    const out = new Int32Array(side.n);
    for (let i = 0; i < side.n; i++) {
      const v = column[i] ?? null;
      if (v === null) continue;
      let c = dict.get(v);
      if (c === undefined) {
        c = dict.size + 1;
        dict.set(v, c);
      }
      out[i] = c;
    }
    return out;
  };
  const ca = encode(a);
  const cb = dedupe ? ca : encode(b);
  codes = { a: ca, b: cb, size: dict.size };
  cache.set(key, codes);
  return codes;
}

/**
 * Each record's key for a rule as a small integer (0: no key). One derived key is its codes; two
 * or more are combined arithmetically into one number (or, past 2^53 combinations, a string) and
 * numbered over the side with fewer records, a key the other side never has getting 0.
 */
function ruleIds(a: Side, b: Side, rule: BlockingRule, dedupe: boolean, cache: Map<string, KeyCodes>): { ida: Int32Array; idb: Int32Array; keys: number; indexOnA: boolean } {
  const indexOnA = dedupe || a.n <= b.n;
  const parts = rule.keys.map((k) => keyCodes(a, b, k, dedupe, cache));
  if (parts.length === 1) return { ida: parts[0]!.a, idb: parts[0]!.b, keys: parts[0]!.size, indexOnA };
  let span = 1;
  for (const p of parts) span *= p.size + 1;
  const numeric = span <= Number.MAX_SAFE_INTEGER;
  const combined = (side: 'a' | 'b', i: number): number | string | null => {
    let key = 0;
    let text = '';
    let scale = 1;
    for (const p of parts) {
      const c = p[side][i]!;
      if (c === 0) return null;
      if (numeric) {
        key += c * scale;
        scale *= p.size + 1;
      } else text += `${c},`;
    }
    return numeric ? key : text;
  };
  const smallSide = indexOnA ? 'a' : 'b';
  const small = indexOnA ? a : b;
  const ids = new Map<number | string, number>();
  const idSmall = new Int32Array(small.n);
  for (let i = 0; i < small.n; i++) {
    const k = combined(smallSide, i);
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
  const largeSide = indexOnA ? 'b' : 'a';
  const idLarge = new Int32Array(large.n);
  for (let j = 0; j < large.n; j++) {
    const k = combined(largeSide, j);
    if (k !== null) idLarge[j] = ids.get(k) ?? 0;
  }
  return indexOnA ? { ida: idSmall, idb: idLarge, keys: ids.size, indexOnA } : { ida: idLarge, idb: idSmall, keys: ids.size, indexOnA };
}

const TRANSFORM_LIST = 'dm, first, year, monthday, yearmonth, yearday, outward, sector, local or prefixN (e.g. prefix3)';

/** Parses `surname:dm+dob:year` (or `given_name:dm~surname:dm+dob:year`, names in either order) into a rule, naming the part that is wrong. */
export function parseBlockingRule(text: string): BlockingRule {
  const keys = text.split('+').map((k) => k.trim());
  for (const key of keys) {
    const parts = key.split('~');
    if (parts.length > 2) throw new OnceOnlyError('invalid_request', `blocking rule ${shown(text)}: ~ joins two keys, not ${parts.length}`, { field: 'blocking', expected: 'KEY~KEY, e.g. given_name:dm~surname:dm' });
    for (const k of parts) {
      const { kind, transform } = parseKey(k);
      if (!KINDS.includes(kind)) throw new OnceOnlyError('invalid_request', `blocking rule ${shown(text)}: ${shown(kind)} is not a field kind`, { field: 'blocking', expected: KINDS.join(', ') });
      try {
        derive(kind, transform, 'x');
      } catch {
        throw new OnceOnlyError('invalid_request', `blocking rule ${shown(text)}: ${shown(transform ?? '')} is not a key transform`, { field: 'blocking', expected: TRANSFORM_LIST });
      }
    }
  }
  return { name: keys.join(' + '), keys };
}

/**
 * The rules of `rules` that inputs with these field kinds can apply: every kind a rule's keys
 * name present in both (a full name or an address line counting as present where it can be
 * built from split columns, as {@link makeSide} builds it).
 */
export function applicableRules(leftKinds: Iterable<FieldKind>, rightKinds: Iterable<FieldKind>, rules: BlockingRule[] = DEFAULT_BLOCKING): BlockingRule[] {
  const withDerived = (ks: Iterable<FieldKind>): Set<FieldKind> => {
    const set = new Set(ks);
    if (set.has('given_name') && set.has('surname')) set.add('full_name');
    if (set.has('street')) set.add('address');
    return set;
  };
  const l = withDerived(leftKinds);
  const r = withDerived(rightKinds);
  return rules.filter((rule) => rule.keys.every((k) => keyKinds(k).every((kind) => l.has(kind) && r.has(kind))));
}

/**
 * The columns whose kind only one input has, so that they are neither compared nor blocked on:
 * a warning, because a column the other file lacks (or names so that it is not recognised) is
 * usually a mistake in one of the files or a missing --field.
 */
export function oneSidedKinds(a: Side, b: Side, fields: FieldSpec[], rightFields: FieldSpec[], left: string, right: string): string[] {
  const compared = (kind: FieldKind, other: Side, own: Side): boolean => {
    if (other.values[kind]) return true;
    // Split names and address parts are compared through the combined field when the other side has only that.
    if ((kind === 'given_name' || kind === 'surname') && other.values.full_name && own.values.full_name) return true;
    return (kind === 'house_number' || kind === 'street') && !!other.values.address && !!own.values.address;
  };
  const out: string[] = [];
  for (const [fs, own, other, name, otherName] of [[fields, a, b, left, right], [rightFields, b, a, right, left]] as const) {
    for (const f of fs) {
      if (!compared(f.kind, other, own)) out.push(`${shown(name)} has a column of the kind ${f.kind} (${shown(f.column)}) and ${shown(otherName)} has none: it is not compared`);
    }
  }
  return out;
}

function usableRules(a: Side, b: Side, rules: BlockingRule[]): BlockingRule[] {
  return rules.filter((r) => r.keys.every((k) => keyKinds(k).every((kind) => a.values[kind] !== undefined && b.values[kind] !== undefined)));
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
  const cache = new Map<string, KeyCodes>();
  const seenEarlier = (r: number, i: number, j: number): boolean => {
    for (let q = 0; q < r; q++) {
      const k = idsA[q]![i]!;
      if (k !== 0 && k === idsB[q]![j]) return true;
    }
    return false;
  };
  rules.forEach((rule, r) => {
    const { ida, idb, keys, indexOnA } = ruleIds(a, b, rule, dedupe, cache);
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
          throw new OnceOnlyError('invalid_request', `blocking rule ${shown(rule.name)} produces more than ${maxPairs.toLocaleString('en-GB')} pairs; use a more specific rule`, { field: 'blocking', expected: 'rules on keys specific enough to keep the pairs within maxPairs', rule: rule.name });
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
function termFrequencies(kind: FieldKind, a: Side, b: Side, dedupe: boolean, transform?: string): Record<string, number> {
  const counts = new Map<string, number>();
  let total = 0;
  for (const s of dedupe ? [a] : [a, b]) {
    for (const raw of s.values[kind] ?? []) {
      const v = transform === undefined ? raw : derive(kind, transform, raw ?? null);
      if (v == null) continue;
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

/** The least m a trained level has (see train). */
const MIN_M = 1e-6;

/** A pair's weight: pattern weight plus the term-frequency adjustment at each exact tf level, except on comparisons in `skip`. */
function pairWeight(model: Model, defs: ComparisonDef[], base: number, levels: number[], a: Side, i: number, skip?: ReadonlySet<number>): number {
  let w = base;
  for (let k = 0; k < defs.length; k++) {
    const d = defs[k]!;
    if (!model.comparisons[k]!.tf || skip?.has(k)) continue;
    if (d.tfKind && levels[k] === 1) w += tfAdjustment(model, d, k, a, i);
    else if (d.tfNear && levels[k] === d.tfNear.level) w += nearTfAdjustment(model, d, k, a, i);
  }
  return w;
}

/** The model's tf table name for a comparison's {@link ComparisonDef.tfNear} level: `email:local`. */
export function nearTfName(d: ComparisonDef): string {
  return `${d.name}:${d.tfNear!.transform}`;
}

/** The share of records with the pair's derived key (the user name), or null when there is no table or no key. */
function nearShare(model: Model, d: ComparisonDef, v: string | null): number | null {
  const name = nearTfName(d);
  const key = derive(d.kinds[0]!, d.tfNear!.transform, v);
  return key === null || !Object.hasOwn(model.tf, name) ? null : tfShare(model.tf[name]!, key);
}

function nearTfAdjustment(model: Model, d: ComparisonDef, k: number, a: Side, i: number): number {
  const share = nearShare(model, d, a.values[d.kinds[0]!]![i] ?? null);
  const l = d.tfNear!.level;
  // As at the exact level, but never above the level's own u: a user name seen once in the
  // inputs agrees by chance no more often than the average says; a common one, far more often.
  return share === null ? 0 : Math.min(0, Math.log2(model.comparisons[k]!.levels[l]!.u / share));
}

function tfAdjustment(model: Model, d: ComparisonDef, k: number, a: Side, i: number): number {
  const v = a.values[d.tfKind!]![i];
  const tf = Object.hasOwn(model.tf, d.name) ? model.tf[d.name] : undefined;
  if (v == null || !tf) return 0;
  // Splink's tf adjustment: log2(u_exact / tf(value)) on top of log2(m_exact / u_exact).
  return Math.log2(model.comparisons[k]!.levels[1]!.u / tfShare(tf, v));
}

/** The most a pair of one household's members may weigh: probability 1/3, below the default threshold. */
export const HOUSEHOLD_CAP = -1;
const HOUSEHOLD_RULE = 'household rule: same address, given name or date of birth differ, no identifier near';

/**
 * The household rule. Two records at one address (the place comparison at a same-address level)
 * whose given names or dates of birth disagree outright, with no identifier agreeing, are two
 * members of one household far more often than one person: siblings, twins, a parent and a child
 * of the same name. What they share, the address and usually the surname, is the household's
 * evidence, not the person's, so it is not counted, and the pair is capped at {@link HOUSEHOLD_CAP}.
 * Returns the comparisons whose agreement is not counted, or null when the rule does not apply.
 */
function householdSkip(model: Model, defs: ComparisonDef[], levels: number[]): Set<number> | null {
  if (model.householdRule === false) return null;
  let place = -1;
  let surname = -1;
  let given = 0;
  let dob = 0;
  for (let k = 0; k < defs.length; k++) {
    const d = defs[k]!;
    const l = levels[k]!;
    const last = d.labels.length - 1;
    if (d.place && SAME_ADDRESS_LEVELS.includes(l)) place = k;
    else if (d.name === 'given_name') given = l === last ? -1 : l === 0 ? 0 : 1;
    // Only an exact date agrees here: siblings a year or two apart with the same day and month
    // are one edit apart, and beside a different given name they were matches on the generated
    // register (a nickname with a mistyped date as well is far rarer).
    else if (d.name === 'dob') dob = l === last ? -1 : l === 1 ? 1 : 0;
    // An identifier agreeing or one or two keystrokes away is the person's own evidence, which no household shares.
    else if (d.name === 'identifier' && l !== 0 && l !== last) return null;
    else if (d.name === 'surname') surname = k;
  }
  // A different date of birth, or a different given name with no date of birth agreeing exactly. A
  // different given name beside the same date of birth is not enough: a nickname ("Bob" for
  // "Robert") is far commoner in a copy than a twin, and on the UK register test this clause
  // alone lost 0.6% of the true links, every one a nickname.
  if (place < 0 || !(dob < 0 || (given < 0 && dob <= 0))) return null;
  const skip = new Set([place]);
  // A surname that disagrees is evidence against, and stays counted.
  if (surname >= 0 && levels[surname] !== 0 && levels[surname] !== defs[surname]!.labels.length - 1) skip.add(surname);
  return skip;
}

/** Weights per pattern before term-frequency adjustments, without the comparisons in `skip`. */
function patternWeightWithout(model: Model, levels: number[], skip: ReadonlySet<number>): number {
  let w = Math.log2(model.lambda / (1 - model.lambda));
  model.comparisons.forEach((c, k) => {
    const l = levels[k]!;
    if (l === 0 || skip.has(k)) return;
    w += Math.log2(c.levels[l]!.m / c.levels[l]!.u);
  });
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
  const kinds = new Set(rule.keys.flatMap(keyKinds));
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
    householdRule: opts.householdRule ?? true,
    comparisons: comps.map((c, k) => ({
      name: c.name,
      kinds: c.kinds,
      tf: c.tfKind !== undefined || c.tfNear !== undefined,
      // A level no match reached in training (the surname's swap level, which the given name's
      // comparison weighs) keeps a tiny m rather than 0: a saved model must load again, and a
      // weight of minus infinity would end any pair that ever reached it.
      levels: c.labels.map((label, l) => ({ label, m: l === 0 ? m[k]![l]! : Math.max(m[k]![l]!, MIN_M), u: u[k]![l]! })),
    })),
    tf: {},
    training: {
      u: `${Math.min(samples, totalPairs(a, b, dedupe))} random pairs, seed ${seed}`,
      m: mSource,
      lambda: `EM on the match share with m and u fixed, ${iterations} iterations: ${Math.round(lambda * total)} expected matches among ${total} pairs (${pairs.size} blocked)`,
    },
  };
  for (const c of comps) {
    if (c.tfKind) model.tf[c.name] = termFrequencies(c.tfKind, a, b, dedupe);
    if (c.tfNear) model.tf[nearTfName(c)] = termFrequencies(c.kinds[0]!, a, b, dedupe, c.tfNear.transform);
  }
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
  const warnings = right ? oneSidedKinds(a, b, fields, rightFields, left.source, right.source) : [];
  const comps = opts.model ? comparisonDefs(opts.model) : chooseComparisons(a, b);
  for (const c of comps) for (const k of c.kinds) {
    if (!a.values[k] || !b.values[k]) throw new OnceOnlyError('invalid_request', `the ${c.name} comparison needs a ${k} column on both sides`, { field: k, expected: 'a column of that kind in each input' });
  }
  if (comps.length === 0) {
    throw new OnceOnlyError('invalid_request', `no column of ${left.source}${right ? ` and ${right.source}` : ''} can be compared: name, date of birth, address, postcode, email or identifier columns were expected`, { file: left.source, field: 'columns', expected: 'recognisable person-data headers, or --field COLUMN=KIND', columns: clipList(left.columns) });
  }
  for (const r of opts.blocking ?? []) parseBlockingRule(r.keys.join('+'));
  const rules = usableRules(a, b, opts.blocking ?? DEFAULT_BLOCKING);
  if (rules.length === 0) {
    const both = KINDS.filter((k) => a.values[k] && b.values[k]);
    throw new OnceOnlyError('invalid_request', `no blocking rule can be applied to the kinds both inputs have (${both.join(', ') || 'none'})`, { field: 'blocking', expected: 'rules whose keys name kinds both inputs have, e.g. --block given_name:dm~surname:dm' });
  }
  const blocked = block(a, b, rules, dedupe, opts.maxPairs ?? 200_000_000, opts.onProgress);
  const { pairs, report } = blocked;
  opts.onBlocking?.(report);
  const bound = bindAll(comps, a, b);
  for (let p = 0; p < pairs.size; p++) {
    pairs.pattern[p] = patternOf(bound, pairs.left[p]!, pairs.right[p]!);
    if ((p & 0xffff) === 0) opts.onProgress?.('comparing', p, pairs.size);
  }
  const model = opts.model ?? train(a, b, dedupe, comps, bound, rules, blocked, opts);
  const byPattern = new Map<number, { base: number; levels: number[]; tf: boolean; skip: Set<number> | null }>();
  const out: ScoredPair[] = [];
  for (let p = 0; p < pairs.size; p++) {
    const pat = pairs.pattern[p]!;
    let scored = byPattern.get(pat);
    if (scored === undefined) {
      const levels = levelsOf(pat, comps.length);
      const skip = householdSkip(model, comps, levels);
      const tf = comps.some((c, k) => (c.tfKind !== undefined && levels[k] === 1) || (c.tfNear !== undefined && levels[k] === c.tfNear.level));
      scored = { base: skip ? patternWeightWithout(model, levels, skip) : patternWeight(model, levels), levels, tf, skip };
      byPattern.set(pat, scored);
    }
    const i = pairs.left[p]!;
    const j = pairs.right[p]!;
    let w = scored.tf ? pairWeight(model, comps, scored.base, scored.levels, a, i, scored.skip ?? undefined) : scored.base;
    if (scored.skip && w > HOUSEHOLD_CAP) w = HOUSEHOLD_CAP;
    const prob = toProbability(w);
    if (prob >= threshold) out.push({ left: i, right: j, leftId: a.ids[i]!, rightId: b.ids[j]!, weight: w, probability: prob });
    if ((p & 0xffff) === 0) opts.onProgress?.('scoring', p, pairs.size);
  }
  out.sort((x, y) => x.left - y.left || y.probability - x.probability || x.right - y.right);
  const { idsA, idsB } = blocked;
  const wasCompared = (i: number, j: number): boolean => {
    for (let r = 0; r < idsA.length; r++) {
      const k = idsA[r]![i]!;
      if (k !== 0 && k === idsB[r]![j]) return true;
    }
    return false;
  };
  return { pairs: out, model, blocking: report, compared: pairs.size, fields, rightFields, notes, warnings, wasCompared };
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
  const levels = defs.map((d) => d.bind(a, b)(leftIndex, rightIndex));
  const skip = householdSkip(model, defs, levels);
  const steps = defs.map((d, k) => {
    const c = model.comparisons[k]!;
    const l = levels[k]!;
    const kind = d.kinds[0]!;
    const shown = (s: Side, i: number): string | null => (d.exactKey ? d.kinds.map((k) => s.values[k]?.[i] ?? '∅').join(' | ') : s.values[kind]?.[i] ?? null);
    let w = l === 0 ? 0 : Math.log2(c.levels[l]!.m / c.levels[l]!.u);
    let u = c.levels[l]!.u;
    const v = a.values[kind]?.[leftIndex] ?? null;
    if (l === 1 && c.tf && d.tfKind && v !== null && Object.hasOwn(model.tf, c.name)) {
      u = tfShare(model.tf[c.name]!, v);
      w = Math.log2(c.levels[1]!.m / u);
    } else if (c.tf && d.tfNear && l === d.tfNear.level) {
      const share = nearShare(model, d, v);
      if (share !== null && share > u) {
        u = share;
        w = Math.log2(c.levels[l]!.m / u);
      }
    }
    const step: ExplanationStep = { comparison: c.name, level: c.levels[l]!.label, left: shown(a, leftIndex), right: shown(b, rightIndex), weight: w, m: c.levels[l]!.m, u };
    if (skip?.has(k)) {
      step.weight = 0;
      step.note = `not counted (${HOUSEHOLD_RULE}): the household shares it`;
    }
    weight += step.weight;
    return step;
  });
  const out: Explanation = { leftId: a.ids[leftIndex]!, rightId: b.ids[rightIndex]!, prior, steps, weight, probability: toProbability(weight) };
  if (skip && weight > HOUSEHOLD_CAP) {
    out.household = { rule: `${HOUSEHOLD_RULE}: weight at most ${HOUSEHOLD_CAP}`, weight: HOUSEHOLD_CAP - weight };
    out.weight = HOUSEHOLD_CAP;
    out.probability = toProbability(HOUSEHOLD_CAP);
  }
  return out;
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
