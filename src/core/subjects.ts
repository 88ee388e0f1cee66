/**
 * @module core/subjects
 * Identifiers of the subjects the demo registries hold (people, addresses, companies), shared by
 * every part that names one. Each has a letter prefix and an ISO/IEC 7064
 * MOD 11-2 check character (the scheme ORCID uses), so a mistyped digit or a swap of two adjacent
 * digits is caught, and none can be mistaken for a real UK number: a National Insurance number is
 * two letters, six digits and a letter A-D; an NHS number is ten digits; a UPRN is up to twelve
 * digits; a Companies House number is eight characters. Ours always contain dashes and a prefix
 * none of those use.
 *
 * - person (population register): `P-123456789-C` (9 digits)
 * - address (address register):   `A-123456789-C`
 * - company (business register):  `C-12345678-C` (8 digits)
 * where `C` is 0-9 or X.
 */
import { OnceOnlyError } from './errors.ts';

export type IdKind = 'person' | 'address' | 'company';

const SHAPES: Record<IdKind, { prefix: string; digits: number }> = {
  person: { prefix: 'P', digits: 9 },
  address: { prefix: 'A', digits: 9 },
  company: { prefix: 'C', digits: 8 },
};

/** ISO/IEC 7064 MOD 11-2 check character for a string of digits. */
export function mod11_2(digits: string): string {
  let total = 0;
  for (const ch of digits) total = ((total + Number(ch)) * 2) % 11;
  const check = (12 - total) % 11;
  return check === 10 ? 'X' : String(check);
}

/** Makes the identifier of kind `kind` for sequence number `n` (0 <= n < 10^digits). */
export function makeId(kind: IdKind, n: number): string {
  const { prefix, digits } = SHAPES[kind];
  if (!Number.isInteger(n) || n < 0 || n >= 10 ** digits) throw new RangeError(`${kind} number out of range: ${n}`);
  const body = String(n).padStart(digits, '0');
  return `${prefix}-${body}-${mod11_2(body)}`;
}

/** A human description of the expected shape, for error messages. */
export function idShape(kind: IdKind): string {
  const { prefix, digits } = SHAPES[kind];
  return `${prefix}-${'9'.repeat(digits)}-C: "${prefix}-", ${digits} digits, "-", and an ISO 7064 MOD 11-2 check character (0-9 or X)`;
}

/** True when `text` is a well-formed identifier of `kind` with a correct check character. */
export function isValidId(kind: IdKind, text: unknown): text is string {
  if (typeof text !== 'string') return false;
  const { prefix, digits } = SHAPES[kind];
  const m = new RegExp(`^${prefix}-(\\d{${digits}})-([0-9X])$`).exec(text);
  return m !== null && mod11_2(m[1]!) === m[2];
}

/**
 * Returns `text` if it is a valid identifier of `kind`; otherwise throws `invalid_identifier`
 * that says whether the shape or only the check character was wrong.
 */
export function parseId(kind: IdKind, text: unknown, field: string): string {
  if (isValidId(kind, text)) return text;
  const { prefix, digits } = SHAPES[kind];
  const shapeOk = typeof text === 'string' && new RegExp(`^${prefix}-\\d{${digits}}-[0-9X]$`).test(text);
  throw new OnceOnlyError(
    'invalid_identifier',
    shapeOk ? `${field}: the check character is wrong` : `${field} is not a ${kind} identifier`,
    { field, expected: idShape(kind), reason: shapeOk ? 'check-digit' : 'format' },
  );
}
