/**
 * @module linkage/comparisons
 * The comparisons of person data, each with ordered levels from "null" (level 0: either side
 * missing, no evidence either way) through the strictest agreement to "else" (the last level).
 * The levels follow Splink's defaults for names, dates, postcodes and addresses; the thresholds
 * are Winkler's (Jaro-Winkler 0.92 and 0.8 for names) and one or two edits for dates and codes.
 */
import { damerauLevenshtein, jaroWinkler, postcodeOutward } from './compare.ts';
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

function nameLevels(kind: 'given_name' | 'surname', other: 'given_name' | 'surname'): ComparisonDef {
  return {
    name: kind,
    kinds: [kind, other],
    labels: ['null', 'exact', 'swapped with the other name', 'jaro-winkler >= 0.92', 'jaro-winkler >= 0.80', 'else'],
    tfKind: kind,
    mStart: [0, 0.75, 0.02, 0.12, 0.06, 0.05],
    bind(a, b) {
      const [xs, ys, xo, yo] = [col(a, kind), col(b, kind), col(a, other), col(b, other)];
      return (i, j) => {
        const x = xs[i];
        const y = ys[j];
        if (x == null || y == null) return 0;
        if (x === y) return 1;
        // Given and family names entered in each other's box: the commonest structural error in extracts.
        if (x === yo[j] && y === xo[i]) return 2;
        const s = jaroWinkler(x, y);
        return s >= 0.92 ? 3 : s >= 0.8 ? 4 : 5;
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
    bind: on(kind, (x, y) => {
      const s = jaroWinkler(x, y);
      return s >= hi ? 2 : s >= lo ? 3 : 4;
    }),
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
  bind: on('email', (x, y) => {
    if (x.slice(0, x.indexOf('@')) === y.slice(0, y.indexOf('@'))) return 2;
    return jaroWinkler(x, y) >= 0.88 ? 3 : 4;
  }),
};

/**
 * Where someone lives, as one comparison of the address line and the postcode together. Separate
 * comparisons of line, postcode and town count one fact (living there) up to three times: a
 * stranger at the same address then outweighed a different name and date of birth.
 */
function placeLevels(name: string, line: 'street' | 'address'): ComparisonDef {
  return {
    name,
    kinds: [line, 'postcode'],
    labels: ['null', 'line and postcode exact', 'line exact, postcode not', 'postcode exact, line jaro-winkler >= 0.9', 'postcode exact, line differs', 'line jaro-winkler >= 0.9, postcode not', 'postcode one edit or same district', 'else'],
    mStart: [0, 0.7, 0.04, 0.05, 0.02, 0.03, 0.04, 0.12],
    trainKinds: [line, 'postcode'],
    exactKey: (s, i) => {
      const l = s.values[line]![i];
      const p = s.values.postcode![i];
      return l == null || p == null ? null : `${l}\u0001${p}`;
    },
    bind(a, b) {
      const [xs, ys, ps, qs] = [col(a, line), col(b, line), col(a, 'postcode'), col(b, 'postcode')];
      return (i, j) => {
        const x = xs[i];
        const y = ys[j];
        const p = ps[i];
        const q = qs[j];
        if ((x == null && p == null) || (y == null && q == null)) return 0;
        const lineSame = x != null && x === y;
        const postcodeSame = p != null && p === q;
        if (lineSame) return postcodeSame ? 1 : 2;
        const lineClose = x != null && y != null && jaroWinkler(x, y) >= 0.9;
        if (postcodeSame) return lineClose ? 3 : 4;
        if (lineClose) return 5;
        if (p != null && q != null) {
          if (damerauLevenshtein(p, q, 1) <= 1) return 6;
          const op = postcodeOutward(p);
          if (op !== null && op === postcodeOutward(q)) return 6;
        }
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
  street_postcode: placeLevels('street_postcode', 'street'),
  address_postcode: placeLevels('address_postcode', 'address'),
  email: EMAIL,
  identifier: codeLevels('identifier', 'identifier'),
  sex: exactLevels('sex', 'sex'),
};

/**
 * The comparisons to use for two sides: every comparison whose kinds both sides have, preferring
 * the split fields (given name and surname; house number and street) over the combined ones when
 * both sides have them, so no evidence is counted twice.
 */
export function chooseComparisons(a: Side, b: Side): ComparisonDef[] {
  const has = (k: FieldKind): boolean => a.values[k] !== undefined && b.values[k] !== undefined;
  const out: ComparisonDef[] = [];
  if (has('given_name') && has('surname')) out.push(COMPARISONS['given_name']!, COMPARISONS['surname']!);
  else if (has('full_name')) out.push(COMPARISONS['full_name']!);
  if (has('dob')) out.push(DOB);
  if (has('identifier')) out.push(COMPARISONS['identifier']!);
  const line = has('house_number') && has('street') ? 'street' : has('address') ? 'address' : null;
  if (line === 'street') out.push(COMPARISONS['house_number']!);
  if (line && has('postcode')) out.push(COMPARISONS[`${line}_postcode`]!);
  else if (line) out.push(COMPARISONS[line]!);
  else if (has('postcode')) out.push(POSTCODE);
  // The town adds nothing independent once line and postcode are compared (a postcode lies in one
  // town), and counting it again let a sibling at the same address outscore a different given
  // name and date of birth; it is compared only when there is no postcode to compare.
  if (has('locality') && !(line && has('postcode'))) out.push(COMPARISONS['locality']!);
  if (has('email')) out.push(EMAIL);
  if (has('sex')) out.push(COMPARISONS['sex']!);
  return out;
}
