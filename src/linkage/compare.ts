/**
 * @module linkage/compare
 * Normalisation of person-data values, the string comparators and the phonetic code, and the
 * derived keys that blocking rules are built from. The comparators come from talisman (checked
 * against published values in compare.test.ts); normalisation is ours because it encodes what
 * an agency's extract looks like.
 */
import jaroWinklerImpl from 'talisman/metrics/jaro-winkler.js';
import damerauLevenshteinImpl from 'talisman/metrics/damerau-levenshtein.js';
import doubleMetaphoneImpl from 'talisman/phonetics/double-metaphone.js';
import type { FieldKind } from './types.ts';

/** Jaro-Winkler similarity as talisman computes it: the reference {@link jaroWinkler} is checked against. */
export function jaroWinklerReference(a: string, b: string): number {
  return jaroWinklerImpl(a, b);
}

// Reused across calls: the comparison runs millions of times per linkage and talisman's version
// allocates four arrays per call, which made it (with the garbage it left) the engine's largest cost.
const MAX_COMPARED = 500;
let flagsMax = new Uint8Array(64);
let matchIdx = new Int32Array(64);

/** The characters of `v` as bits (char code mod 32): a summary for {@link jaroWinklerAtMost}. */
export function letterMask(v: string): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m |= 1 << (v.charCodeAt(i) & 31);
  return m;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * An upper bound on jaroWinkler(a, b) from the lengths and {@link letterMask}s alone. Most pairs
 * blocking forms are of different people, whose names share few letters; the bound settles them
 * without the comparison (a name absent from its own mask's letters cannot be matched, so at
 * most `length - missing letters` characters match; Winkler's prefix adds at most 0.4 of the rest).
 */
export function jaroWinklerAtMost(a: string, b: string, ma: number, mb: number): number {
  if (a.length > MAX_COMPARED || b.length > MAX_COMPARED) return 1;
  const m = Math.min(a.length - popcount(ma & ~mb), b.length - popcount(mb & ~ma));
  if (m <= 0) return 0;
  const jaro = (m / a.length + m / b.length + 1) / 3;
  return jaro + 0.4 * (1 - jaro);
}

/**
 * Jaro-Winkler similarity (Jaro 1989; Winkler 1990): prefix scale 0.1 over at most 4 characters,
 * applied when the Jaro score is at least 0.7. The same algorithm as talisman's, step for step
 * (compare.test.ts checks they agree on random strings), without allocating.
 */
export function jaroWinkler(a: string, b: string): number {
  if (a === b) return 1;
  // Time grows with the product of the lengths: nothing a person-data field needs is longer than
  // this, and a hostile value must not hold the thread (callers also refuse long values).
  if (a.length > MAX_COMPARED) a = a.slice(0, MAX_COMPARED);
  if (b.length > MAX_COMPARED) b = b.slice(0, MAX_COMPARED);
  if (a === b) return 1;
  let min = a;
  let max = b;
  if (a.length > b.length) {
    min = b;
    max = a;
  }
  const lmin = min.length;
  const lmax = max.length;
  if (lmin === 0) return 0;
  if (lmax > flagsMax.length) {
    flagsMax = new Uint8Array(lmax * 2);
    matchIdx = new Int32Array(lmax * 2);
  }
  flagsMax.fill(0, 0, lmax);
  const range = Math.max(((lmax / 2) | 0) - 1, 0);
  let matches = 0;
  for (let i = 0; i < lmin; i++) {
    const c = min.charCodeAt(i);
    const lo = Math.max(i - range, 0);
    const hi = Math.min(i + range + 1, lmax);
    matchIdx[i] = -1;
    for (let j = lo; j < hi; j++) {
      if (flagsMax[j] === 0 && c === max.charCodeAt(j)) {
        matchIdx[i] = j;
        flagsMax[j] = 1;
        matches++;
        break;
      }
    }
  }
  if (matches === 0) return 0;
  // Transpositions: the matched characters of each string, in order, compared pairwise.
  let transpositions = 0;
  let k = 0;
  for (let i = 0; i < lmin; i++) {
    if (matchIdx[i] === -1) continue;
    while (flagsMax[k] === 0) k++;
    if (min.charCodeAt(i) !== max.charCodeAt(k)) transpositions++;
    k++;
  }
  const t = (transpositions / 2) | 0;
  const jaro = (matches / a.length + matches / b.length + (matches - t) / matches) / 3;
  if (jaro < 0.7) return jaro;
  const limit = Math.min(a.length, b.length, 4);
  let prefix = 0;
  while (prefix < limit && a.charCodeAt(prefix) === b.charCodeAt(prefix)) prefix++;
  return jaro + prefix * 0.1 * (1 - jaro);
}

/**
 * Damerau-Levenshtein distance in its optimal-string-alignment form (an adjacent transposition
 * costs one; a substring is not edited twice), which is the form record-linkage tools use for
 * transposed digits. Returns `Infinity` beyond `max`, so the common "far apart" case is cheap.
 */
export function damerauLevenshtein(a: string, b: string, max = Infinity): number {
  if (a === b) return 0;
  if (a.length > MAX_COMPARED) a = a.slice(0, MAX_COMPARED);
  if (b.length > MAX_COMPARED) b = b.slice(0, MAX_COMPARED);
  if (Math.abs(a.length - b.length) > max) return Infinity;
  return max === Infinity ? damerauLevenshteinImpl(a, b) : damerauLevenshteinImpl.limited(max, a, b);
}

const dmCache = new Map<string, string>();
/** Primary Double Metaphone code (Philips 2000); cached because names repeat heavily. */
export function doubleMetaphone(word: string): string {
  let code = dmCache.get(word);
  if (code === undefined) {
    code = word ? doubleMetaphoneImpl(word)[0] : '';
    if (dmCache.size > 500_000) dmCache.clear();
    dmCache.set(word, code);
  }
  return code;
}

function stripAccents(s: string): string {
  return s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
}

function nameNorm(v: string): string | null {
  const s = stripAccents(v.toLowerCase()).replace(/[^a-z' -]/g, ' ').replace(/['-]/g, '').replace(/\s+/g, ' ').trim();
  return s || null;
}

function textNorm(v: string): string | null {
  const s = stripAccents(v.toLowerCase()).replace(/[^a-z0-9 ]/g, ' ').replace(/\s+/g, ' ').trim();
  return s || null;
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * A date of birth as eight digits `YYYYMMDD`. Accepts `YYYYMMDD`, ISO `YYYY-MM-DD` and the UK's
 * `DD/MM/YYYY`. A date with a plausible shape but an impossible day (a typo such as 19560931) is
 * kept as digits: the comparison can still see that it is one keystroke from the right date.
 */
export function normaliseDob(v: string): string | null {
  const s = v.trim();
  let m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(s);
  if (m) return `${m[1]}${m[2]}${m[3]}`;
  m = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(s);
  if (m) return `${m[3]}${m[2]!.padStart(2, '0')}${m[1]!.padStart(2, '0')}`;
  return null;
}

/** Whether eight digits are a real calendar date (used by field detection, not by comparison). */
export function isCalendarDate(d: string): boolean {
  const y = Number(d.slice(0, 4));
  const mo = Number(d.slice(4, 6));
  const day = Number(d.slice(6, 8));
  return y >= 1800 && y <= 2100 && mo >= 1 && mo <= 12 && day >= 1 && day <= DAYS_IN_MONTH[mo - 1]!;
}

/** Normalises one value of a field kind; null when nothing comparable is left. */
export function normalise(kind: FieldKind, v: string | null): string | null {
  if (v === null) return null;
  switch (kind) {
    case 'given_name':
    case 'surname':
    case 'full_name':
      return nameNorm(v);
    case 'dob':
      return normaliseDob(v);
    case 'postcode': {
      const s = v.toUpperCase().replace(/[^A-Z0-9]/g, '');
      return s || null;
    }
    case 'house_number': {
      const s = v.toLowerCase().replace(/[^a-z0-9]/g, '');
      return s || null;
    }
    case 'email': {
      const s = v.trim().toLowerCase();
      return s.includes('@') ? s : null;
    }
    case 'identifier': {
      const s = v.toUpperCase().replace(/[^A-Z0-9]/g, '');
      return s || null;
    }
    case 'sex': {
      const s = v.trim().toLowerCase();
      return s ? s[0]! : null;
    }
    case 'street':
    case 'address':
    case 'locality':
      return textNorm(v);
  }
}

/**
 * The outward code of a UK postcode (`LS1 4AB` -> `LS1`): the postcode district. Other countries'
 * short numeric postcodes have no such part and yield null.
 */
export function postcodeOutward(p: string): string | null {
  return /^[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}$/.test(p) ? p.slice(0, -3) : null;
}

/** A derived blocking key, e.g. `surname:dm` or `dob:year`; `kind` alone is the value itself. */
export function derive(kind: FieldKind, transform: string | undefined, v: string | null): string | null {
  if (v === null) return null;
  switch (transform) {
    case undefined:
      return v;
    case 'dm': {
      const c = doubleMetaphone(v.replace(/ /g, ''));
      return c || null;
    }
    case 'first':
      return v[0] ?? null;
    case 'year':
      return kind === 'dob' ? v.slice(0, 4) : null;
    case 'monthday':
      return kind === 'dob' ? v.slice(4, 8) : null;
    case 'yearmonth':
      return kind === 'dob' ? v.slice(0, 6) : null;
    case 'yearday':
      // The day kept with the year: a typo or a swap in the month leaves both.
      return kind === 'dob' ? v.slice(0, 4) + v.slice(6, 8) : null;
    case 'outward':
      return kind === 'postcode' ? postcodeOutward(v) : null;
    case 'sector':
      // The postcode sector (outward code and the inward code's digit, `LS1 4`): a few thousand
      // addresses, a useful block when the unit's last letters are mistyped.
      return kind === 'postcode' && postcodeOutward(v) !== null ? v.slice(0, -2) : null;
    case 'local':
      return kind === 'email' ? v.split('@')[0] || null : null;
    default: {
      const prefix = /^prefix(\d+)$/.exec(transform);
      if (prefix) return v.length >= Number(prefix[1]) ? v.slice(0, Number(prefix[1])) : null;
      throw new Error(`unknown blocking transform ${transform}`);
    }
  }
}

export const TRANSFORMS = ['dm', 'first', 'year', 'monthday', 'yearmonth', 'yearday', 'outward', 'sector', 'local', 'prefixN'] as const;
