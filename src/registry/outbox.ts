/**
 * @module registry/outbox
 * The register's side of Tell Us Once: every change and correction writes its event into
 * `event_outbox` in the change's own transaction (the transactional outbox pattern), and the
 * register's gateway reads them in order (`GET /events?after=SEQ`), waiting for new ones
 * (long poll) so that a change is on its way within milliseconds of its commit.
 *
 * `seq` comes from a counter row that the change's transaction updates first, so it holds the
 * row lock until it commits: events commit in `seq` order on PostgreSQL too, and a reader that
 * asks for `seq > N` can never skip one that was still in flight. (With an auto-increment key, a
 * transaction that took seq 7 but commits after one that took seq 8 would be missed by a reader
 * that already moved past 8.)
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { OnceOnlyError } from '../core/errors.ts';
import { isSubsystemId, memberOfId, splitId } from '../core/ids.ts';
import type { Database } from '../store/schema.ts';
import type { Db } from './facts.ts';
import type { Envelope } from './service.ts';

/** An event as the register's gateway reads it. */
export interface OutboxEvent {
  seq: number;
  id: string;
  registry: string;
  subject: string;
  changeId: string;
  type: string;
  effectiveDate: string;
  recordedAt: string;
  /** The items the change wrote. */
  items: string[];
  /** Member or subsystem ids the person chose to tell; absent: every entitled subscriber. */
  notify?: string[];
  /**
   * With `values=1`: the envelopes of `items` as the change recorded them (valid at
   * `effectiveDate`, as known at `recordedAt`), so the gateway needs no read per event.
   */
  values?: Record<string, Envelope>;
}

/** Most events one read returns. */
export const MAX_EVENTS_PAGE = 500;
/** Longest a reader may wait for new events, seconds. */
export const MAX_WAIT_SECONDS = 30;

/**
 * The person's choice of whom to tell (`notify` in a change request): omitted or `"all"` for
 * every entitled subscriber, or `{"only": [ids]}` for a chosen subset of them (member ids
 * `INSTANCE/CLASS/MEMBER` or subsystem ids). The choice narrows, never widens: an organisation
 * chosen but not entitled is told nothing.
 */
export function parseNotify(v: unknown): string[] | undefined {
  if (v === undefined || v === 'all') return undefined;
  const expected = '"all", or {"only": ["INSTANCE/CLASS/MEMBER" or a subsystem id, …]}';
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OnceOnlyError('invalid_request', 'body.notify must say whom to tell', { field: 'body.notify', expected });
  const o = v as Record<string, unknown>;
  const extra = Object.keys(o).find((k) => k !== 'only');
  if (extra !== undefined) throw new OnceOnlyError('invalid_request', `body.notify has an unknown key ${JSON.stringify(extra.slice(0, 40))}`, { field: `body.notify.${extra.slice(0, 40)}`, expected });
  const only = o['only'];
  if (!Array.isArray(only) || only.length > 100) throw new OnceOnlyError('invalid_request', 'body.notify.only must be a list of at most 100 ids', { field: 'body.notify.only', expected });
  const ids = only.map((x, i) => {
    if (typeof x !== 'string') throw new OnceOnlyError('invalid_request', `body.notify.only[${i}] must be an id`, { field: `body.notify.only[${i}]`, expected });
    // A member (three parts) or a subsystem (four), each part checked.
    splitId(x, [3, 4], `body.notify.only[${i}]`, 'INSTANCE/CLASS/MEMBER[/SUBSYSTEM]');
    return x;
  });
  return [...new Set(ids)];
}

/** Whether the person's choice lets an event reach subsystem `client`. */
export function chosen(notify: readonly string[] | undefined, client: string): boolean {
  if (notify === undefined) return true;
  const member = memberOfId(client);
  return notify.some((n) => n === client || (!isSubsystemId(n) && n === member));
}

/** Wakes the register's readers when an event commits (in this process; others poll). */
const committed = new EventEmitter();
committed.setMaxListeners(0);

/** Tells this process's readers that `registry` committed an event (call after the commit). */
export function announce(registry: string): void {
  committed.emit(registry);
}

/**
 * Writes a change's event into the outbox, inside the change's transaction (any time in it: the
 * counter update is what orders it). {@link announce} it once the transaction has committed.
 */
export async function writeEvent(trx: Db, e: Omit<OutboxEvent, 'seq' | 'id'>): Promise<OutboxEvent> {
  const bumped = await trx.updateTable('event_counter').set((eb) => ({ seq: eb('seq', '+', 1) })).where('registry', '=', e.registry).returning('seq').executeTakeFirst();
  let seq: number;
  if (bumped) seq = Number(bumped.seq);
  else {
    // First event of this register: the insert takes the row; a concurrent first insert fails
    // the unique key and its transaction retries with the row there.
    await trx.insertInto('event_counter').values({ registry: e.registry, seq: 1 }).execute();
    seq = 1;
  }
  const event: OutboxEvent = { ...e, seq, id: randomUUID() };
  await trx
    .insertInto('event_outbox')
    .values({ registry: e.registry, seq, id: event.id, subject: e.subject, change_id: e.changeId, type: e.type, effective_date: e.effectiveDate, recorded_at: e.recordedAt, items: JSON.stringify(e.items), notify: e.notify ? JSON.stringify(e.notify) : null })
    .execute();
  return event;
}

/** The register's latest event number (0 before the first). */
export async function latestSeq(db: Kysely<Database>, registry: string): Promise<number> {
  const r = await db.selectFrom('event_counter').select('seq').where('registry', '=', registry).executeTakeFirst();
  return r ? Number(r.seq) : 0;
}

async function page(db: Kysely<Database>, registry: string, after: number, limit: number): Promise<OutboxEvent[]> {
  const rows = await db.selectFrom('event_outbox').selectAll().where('registry', '=', registry).where('seq', '>', after).orderBy('seq').limit(limit).execute();
  return rows.map((r) => ({
    seq: Number(r.seq),
    id: r.id,
    registry: r.registry,
    subject: r.subject,
    changeId: r.change_id,
    type: r.type,
    effectiveDate: r.effective_date,
    recordedAt: r.recorded_at,
    items: JSON.parse(r.items) as string[],
    ...(r.notify !== null ? { notify: JSON.parse(r.notify) as string[] } : {}),
  }));
}

/**
 * The events after `after`, oldest first, at most `limit`; with `waitMs`, waits (up to that long)
 * for the first one when there is none yet. Wakes on commits in this process and re-reads every
 * second for commits by other processes sharing the store.
 */
export async function readEvents(db: Kysely<Database>, registry: string, after: number, limit: number, waitMs = 0, signal?: AbortSignal): Promise<OutboxEvent[]> {
  const first = await page(db, registry, after, limit);
  if (first.length > 0 || waitMs <= 0) return first;
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    // A server shutting down (or a caller gone) ends the wait with nothing: the store may be closing.
    if (signal?.aborted) return [];
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        committed.off(registry, done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(1000, Math.max(0, deadline - Date.now())));
      committed.on(registry, done);
      signal?.addEventListener('abort', done);
    });
    if (signal?.aborted) return [];
    const got = await page(db, registry, after, limit);
    if (got.length > 0) return got;
  }
  return [];
}
