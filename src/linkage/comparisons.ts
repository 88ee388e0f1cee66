/**
 * @module linkage/comparisons
 * The comparisons of person data, each with ordered levels from "null" (level 0: either side
 * missing, no evidence either way) through the strictest agreement to "else" (the last level).
 * The levels follow Splink's defaults for names, dates, postcodes and addresses; the thresholds
 * are Winkler's (Jaro-Winkler 0.92 and 0.8 for names) and one or two edits for dates and codes.
 */
import { damerauLevenshtein, jaroWinkler, jaroWinklerAtMost, letterMask, postcodeOutward } from './compare.ts';
import type { FieldKind } from './types.ts';

/** One side of a comparison: the normalised values of each field kind it has. */
export interface Side {
  n: number;
  ids: string[];
  values: Partial<Record<FieldKind, (string | null)[]>>;
}

export interface ComparisonDef {
  name: string;
  kinds: FieldKind[];
  labels: string[];
  /** The kind whose value's term frequency replaces u at the exact level (level 1). */
  tfKind?: FieldKind;
  /** Initial m for EM, per level (level 0 ignored). */
  mStart: number[];
  /** The kinds a blocking rule must not share for a training session to estimate this comparison; default its first kind. */
  trainKinds?: FieldKind[];
  /**
   * The value whose exact agreement is level 1, for counting u's exact level; default the first
   * kind's value. Null when the record has none.
   */
  exactKey?: (s: Side, i: number) => string | null;
  /**
   * A level below exact whose u is also replaced by a term frequency: that of a derived key of
   * the first kind's value (the email's user name at "same user name"). Stored in the model's
   * tf under `name:transform`.
   */
  tfNear?: { level: number; transform: 'local' };
  /** Set on the comparisons of where someone lives (several address parts as one): the household rule looks at them. */
  place?: true;
  /** The level function for two sides, with their columns looked up once rather than per pair. */
  bind(a: Side, b: Side): (i: number, j: number) => number;
}

/** Binds a level function of two values to two sides' columns of `kind`. */
function on(kind: FieldKind, f: (x: string, y: string) => number): (a: Side, b: Side) => (i: number, j: number) => number {
  return (a, b) => {
    const xs = col(a, kind);
    const ys = col(b, kind);
    return (i, j) => {
      const x = xs[i];
      const y = ys[j];
      return x == null || y == null ? 0 : x === y ? 1 : f(x, y);
    };
  };
}

function col(s: Side, k: FieldKind): (string | null)[] {
  const v = s.values[k];
  if (!v) throw new Error(`side has no ${k}`);
  return v;
}

const maskCache = new WeakMap<(string | null)[], Int32Array>();

/** Each value's {@link letterMask}, computed once per column and shared by every comparison that reads it. */
function masks(values: (string | null)[]): Int32Array {
  let m = maskCache.get(values);
  if (!m) {
    m = new Int32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v != null) m[i] = letterMask(v);
    }
    maskCache.set(values, m);
  }
  return m;
}

/** Jaro-Winkler of x and y, or 0 when the letters alone show it is below `floor` (the comparison is then not run). */
function similarity(x: string, y: string, mx: number, my: number, floor: number): number {
  return jaroWinklerAtMost(x, y, mx, my) < floor ? 0 : jaroWinkler(x, y);
}

function nameLevels(kind: 'given_name' | 'surname', other: 'given_name' | 'surname'): ComparisonDef {
  // A swap of both names is one fact about both, so it is weighed once, in the given name's
  // comparison. Counted in both, it weighed 22 bits on fake_20000, and strangers called Chloe
  // Smith and Smith Chloe outscored different dates of birth and emails.
  const given = kind === 'given_name';
  return {
    name: kind,
    kinds: [kind, other],
    labels: ['null', 'exact', given ? 'swapped with the other name (each jaro-winkler >= 0.92)' : 'swapped with the given name (weighed in the given name\'s comparison, so not reached)', 'jaro-winkler >= 0.92', 'jaro-winkler >= 0.80', 'else'],
    tfKind: kind,
    mStart: [0, 0.75, 0.02, 0.12, 0.06, 0.05],
    bind(a, b) {
      const [xs, ys, xo, yo] = [col(a, kind), col(b, kind), col(a, other), col(b, other)];
      const [mxs, mys, mxo, myo] = [masks(xs), masks(ys), masks(xo), masks(yo)];
      return (i, j) => {
        const x = xs[i];
        const y = ys[j];
        if (x == null || y == null) return 0;
        if (x === y) return 1;
        const s = similarity(x, y, mxs[i]!, mys[j]!, 0.8);
        if (s >= 0.92) return 3;
        // Given and family names entered in each other's box: the commonest structural error in
        // extracts, as often with a typo in one of them as without, and often with one box empty.
        const x2 = xo[i] ?? null;
        const y2 = yo[j] ?? null;
        const near1 = y2 === null || y2 === x || similarity(x, y2, mxs[i]!, myo[j]!, 0.92) >= 0.92;
        if ((x2 !== null || y2 !== null) && near1 && (x2 === null || x2 === y || similarity(y, x2, mys[j]!, mxo[i]!, 0.92) >= 0.92)) {
          // With one box empty on one side only one name agrees, in the wrong box: as strong as
          // one name nearly agreeing, not as a swap of both, whose chance agreement is the
          // product of two names' and which would otherwise share its u with these.
          if (x2 === null || y2 === null) return 3;
          return given ? 2 : 0;
        }
        return s >= 0.8 ? 4 : 5;
      };
    },
  };
}

function textLevels(name: string, kind: FieldKind, hi: number, lo: number, tf: boolean): ComparisonDef {
  return {
    name,
    kinds: [kind],
    labels: ['null', 'exact', `jaro-winkler >= ${hi}`, `jaro-winkler >= ${lo}`, 'else'],
    ...(tf ? { tfKind: kind } : {}),
    mStart: [0, 0.7, 0.15, 0.05, 0.1],
    bind(a, b) {
      const [xs, ys] = [col(a, kind), col(b, kind)];
      const [mx, my] = [masks(xs), masks(ys)];
      return (i, j) => {
        const x = xs[i];
        const y = ys[j];
        if (x == null || y == null) return 0;
        if (x === y) return 1;
        const s = similarity(x, y, mx[i]!, my[j]!, lo);
        return s >= hi ? 2 : s >= lo ? 3 : 4;
      };
    },
  };
}

const DOB: ComparisonDef = {
  name: 'dob',
  kinds: ['dob'],
  labels: ['null', 'exact', 'one edit (typo or adjacent transposition)', 'day and month swapped', 'two edits', 'else'],
  mStart: [0, 0.8, 0.1, 0.02, 0.03, 0.05],
  bind: on('dob', (x, y) => {
    const d = damerauLevenshtein(x, y, 2);
    if (d <= 1) return 2;
    if (x.slice(0, 4) === y.slice(0, 4) && x.slice(4, 6) === y.slice(6, 8) && x.slice(6, 8) === y.slice(4, 6)) return 3;
    return d <= 2 ? 4 : 5;
  }),
};

const POSTCODE: ComparisonDef = {
  name: 'postcode',
  kinds: ['postcode'],
  labels: ['null', 'exact', 'one edit', 'same district (outward code)', 'else'],
  tfKind: 'postcode',
  mStart: [0, 0.7, 0.1, 0.05, 0.15],
  bind: on('postcode', (x, y) => {
    if (damerauLevenshtein(x, y, 1) <= 1) return 2;
    const ox = postcodeOutward(x);
    return ox !== null && ox === postcodeOutward(y) ? 3 : 4;
  }),
};

function codeLevels(name: string, kind: FieldKind): ComparisonDef {
  return {
    name,
    kinds: [kind],
    labels: ['null', 'exact', 'one edit', 'two edits', 'else'],
    mStart: [0, 0.8, 0.1, 0.03, 0.07],
    bind: on(kind, (x, y) => {
      const d = damerauLevenshtein(x, y, 2);
      return d <= 1 ? 2 : d <= 2 ? 3 : 4;
    }),
  };
}

function exactLevels(name: string, kind: FieldKind): ComparisonDef {
  return {
    name,
    kinds: [kind],
    labels: ['null', 'exact', 'else'],
    mStart: [0, 0.9, 0.1],
    bind: on(kind, () => 2),
  };
}

const EMAIL: ComparisonDef = {
  name: 'email',
  kinds: ['email'],
  labels: ['null', 'exact', 'same user name', 'jaro-winkler >= 0.88', 'else'],
  mStart: [0, 0.7, 0.1, 0.1, 0.1],
  // "charlie.c" at two providers is two people far more often than "max.henderson43" is: on
  // fake_20000 the shared common user names were most of the false matches once blocking formed
  // such pairs, so this level's u is the user name's own frequency.
  tfNear: { level: 2, transform: 'local' },
  bind: on('email', (x, y) => {
    if (x.slice(0, x.indexOf('@')) === y.slice(0, y.indexOf('@'))) return 2;
    return jaroWinkler(x, y) >= 0.88 ? 3 : 4;
  }),
};

/** The parts of an address both sides have, in the order a place comparison names them. */
export interface PlaceParts {
  number: boolean;
  line: 'street' | 'address' | null;
  postcode: boolean;
  town: boolean;
}

function placeKinds(p: PlaceParts): FieldKind[] {
  return [...(p.number ? ['house_number' as const] : []), ...(p.line ? [p.line] : []), ...(p.postcode ? ['postcode' as const] : []), ...(p.town ? ['locality' as const] : [])];
}

/** The levels of a place comparison at which two records share one address: the household rule's test. */
export const SAME_ADDRESS_LEVELS: readonly number[] = [1, 3];

/**
 * Where someone lives, as ONE comparison of every address part both sides have (house number,
 * street or address line, postcode, town). The parts are not independent evidence: a postcode
 * lies in one town, a house number means nothing without its street, and all of them say the same
 * thing, "lives there". Compared separately, living at one address was counted two to four times,
 * a stranger at a person's old address outweighed a different name and date of birth, and members
 * of one household scored as one person.
 *
 * The number is part of the line: two numbers that differ make the lines differ; a number missing
 * on one side leaves the street to decide. The area is the postcode when both have one, else the
 * town; a town agreeing stands in for a postcode only at "same address" (line exact) and "same
 * district or town", never at the postcode-unit levels, whose u is a hundred times smaller.
 */
function placeLevels(parts: PlaceParts): ComparisonDef {
  const kinds = placeKinds(parts);
  const area = parts.postcode && parts.town ? 'postcode (or town)' : parts.postcode ? 'postcode' : 'town';
  const line = parts.line ? (parts.number ? 'number and line' : 'line') : 'number';
  // The two-part comparisons keep the labels they always had, so models saved before still read the same.
  const labels = parts.postcode && !parts.town && !parts.number && parts.line
    ? ['null', 'line and postcode exact', 'line exact, postcode not', 'postcode exact, line jaro-winkler >= 0.9', 'postcode exact, line differs', 'line jaro-winkler >= 0.9, postcode not', 'postcode one edit or same district', 'else']
    : ['null', `${line} and ${area} exact`, `${line} exact, ${area} not`, `postcode exact, ${line} jaro-winkler >= 0.9`, `postcode exact, ${line} differs`, `${line} jaro-winkler >= 0.9, ${area} not`, parts.postcode ? (parts.town ? 'postcode one edit, same district or same town' : 'postcode one edit or same district') : 'same town', 'else'];
  return {
    name: kinds.join('_'),
    kinds,
    labels,
    mStart: [0, 0.7, 0.04, 0.05, 0.02, 0.03, 0.04, 0.12],
    trainKinds: kinds,
    place: true,
    exactKey: (s, i) => {
      const n = parts.number ? (s.values.house_number![i] ?? '') : '';
      const l = parts.line ? s.values[parts.line]![i] : n || null;
      const p = parts.postcode ? s.values.postcode![i] : null;
      const t = parts.town ? s.values.locality![i] : null;
      if (l == null || (p == null && t == null)) return null;
      return p != null ? `${n}\u0001${l}\u0001P${p}` : `${n}\u0001${l}\u0001T${t}`;
    },
    bind(a, b) {
      const none: (string | null)[] = [];
      const pick = (s: Side, k: FieldKind | null, on: boolean): (string | null)[] => (on && k ? col(s, k) : none);
      const [na, nb] = [pick(a, 'house_number', parts.number), pick(b, 'house_number', parts.number)];
      const [la, lb] = [pick(a, parts.line, parts.line !== null), pick(b, parts.line, parts.line !== null)];
      const [mla, mlb] = [masks(la), masks(lb)];
      const [pa, pb] = [pick(a, 'postcode', parts.postcode), pick(b, 'postcode', parts.postcode)];
      const [ta, tb] = [pick(a, 'locality', parts.town), pick(b, 'locality', parts.town)];
      return (i, j) => {
        // The line: 1 same, 2 close, 3 differs, 0 not comparable.
        let ln = 0;
        const n = na[i] ?? null;
        const m = nb[j] ?? null;
        if (parts.line) {
          const x = la[i];
          const y = lb[j];
          if (x != null && y != null) ln = x === y ? 1 : similarity(x, y, mla[i]!, mlb[j]!, 0.9) >= 0.9 ? 2 : 3;
          if (ln !== 0 && n !== null && m !== null && n !== m) ln = 3;
        } else if (n !== null && m !== null) ln = n === m ? 1 : 3;
        // The area: 1 same postcode, 2 same town (no postcodes to compare), 3 near, 4 differs, 0 not comparable.
        let ar = 0;
        const p = pa[i] ?? null;
        const q = pb[j] ?? null;
        const t = ta[i] ?? null;
        const u = tb[j] ?? null;
        if (p !== null && q !== null) {
          if (p === q) ar = 1;
          else if (damerauLevenshtein(p, q, 1) <= 1) ar = 3;
          else {
            const op = postcodeOutward(p);
            ar = (op !== null && op === postcodeOutward(q)) || (t !== null && t === u) ? 3 : 4;
          }
        } else if (t !== null && u !== null) ar = t === u ? 2 : 4;
        if (ln === 0 && ar === 0) return 0;
        if (ln === 1) return ar === 1 || ar === 2 ? 1 : 2;
        if (ar === 1) return ln === 2 ? 3 : 4;
        if (ln === 2) return 5;
        if (ar === 2 || ar === 3) return 6;
        return 7;
      };
    },
  };
}

/** Every comparison the engine knows, by name; a model names the ones it uses. */
export const COMPARISONS: Record<string, ComparisonDef> = {
  given_name: nameLevels('given_name', 'surname'),
  surname: nameLevels('surname', 'given_name'),
  full_name: textLevels('full_name', 'full_name', 0.92, 0.8, true),
  dob: DOB,
  postcode: POSTCODE,
  house_number: exactLevels('house_number', 'house_number'),
  street: textLevels('street', 'street', 0.9, 0.8, true),
  address: textLevels('address', 'address', 0.9, 0.8, true),
  locality: textLevels('locality', 'locality', 0.92, 0.8, true),
  email: EMAIL,
  identifier: codeLevels('identifier', 'identifier'),
  sex: exactLevels('sex', 'sex'),
};
for (const number of [false, true]) {
  for (const line of [null, 'street', 'address'] as const) {
    for (const postcode of [false, true]) {
      for (const town of [false, true]) {
        // One part alone is compared with its own levels (above); a place needs two.
        if (Number(number) + Number(line !== null) + Number(postcode) + Number(town) < 2 || (number && line === 'address')) continue;
        const def = placeLevels({ number, line, postcode, town });
        COMPARISONS[def.name] = def;
      }
    }
  }
}

/**
 * The comparisons to use for two sides: every comparison whose kinds both sides have, preferring
 * the split names (given name and surname) over the full name when both sides have them, and
 * every address part both sides have in one comparison, so no evidence is counted twice.
 */
export function chooseComparisons(a: Side, b: Side): ComparisonDef[] {
  const has = (k: FieldKind): boolean => a.values[k] !== undefined && b.values[k] !== undefined;
  const out: ComparisonDef[] = [];
  if (has('given_name') && has('surname')) out.push(COMPARISONS['given_name']!, COMPARISONS['surname']!);
  else if (has('full_name')) out.push(COMPARISONS['full_name']!);
  if (has('dob')) out.push(DOB);
  if (has('identifier')) out.push(COMPARISONS['identifier']!);
  // Every address part both sides have is one comparison (placeLevels says why).
  const line = has('house_number') && has('street') ? 'street' : has('address') ? 'address' : has('street') ? 'street' : null;
  const parts: PlaceParts = { number: has('house_number') && line !== 'address', line, postcode: has('postcode'), town: has('locality') };
  const count = Number(parts.number) + Number(parts.line !== null) + Number(parts.postcode) + Number(parts.town);
  if (count >= 2) out.push(COMPARISONS[placeKinds(parts).join('_')]!);
  else if (line) out.push(COMPARISONS[line]!);
  else if (parts.postcode) out.push(POSTCODE);
  else if (parts.town) out.push(COMPARISONS['locality']!);
  else if (parts.number) out.push(COMPARISONS['house_number']!);
  if (has('email')) out.push(EMAIL);
  if (has('sex')) out.push(COMPARISONS['sex']!);
  return out;
}
