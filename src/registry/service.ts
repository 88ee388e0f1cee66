/**
 * @module registry/service
 * An authoritative registry as plain business logic: read items of a record as at a date (each
 * in the Myinfo envelope), check existence without releasing data, register records, record
 * changes and corrections. What differs between the population, address and business registers
 * (their items, their kinds of change and the rules on them) comes from a {@link RegistryKind}.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { nowInstant, parseInstant, parseIsoDate, today } from '../core/dates.ts';
import { parseId, type IdKind } from '../core/subjects.ts';
import * as facts from './facts.ts';
import type { Db, FactRow, FactWrite, ReadTime } from './facts.ts';
import { MAX_EVENTS_PAGE, MAX_WAIT_SECONDS, announce, latestSeq, parseNotify, readEvents, writeEvent, type OutboxEvent } from './outbox.ts';

/** The part of the catalogue a registry needs (satisfied by catalogue/Catalogue). */
export interface ItemCatalogue {
  get(id: string): { id: string; classification: string; owner: string } | undefined;
  validateValue(itemId: string, value: unknown, field: string): void;
}

/** Myinfo's envelope around every released value. */
export interface Envelope {
  value: unknown;
  /** The registry subsystem that masters the item. */
  source: string;
  /** When the registry recorded the value (UTC instant), null when unavailable. */
  lastUpdated: string | null;
  classification: string;
  /** Present and true when the registry holds no value for this item at that date. */
  unavailable?: true;
  reason?: 'not-held' | 'not-valid-at-date';
}

/** The answer to a read. */
export interface ReadResult {
  id: string;
  asAt: string;
  knownAt: string | null;
  items: Record<string, Envelope>;
}

/** Context handed to a registry kind's rules. */
export interface RuleContext {
  db: Db;
  registry: RegistryService;
  subject: string;
  today: string;
  /** Current-belief facts of the subject valid at `date`. */
  at(items: readonly string[], date: string): Promise<Map<string, FactRow>>;
}

/** A kind of change a registry accepts: validates the request and says which items it sets. */
export interface ChangeRule {
  /** Human description for OpenAPI and errors. */
  description: string;
  /** Every item a change of this kind may write: what its event can carry (Tell Us Once). */
  carries: readonly string[];
  apply(ctx: RuleContext, body: Record<string, unknown>): Promise<{ effectiveDate: string; writes: FactWrite[] }>;
}

/** What makes a registry a population, address or business register. */
export interface RegistryKind {
  /** Short name: `population`, `addresses`, `companies`. */
  name: string;
  idKind: IdKind;
  /** URL collection segment, e.g. `people`. */
  collection: string;
  /** Items that are derived at read time rather than stored (e.g. the record's own id). */
  derive?(ctx: { service: RegistryService; db: Db; id: string; time: ReadTime }, item: string, stored: Map<string, FactRow>): Promise<{ value: unknown; recordedAt: string } | null | undefined>;
  /** Items whose stored facts are needed to derive `item` (default: the item itself). */
  storedFor?(item: string): string[];
  /** Validates a registration and returns the new record's id, start date and first facts. */
  register(ctx: { db: Db; service: RegistryService; today: string }, body: Record<string, unknown>): Promise<{ id: string; start: string; writes: (FactWrite & { to?: string | null })[] }>;
  changes: Record<string, ChangeRule>;
}

export interface RegistryServiceOptions {
  /** This registry's subsystem id, e.g. `UK/GOV/GRO/population`. */
  subsystem: string;
  kind: RegistryKind;
  db: Kysely<Database>;
  catalogue: ItemCatalogue;
  /** Other registries this one resolves references through (addresses for people and companies). */
  peers?: Record<string, RegistryService>;
  /** Clock, for tests. */
  now?: () => Date;
}

/** Normalises a date or instant request parameter; `undefined` means "not given". */
function optionalDate(v: unknown, field: string): string | undefined {
  return v === undefined || v === '' ? undefined : parseIsoDate(v, field);
}

/** One registry: reads, existence checks, registrations, changes and corrections. */
export class RegistryService {
  readonly subsystem: string;
  readonly kind: RegistryKind;
  readonly db: Kysely<Database>;
  readonly catalogue: ItemCatalogue;
  readonly peers: Record<string, RegistryService>;
  private readonly now: () => Date;

  constructor(opts: RegistryServiceOptions) {
    this.subsystem = opts.subsystem;
    this.kind = opts.kind;
    this.db = opts.db;
    this.catalogue = opts.catalogue;
    this.peers = opts.peers ?? {};
    this.now = opts.now ?? (() => new Date());
  }

  /** Today's date by this registry's clock. */
  today(): string {
    return today(this.now());
  }

  /** Validates an id of this registry's kind, naming `field` when it is wrong. */
  parseId(id: unknown, field = 'params.id'): string {
    return parseId(this.kind.idKind, id, field);
  }

  /** Validates a list of item ids: each must be in the catalogue and mastered here. */
  parseItems(items: unknown, field = 'query.items'): string[] {
    const list = typeof items === 'string' ? items.split(',').map((s) => s.trim()).filter((s) => s !== '') : Array.isArray(items) ? items : undefined;
    if (!list || list.length === 0) {
      throw new OnceOnlyError('invalid_request', `${field} must list the items wanted`, {
        field,
        expected: 'a comma-separated list of catalogue item ids, e.g. person.givenName,person.birthDate',
      });
    }
    if (list.length > 64) throw new OnceOnlyError('invalid_request', `${field} lists too many items`, { field, expected: 'at most 64 items' });
    const seen = new Set<string>();
    for (const it of list) {
      if (typeof it !== 'string') throw new OnceOnlyError('invalid_request', `${field} must contain strings`, { field, expected: 'item ids' });
      const entry = this.catalogue.get(it);
      if (!entry) {
        throw new OnceOnlyError('unknown_item', `unknown item ${JSON.stringify(it.slice(0, 100))}`, { field, item: it.slice(0, 100), expected: 'an item id from the catalogue' });
      }
      if (entry.owner !== this.subsystem) {
        throw new OnceOnlyError('unknown_item', `${it} is not mastered by this registry but by ${entry.owner}`, { field, item: it, owner: entry.owner, expected: `an item mastered by ${this.subsystem}` });
      }
      seen.add(it);
    }
    return [...seen];
  }

  /** Reads `items` of record `id` valid at `asAt` (default today), as known at `knownAt` (default now). */
  async read(idIn: unknown, itemsIn: unknown, opts: { asAt?: unknown; knownAt?: unknown } = {}): Promise<ReadResult> {
    const id = this.parseId(idIn);
    const items = this.parseItems(itemsIn);
    const asAt = optionalDate(opts.asAt, 'query.asAt') ?? this.today();
    const knownAt = opts.knownAt === undefined || opts.knownAt === '' ? null : parseInstant(opts.knownAt, 'query.knownAt');
    const time: ReadTime = { asAt, knownAt };
    const stored = new Set<string>();
    for (const it of items) for (const s of this.kind.storedFor?.(it) ?? [it]) stored.add(s);
    const rows = await facts.factsAt(this.db, this.subsystem, id, [...stored], time);
    // No facts at all can mean an unknown record or a date outside its life: only then ask.
    if (rows.length === 0 && !(await facts.subjectExists(this.db, this.subsystem, id))) {
      throw new OnceOnlyError('unknown_subject', 'no record with this id', { field: 'params.id', expected: 'the id of a record in this registry' });
    }
    const byItem = new Map(rows.map((r) => [r.item, r]));
    const anyValid = rows.length > 0;
    const out: Record<string, Envelope> = {};
    for (const it of items) {
      const classification = this.catalogue.get(it)?.classification ?? 'personal';
      const derived = await this.kind.derive?.({ service: this, db: this.db, id, time }, it, byItem);
      const found = derived !== undefined ? derived : byItem.has(it) ? { value: byItem.get(it)!.value, recordedAt: byItem.get(it)!.recordedAt } : null;
      out[it] = found
        ? { value: found.value, source: this.subsystem, lastUpdated: found.recordedAt, classification }
        : { value: null, source: this.subsystem, lastUpdated: null, classification, unavailable: true, reason: anyValid ? 'not-held' : 'not-valid-at-date' };
    }
    return { id, asAt, knownAt, items: out };
  }

  /** Answers whether a record exists, releasing nothing else. */
  async exists(idIn: unknown): Promise<{ exists: boolean }> {
    const id = this.parseId(idIn);
    return { exists: await facts.subjectExists(this.db, this.subsystem, id) };
  }

  /** The complete bitemporal history of one item of a record, superseded beliefs included. */
  async history(idIn: unknown, itemIn: unknown): Promise<{ id: string; item: string; facts: FactRow[] }> {
    const id = this.parseId(idIn);
    const [item] = this.parseItems(typeof itemIn === 'string' ? itemIn : undefined, 'query.item') as [string];
    if (!(await facts.subjectExists(this.db, this.subsystem, id))) {
      throw new OnceOnlyError('unknown_subject', 'no record with this id', { field: 'params.id', expected: 'the id of a record in this registry' });
    }
    return { id, item, facts: await facts.fullHistory(this.db, this.subsystem, id, item) };
  }

  private ruleContext(db: Db, subject: string): RuleContext {
    return {
      db,
      registry: this,
      subject,
      today: this.today(),
      at: async (items, date) => {
        const rows = await facts.factsAt(db, this.subsystem, subject, items, { asAt: date, knownAt: null });
        return new Map(rows.map((r) => [r.item, r]));
      },
    };
  }

  // Request fields are named after the item's last segment (`person.givenName` comes from
  // `body.givenName`), which is how every registration and change body is shaped.
  private validateWrites(writes: readonly FactWrite[], fieldPrefix: string): void {
    for (const w of writes) this.catalogue.validateValue(w.item, w.value, `${fieldPrefix}.${w.item.slice(w.item.lastIndexOf('.') + 1)}`);
  }

  /**
   * The register's change events after `after` (registry/outbox), for its gateway: oldest first,
   * at most `limit`, waiting up to `waitMs` for the first when there is none.
   */
  async events(after: unknown, limit: unknown, waitMs: unknown, signal?: AbortSignal, values?: unknown): Promise<OutboxEvent[]> {
    const num = (v: unknown, field: string, dflt: number, max: number): number => {
      if (v === undefined) return dflt;
      const n = typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : Number.NaN;
      if (!Number.isSafeInteger(n) || n > max) throw new OnceOnlyError('invalid_request', `${field} must be a whole number from 0 to ${max}`, { field, expected: `0..${max}` });
      return n;
    };
    if (values !== undefined && values !== '0' && values !== '1') throw new OnceOnlyError('invalid_request', 'query.values must be 0 or 1', { field: 'query.values', expected: '0 or 1' });
    const events = await readEvents(this.db, this.subsystem, num(after, 'query.after', 0, Number.MAX_SAFE_INTEGER), Math.max(1, num(limit, 'query.limit', 100, MAX_EVENTS_PAGE)), num(waitMs, 'query.wait', 0, MAX_WAIT_SECONDS) * 1000, signal);
    if (values !== '1') return events;
    // The values each change recorded, read as the gateway would read them one by one: the same
    // envelopes however late it asks, since later changes and corrections are not yet known then.
    const out: OutboxEvent[] = [];
    for (const e of events) out.push({ ...e, values: (await this.read(e.subject, e.items, { asAt: e.effectiveDate, knownAt: e.recordedAt })).items });
    return out;
  }

  /** The latest event's sequence number (0 before the first). */
  latestEvent(): Promise<number> {
    return latestSeq(this.db, this.subsystem);
  }

  /**
   * The kinds of change this register announces and the items each can carry. (A correction is
   * announced as `correction` to the subscribers of every kind that carries the corrected item.)
   */
  eventTypes(): Record<string, { description: string; items: string[] }> {
    const out: Record<string, { description: string; items: string[] }> = {};
    for (const [k, r] of Object.entries(this.kind.changes)) out[k] = { description: r.description, items: [...r.carries] };
    return out;
  }

  /** Registers a new record (birth, new address, incorporation) in one transaction. */
  async register(bodyIn: unknown): Promise<{ id: string; changeId: string }> {
    const body = requireObject(bodyIn, 'body');
    const changeId = randomUUID();
    return this.db.transaction().execute(async (trx) => {
      const r = await this.kind.register({ db: trx, service: this, today: this.today() }, body);
      this.validateWrites(r.writes, 'body');
      const recordedAt = nowInstant(this.now());
      await facts.insertSubject(trx, this.subsystem, r.id, recordedAt);
      await facts.insertInitial(trx, { registry: this.subsystem, subject: r.id, changeId, recordedAt }, r.writes);
      await facts.journal(trx, { id: changeId, registry: this.subsystem, subject: r.id, type: 'register', effective_date: r.start, recorded_at: recordedAt, payload: JSON.stringify(body) });
      return { id: r.id, changeId };
    });
  }

  /** Records a change in the world (a move, a new name, a death) in one transaction. */
  async change(idIn: unknown, bodyIn: unknown): Promise<{ id: string; changeId: string; effectiveDate: string; items: string[]; eventId: string }> {
    const id = this.parseId(idIn);
    const body = requireObject(bodyIn, 'body');
    const type = body['type'];
    const rule = typeof type === 'string' && Object.hasOwn(this.kind.changes, type) ? this.kind.changes[type] : undefined;
    if (!rule) {
      throw new OnceOnlyError('invalid_change', 'unknown kind of change', { field: 'body.type', expected: `one of ${Object.keys(this.kind.changes).join(', ')}` });
    }
    const notify = parseNotify(body['notify']);
    const changeId = randomUUID();
    const done = await this.db.transaction().execute(async (trx) => {
      if (!(await facts.subjectExists(trx, this.subsystem, id))) {
        throw new OnceOnlyError('unknown_subject', 'no record with this id', { field: 'params.id', expected: 'the id of a record in this registry' });
      }
      const { effectiveDate, writes } = await rule.apply(this.ruleContext(trx, id), body);
      this.validateWrites(writes, 'body');
      const recordedAt = nowInstant(this.now());
      const ctx = { registry: this.subsystem, subject: id, changeId, recordedAt };
      for (const w of writes) await facts.applyChange(trx, ctx, w);
      await facts.journal(trx, { id: changeId, registry: this.subsystem, subject: id, type: type as string, effective_date: effectiveDate, recorded_at: recordedAt, payload: JSON.stringify(body) });
      const items = writes.map((w) => w.item);
      // Tell Us Once: the event commits with the change or not at all (registry/outbox).
      const event = await writeEvent(trx, { registry: this.subsystem, subject: id, changeId, type: type as string, effectiveDate, recordedAt, items, ...(notify ? { notify } : {}) });
      return { id, changeId, effectiveDate, items, eventId: event.id };
    });
    announce(this.subsystem);
    return done;
  }

  /**
   * Corrects a value that was recorded wrongly (a typo in a name, a wrong date of birth). Unlike a
   * change, the world did not change: the period keeps its dates and the old belief is kept,
   * marked superseded, so a correction never masquerades as an event.
   */
  async correct(idIn: unknown, bodyIn: unknown): Promise<{ id: string; changeId: string; item: string; eventId: string }> {
    const id = this.parseId(idIn);
    const body = requireObject(bodyIn, 'body');
    const [item] = this.parseItems(typeof body['item'] === 'string' ? [body['item']] : undefined, 'body.item') as [string];
    if (!Object.hasOwn(body, 'value')) throw new OnceOnlyError('invalid_request', 'body.value is required', { field: 'body.value', expected: 'the corrected value' });
    const reason = body['reason'];
    if (typeof reason !== 'string' || reason.trim() === '' || reason.length > 500) {
      throw new OnceOnlyError('invalid_request', 'body.reason must say why the value is corrected', { field: 'body.reason', expected: 'a non-empty string of at most 500 characters' });
    }
    if (this.kind.storedFor && this.kind.storedFor(item).join() !== item) {
      throw new OnceOnlyError('invalid_change', `${item} is derived from other items and cannot be corrected directly`, { field: 'body.item', expected: 'a stored item' });
    }
    const notify = parseNotify(body['notify']);
    const changeId = randomUUID();
    const done = await this.db.transaction().execute(async (trx) => {
      if (!(await facts.subjectExists(trx, this.subsystem, id))) {
        throw new OnceOnlyError('unknown_subject', 'no record with this id', { field: 'params.id', expected: 'the id of a record in this registry' });
      }
      const date = optionalDate(body['effectiveDate'], 'body.effectiveDate') ?? this.today();
      this.catalogue.validateValue(item, body['value'], 'body.value');
      const recordedAt = nowInstant(this.now());
      await facts.applyCorrection(trx, { registry: this.subsystem, subject: id, changeId, recordedAt }, { item, value: body['value'], from: date });
      await facts.journal(trx, { id: changeId, registry: this.subsystem, subject: id, type: 'correction', effective_date: date, recorded_at: recordedAt, payload: JSON.stringify(body) });
      const event = await writeEvent(trx, { registry: this.subsystem, subject: id, changeId, type: 'correction', effectiveDate: date, recordedAt, items: [item], ...(notify ? { notify } : {}) });
      return { id, changeId, item, eventId: event.id };
    });
    announce(this.subsystem);
    return done;
  }
}

/** Requires a JSON object (not an array, not null), naming `field` otherwise. */
export function requireObject(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new OnceOnlyError('invalid_request', `${field} must be a JSON object`, { field, expected: 'a JSON object' });
  }
  return v as Record<string, unknown>;
}

/** Reads a required string field of a request body. */
export function requireString(body: Record<string, unknown>, key: string, max = 200): string {
  const v = body[key];
  if (typeof v !== 'string' || v.trim() === '' || v.length > max) {
    throw new OnceOnlyError('invalid_request', `body.${key} is required`, { field: `body.${key}`, expected: `a non-empty string of at most ${max} characters` });
  }
  return v.trim();
}

/** Reads a required date field, refusing dates after `today` (registries record what has happened). */
export function requirePastDate(body: Record<string, unknown>, key: string, todayDate: string): string {
  const d = parseIsoDate(body[key], `body.${key}`);
  if (d > todayDate) {
    throw new OnceOnlyError('invalid_change', `body.${key} is in the future`, { field: `body.${key}`, expected: `a date on or before ${todayDate}` });
  }
  return d;
}
