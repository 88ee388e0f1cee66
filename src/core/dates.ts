/**
 * @module core/dates
 * Calendar dates and instants as the store keeps them: dates as ISO 8601 `YYYY-MM-DD`, instants
 * as UTC `YYYY-MM-DDTHH:mm:ss.sssZ`. Both sort correctly as text, which is what lets one schema
 * work unchanged on SQLite and PostgreSQL.
 */
import { OnceOnlyError } from './errors.ts';

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** True for a real calendar date in `YYYY-MM-DD` form (rejects 2023-02-30). */
export function isIsoDate(text: unknown): text is string {
  if (typeof text !== 'string') return false;
  const m = DATE.exec(text);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1 || mo < 1 || mo > 12 || d < 1) return false;
  const dt = new Date(Date.UTC(y, mo - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === mo - 1 && dt.getUTCDate() === d;
}

/** Returns `text` if it is an ISO calendar date, else throws `invalid_date` naming `field`. */
export function parseIsoDate(text: unknown, field: string): string {
  if (!isIsoDate(text)) {
    throw new OnceOnlyError('invalid_date', `${field} must be a calendar date in the form YYYY-MM-DD`, {
      field,
      expected: 'a real calendar date, YYYY-MM-DD (ISO 8601)',
    });
  }
  return text;
}

/** Parses an ISO 8601 instant (with a zone) into the canonical UTC text form. */
export function parseInstant(text: unknown, field: string): string {
  const t = typeof text === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)
    ? Date.parse(text)
    : Number.NaN;
  if (Number.isNaN(t)) {
    throw new OnceOnlyError('invalid_date', `${field} must be an ISO 8601 date-time with a time zone`, {
      field,
      expected: 'YYYY-MM-DDTHH:mm:ssZ (ISO 8601, with Z or an offset)',
    });
  }
  return new Date(t).toISOString();
}

/** Today's date in UTC, `YYYY-MM-DD`. */
export function today(now: Date = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/** The current instant in canonical form. */
export function nowInstant(now: Date = new Date()): string {
  return now.toISOString();
}
