/**
 * @module gateway/release
 * The registry contract as the provider gateway enforces it at the border (issue 10, holes 1 and 3):
 *
 * - what a request to a registry service may ask: `GET /{id}?items=a,b[&asAt=DATE][&knownAt=INSTANT]`
 *   or `GET /{id}/exists`, each parameter at most once and no other, so the gateway and the registry
 *   can never read one query two ways (HTTP parameter pollution, PR-REST §4.2);
 * - what may come back: exactly the documented answer (docs/registries.md), its id and times the ones
 *   asked for, its items exactly the items asked for, each in the envelope
 *   `{value, source, lastUpdated, classification[, unavailable, reason]}` from this provider; or a
 *   documented registry error. Anything else is withheld whole and logged as a refusal.
 */
import { Type } from 'typebox';
import { OnceOnlyError, ERROR_STATUS, type ErrorType } from '../core/errors.ts';
import { isIsoDate } from '../core/dates.ts';
import { matcher } from '../core/schema.ts';
import type { ReadTime } from './access.ts';

/** A registry read as the provider gateway parsed it. */
export interface RegistryRead {
  /** The record id from the path. */
  id: string;
  exists: boolean;
  items: string[];
  /** `asAt` as asked for (verbatim), if any. */
  asAt?: string;
  /** `knownAt` as asked for (verbatim), if any. */
  knownAt?: string;
}

const REGISTRY_PATH = /^\/([^/]+)(\/exists)?$/;
const ITEM_ID = /^[a-z][A-Za-z0-9]*\.[A-Za-z][A-Za-z0-9]*$/;
const INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

function invalid(message: string, field: string, expected: string): OnceOnlyError {
  return new OnceOnlyError('invalid_request', message, { field, expected });
}

/**
 * Parses a registry read: the path and the query, strictly. `today` and `now` decide what is
 * "the present": `asAt` equal to today reads the present and needs no history grant.
 */
export function parseRegistryRead(servicePath: string, query: string): RegistryRead {
  const m = REGISTRY_PATH.exec(servicePath);
  if (!m) throw new OnceOnlyError('unknown_service', 'the exchange offers only /{id}?items=… and /{id}/exists on a registry service', { field: 'path', expected: '/{id} or /{id}/exists' });
  let id: string;
  try {
    id = decodeURIComponent(m[1]!);
  } catch {
    throw invalid('the record id is not valid percent-encoded UTF-8', 'path', 'a record id');
  }
  const exists = m[2] !== undefined;
  const params = new URLSearchParams(query);
  const seen = new Map<string, number>();
  for (const k of params.keys()) seen.set(k, (seen.get(k) ?? 0) + 1);
  const allowed = exists ? [] : ['items', 'asAt', 'knownAt'];
  for (const [k, n] of seen) {
    if (!allowed.includes(k)) throw invalid(`the query parameter ${JSON.stringify(k.slice(0, 40))} is not part of the registry contract`, `query.${k.slice(0, 40)}`, exists ? 'no query on /exists' : 'items, and optionally asAt and knownAt');
    if (n > 1) throw invalid(`the query parameter ${k} is given ${n} times`, `query.${k}`, `${k} once`);
  }
  if (exists) return { id, exists, items: [] };
  const rawItems = params.get('items');
  if (rawItems === null || rawItems.trim() === '') throw invalid('items is required', 'query.items', 'a comma-separated list of catalogue item ids');
  const items = rawItems.split(',').map((s) => s.trim());
  if (items.some((i) => !ITEM_ID.test(i))) throw invalid('items holds something that is not an item id', 'query.items', 'catalogue item ids such as person.givenName, separated by commas');
  if (new Set(items).size !== items.length) throw invalid('items names an item twice', 'query.items', 'each item once');
  const out: RegistryRead = { id, exists, items };
  const asAt = params.get('asAt');
  if (asAt !== null) {
    if (!isIsoDate(asAt)) throw new OnceOnlyError('invalid_date', 'asAt is not a calendar date', { field: 'query.asAt', expected: 'YYYY-MM-DD' });
    out.asAt = asAt;
  }
  const knownAt = params.get('knownAt');
  if (knownAt !== null) {
    if (!INSTANT.test(knownAt) || Number.isNaN(Date.parse(knownAt))) throw new OnceOnlyError('invalid_date', 'knownAt is not an instant', { field: 'query.knownAt', expected: 'an ISO 8601 instant, e.g. 2024-01-31T12:00:00Z' });
    out.knownAt = knownAt;
  }
  return out;
}

/**
 * Which past a read asks for, for the access decision: `asAt` when it is not today, `knownAt`
 * whenever given. A time in the future is refused outright: the future is not history, and a
 * scheduled change is nobody's to read early.
 */
export function readTime(read: RegistryRead, today: string, now: Date): ReadTime | undefined {
  const t: ReadTime = {};
  if (read.asAt !== undefined && read.asAt !== today) {
    if (read.asAt > today) throw new OnceOnlyError('history_not_granted', 'asAt is in the future: only the present, or a past an agreement grants, can be read', { field: 'query.asAt', expected: `a date no later than ${today}`, notGranted: read.items });
    t.asAt = read.asAt;
  }
  if (read.knownAt !== undefined) {
    if (Date.parse(read.knownAt) > now.getTime()) throw new OnceOnlyError('history_not_granted', 'knownAt is in the future', { field: 'query.knownAt', expected: `an instant no later than ${now.toISOString()}`, notGranted: read.items });
    t.knownAt = new Date(Date.parse(read.knownAt)).toISOString();
  }
  return t.asAt !== undefined || t.knownAt !== undefined ? t : undefined;
}

const Envelope = Type.Object(
  {
    value: Type.Unknown(),
    source: Type.String(),
    lastUpdated: Type.Union([Type.String(), Type.Null()]),
    classification: Type.String(),
    unavailable: Type.Optional(Type.Literal(true)),
    reason: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
const isReadAnswer = matcher(Type.Object({ id: Type.String(), asAt: Type.String(), knownAt: Type.Union([Type.String(), Type.Null()]), items: Type.Record(Type.String(), Envelope) }, { additionalProperties: false }));
const isExistsAnswer = matcher(Type.Object({ exists: Type.Boolean() }, { additionalProperties: false }));
const isErrorAnswer = matcher(
  Type.Object(
    {
      type: Type.String(),
      message: Type.String({ maxLength: 500 }),
      detail: Type.Object({ field: Type.Optional(Type.String({ maxLength: 200 })), expected: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }),
    },
    { additionalProperties: false },
  ),
);

/** The refusals a registry may answer a read with, and pass on through the exchange. */
const REGISTRY_ERRORS: ReadonlySet<ErrorType> = new Set(['unknown_subject', 'invalid_identifier', 'invalid_date', 'unknown_item', 'invalid_request']);

function notAllowed(why: string): OnceOnlyError {
  return new OnceOnlyError('response_not_allowed', `the service's answer was withheld: ${why}`);
}

const addDays = (date: string, days: number): string => new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);

/**
 * Checks a registry's answer against the contract before it leaves; throws `response_not_allowed`
 * (nothing is released) when it is anything but the documented answer to exactly this read.
 */
export function checkRegistryAnswer(read: RegistryRead, provider: string, today: string, answer: { status: number; contentType: string; body: Buffer }): void {
  if (!/^application\/json(;\s*charset=utf-8)?$/i.test(answer.contentType.trim())) throw notAllowed('it is not JSON');
  let doc: unknown;
  try {
    doc = JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw notAllowed('it is not JSON');
  }
  if (answer.status >= 400 && answer.status < 500) {
    if (!isErrorAnswer(doc) || !REGISTRY_ERRORS.has(doc.type as ErrorType) || ERROR_STATUS[doc.type as ErrorType] !== answer.status) throw notAllowed('it is not a documented registry refusal');
    return;
  }
  if (answer.status !== 200) throw notAllowed(`status ${answer.status} is not a registry answer`);
  if (read.exists) {
    if (!isExistsAnswer(doc)) throw notAllowed('an existence check answered more than whether the record exists');
    return;
  }
  if (!isReadAnswer(doc)) throw notAllowed('it is not a registry answer {id, asAt, knownAt, items}');
  if (doc.id !== read.id) throw notAllowed('it is about another record');
  // Without asAt the register reads its own today, which may be a day off the gateway's near midnight.
  const asAtOk = read.asAt !== undefined ? doc.asAt === read.asAt : doc.asAt >= addDays(today, -1) && doc.asAt <= addDays(today, 1);
  if (!asAtOk) throw notAllowed('it answers for another date than the one asked for');
  if (read.knownAt === undefined ? doc.knownAt !== null : doc.knownAt === null || Date.parse(doc.knownAt) !== Date.parse(read.knownAt)) throw notAllowed('it answers for another time than the one asked for');
  const released = Object.keys(doc.items);
  if (released.length !== read.items.length || !read.items.every((i) => Object.hasOwn(doc.items, i))) throw notAllowed('it holds other items than the ones asked for and granted');
  for (const env of Object.values(doc.items)) {
    if (env.source !== provider) throw notAllowed('an item names another source than this register');
  }
}
