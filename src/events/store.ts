/**
 * @module events/store
 * The provider gateway's Tell Us Once tables (migration 0010), behind one small repository:
 * subscriptions and their interest lists, each subscription's queue of events (its pull feed and
 * its push deliveries, dead letters included), how far each register's outbox was relayed, and
 * the dispatch lease. Only this folder touches these tables (test/architecture.test.ts).
 */
import { GroupCommit } from '../core/batch.ts';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { OnceOnlyError } from '../core/errors.ts';
import type { Database, EventQueueTable, EventSubscriptionTable } from '../store/schema.ts';

/** A subscription as the gateway holds it. */
export interface Subscription {
  id: string;
  provider: string;
  client: string;
  events: string[];
  agreement: string;
  purpose: string;
  mode: 'push' | 'pull';
  status: 'active' | 'removed';
  createdAt: string;
  removedAt: string | null;
  /** Events up to this outbox position were before it: not delivered to it. */
  fromSeq: number;
}

/** One event queued for one subscription. */
export interface QueuedEvent {
  subscription: string;
  seq: number;
  eventId: string;
  subject: string;
  type: string;
  /** The event document (JSON text), granted items only. */
  payload: string;
  createdAt: string;
  state: 'pending' | 'delivered' | 'dead' | 'refused';
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  deliveredAt: string | null;
}

/** What the relay writes for one subscription. */
export interface NewQueued {
  subscription: string;
  eventId: string;
  subject: string;
  type: string;
  /** Builds the payload once the subscription's sequence number is known. */
  payload: (seq: number) => string;
}

type Reader = Kysely<Database> | Transaction<Database>;

function toSubscription(r: Selectable<EventSubscriptionTable>): Subscription {
  return {
    id: r.id, provider: r.provider, client: r.client, events: JSON.parse(r.events) as string[], agreement: r.agreement, purpose: r.purpose,
    mode: r.mode, status: r.status, createdAt: r.created_at, removedAt: r.removed_at, fromSeq: Number(r.from_seq),
  };
}

function toQueued(r: Selectable<EventQueueTable>): QueuedEvent {
  return {
    subscription: r.subscription, seq: Number(r.seq), eventId: r.event_id, subject: r.subject, type: r.type, payload: r.payload, createdAt: r.created_at,
    state: r.state, attempts: Number(r.attempts), nextAttemptAt: r.next_attempt_at, lastError: r.last_error, deliveredAt: r.delivered_at,
  };
}

export class EventStore {
  readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.db = db;
  }

  async createSubscription(s: Omit<Subscription, 'status' | 'removedAt'>): Promise<Subscription> {
    await this.db
      .insertInto('event_subscription')
      .values({ id: s.id, provider: s.provider, client: s.client, events: JSON.stringify(s.events), agreement: s.agreement, purpose: s.purpose, mode: s.mode, status: 'active', created_at: s.createdAt, removed_at: null, from_seq: s.fromSeq })
      .execute();
    return { ...s, status: 'active', removedAt: null };
  }

  async subscription(id: string, db: Reader = this.db): Promise<Subscription | undefined> {
    const r = await db.selectFrom('event_subscription').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toSubscription(r);
  }

  /** Subscriptions by provider and/or client, newest first. */
  async subscriptions(q: { provider?: string; client?: string; status?: 'active' | 'removed' }): Promise<Subscription[]> {
    let b = this.db.selectFrom('event_subscription').selectAll();
    if (q.provider !== undefined) b = b.where('provider', '=', q.provider);
    if (q.client !== undefined) b = b.where('client', '=', q.client);
    if (q.status !== undefined) b = b.where('status', '=', q.status);
    return (await b.orderBy('created_at', 'desc').orderBy('id').execute()).map(toSubscription);
  }

  /** Ends a subscription; its undelivered events are refused (never delivered after it ended). */
  async removeSubscription(id: string, at: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable('event_subscription').set({ status: 'removed', removed_at: at }).where('id', '=', id).where('status', '=', 'active').execute();
      await trx.updateTable('event_queue').set({ state: 'refused', last_error: 'the subscription was removed' }).where('subscription', '=', id).where('state', '=', 'pending').execute();
      await trx.deleteFrom('event_interest').where('subscription', '=', id).execute();
    });
  }

  async addInterest(subscription: string, subject: string, at: string): Promise<boolean> {
    const r = await this.db.insertInto('event_interest').values({ subscription, subject, added_at: at }).onConflict((oc) => oc.columns(['subscription', 'subject']).doNothing()).executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async removeInterest(subscription: string, subject: string): Promise<boolean> {
    const r = await this.db.deleteFrom('event_interest').where('subscription', '=', subscription).where('subject', '=', subject).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  async interests(subscription: string, limit: number, after = ''): Promise<string[]> {
    const rows = await this.db.selectFrom('event_interest').select('subject').where('subscription', '=', subscription).where('subject', '>', after).orderBy('subject').limit(limit).execute();
    return rows.map((r) => r.subject);
  }

  /** Which of `subscriptions` have `subject` on their interest list. */
  async interested(subscriptions: readonly string[], subject: string): Promise<Set<string>> {
    if (subscriptions.length === 0) return new Set();
    const rows = await this.db.selectFrom('event_interest').select('subscription').where('subject', '=', subject).where('subscription', 'in', [...subscriptions]).execute();
    return new Set(rows.map((r) => r.subscription));
  }

  async relayCursor(provider: string): Promise<number> {
    const r = await this.db.selectFrom('event_relay').select('cursor').where('provider', '=', provider).executeTakeFirst();
    return r ? Number(r.cursor) : -1;
  }

  /** Sets the cursor when the gateway first relays a register (no event before it is relayed). */
  async initRelay(provider: string, cursor: number, at: string): Promise<void> {
    await this.db.insertInto('event_relay').values({ provider, cursor, updated_at: at }).onConflict((oc) => oc.column('provider').doNothing()).execute();
  }

  /**
   * Queues events and moves the relay's cursor from `from` to `to` in one transaction: either
   * both, or neither (a relay that dies in between starts again from `from`). The cursor moves by
   * compare-and-swap, so two processes relaying at once queue each event once.
   */
  async enqueue(provider: string, from: number, to: number, rows: readonly NewQueued[], at: string): Promise<{ subscription: string; seq: number }[] | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const moved = await trx.updateTable('event_relay').set({ cursor: to, updated_at: at }).where('provider', '=', provider).where('cursor', '=', from).executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1) return undefined;
      const subs = [...new Set(rows.map((r) => r.subscription))];
      const next = new Map<string, number>();
      // One max() per subscription: SQLite answers that from the primary key's last entry, where
      // a grouped max over an `in` list walks every queued row of those subscriptions.
      for (const sub of subs) {
        const m = await trx.selectFrom('event_queue').select((eb) => eb.fn.max('seq').as('m')).where('subscription', '=', sub).executeTakeFirst();
        if (m?.m !== null && m?.m !== undefined) next.set(sub, Number(m.m));
      }
      const out: { subscription: string; seq: number }[] = [];
      const values = rows.map((r) => {
        const seq = (next.get(r.subscription) ?? 0) + 1;
        next.set(r.subscription, seq);
        out.push({ subscription: r.subscription, seq });
        return { subscription: r.subscription, seq, event_id: r.eventId, subject: r.subject, type: r.type, payload: r.payload(seq), created_at: at, state: 'pending' as const, attempts: 0, next_attempt_at: at, last_error: null, delivered_at: null, published: 0 };
      });
      for (let i = 0; i < values.length; i += 200) await trx.insertInto('event_queue').values(values.slice(i, i + 200)).onConflict((oc) => oc.columns(['subscription', 'event_id']).doNothing()).execute();
      return out;
    });
  }

  /**
   * The first undelivered event about each person of each push subscription (its heads). Order is
   * kept per person, as the issue asks and as a consumer needs it (a move then a death must not
   * arrive the other way round); events about different people are independent, so they may
   * leave side by side rather than one at a time per subscription.
   */
  async #heads(limit: number): Promise<QueuedEvent[]> {
    const heads = await this.db
      .selectFrom('event_queue as q')
      .innerJoin('event_subscription as s', 's.id', 'q.subscription')
      .select(['q.subscription', (eb) => eb.fn.min('q.seq').as('seq')])
      .where('q.state', '=', 'pending')
      .where('s.mode', '=', 'push')
      .groupBy(['q.subscription', 'q.subject'])
      .limit(limit)
      .execute();
    if (heads.length === 0) return [];
    const rows: QueuedEvent[] = [];
    const bySub = new Map<string, number[]>();
    for (const h of heads) {
      const list = bySub.get(h.subscription);
      if (list) list.push(Number(h.seq));
      else bySub.set(h.subscription, [Number(h.seq)]);
    }
    for (const [subscription, seqs] of bySub) {
      for (let i = 0; i < seqs.length; i += 500) {
        const got = await this.db.selectFrom('event_queue').selectAll().where('subscription', '=', subscription).where('seq', 'in', seqs.slice(i, i + 500)).execute();
        rows.push(...got.map(toQueued));
      }
    }
    return rows.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.seq - b.seq));
  }

  /** The heads that are due at `now`, oldest first. */
  async dueHeads(now: string, limit: number): Promise<QueuedEvent[]> {
    return (await this.#heads(limit)).filter((h) => h.nextAttemptAt <= now);
  }

  /** When the earliest head not yet due is due, or undefined when there is none. */
  async nextDue(): Promise<string | undefined> {
    const heads = await this.#heads(1000);
    return heads.length === 0 ? undefined : heads.map((h) => h.nextAttemptAt).sort()[0];
  }

  async queued(subscription: string, seq: number): Promise<QueuedEvent | undefined> {
    const r = await this.db.selectFrom('event_queue').selectAll().where('subscription', '=', subscription).where('seq', '=', seq).executeTakeFirst();
    return r && toQueued(r);
  }

  /**
   * Settles a delivered event. Settlements arriving together (a push's events) are written in one
   * transaction: on SQLite every statement outside one waits its turn for the single connection
   * behind the message log's and transparency log's transactions.
   */
  markDelivered(subscription: string, seq: number, at: string, attempts: number): Promise<void> {
    return this.#delivered.submit({ subscription, seq, at, attempts });
  }

  readonly #delivered = new GroupCommit<{ subscription: string; seq: number; at: string; attempts: number }, void>(async (rows) => {
    // A push's events share their subscription, instant and attempt: one statement for them all.
    const groups = new Map<string, { subscription: string; at: string; attempts: number; seqs: number[] }>();
    for (const r of rows) {
      const k = JSON.stringify([r.subscription, r.at, r.attempts]);
      const g = groups.get(k);
      if (g) g.seqs.push(r.seq);
      else groups.set(k, { subscription: r.subscription, at: r.at, attempts: r.attempts, seqs: [r.seq] });
    }
    await this.db.transaction().execute(async (trx) => {
      for (const g of groups.values()) {
        for (let i = 0; i < g.seqs.length; i += 500) {
          await trx.updateTable('event_queue').set({ state: 'delivered', delivered_at: g.at, attempts: g.attempts, last_error: null }).where('subscription', '=', g.subscription).where('seq', 'in', g.seqs.slice(i, i + 500)).execute();
        }
      }
    });
    return rows.map(() => undefined);
  });

  async markRetry(subscription: string, seq: number, attempts: number, next: string, error: string): Promise<void> {
    await this.db.updateTable('event_queue').set({ attempts, next_attempt_at: next, last_error: error.slice(0, 500) }).where('subscription', '=', subscription).where('seq', '=', seq).where('state', '=', 'pending').execute();
  }

  async markFinal(subscription: string, seq: number, state: 'dead' | 'refused', attempts: number, error: string): Promise<void> {
    await this.db.updateTable('event_queue').set({ state, attempts, last_error: error.slice(0, 500) }).where('subscription', '=', subscription).where('seq', '=', seq).execute();
  }

  /** The dead letters of a subscription (all of them when none is named), oldest first. */
  async deadLetters(subscription?: string, limit = 1000): Promise<QueuedEvent[]> {
    let b = this.db.selectFrom('event_queue').selectAll().where('state', '=', 'dead');
    if (subscription !== undefined) b = b.where('subscription', '=', subscription);
    return (await b.orderBy('subscription').orderBy('seq').limit(limit).execute()).map(toQueued);
  }

  /** Puts dead letters back in the queue (all of the subscription's, or those ids); returns how many. */
  async redeliver(subscription: string, eventIds: readonly string[] | undefined, now: string): Promise<number> {
    let b = this.db.updateTable('event_queue').set({ state: 'pending', attempts: 0, next_attempt_at: now, last_error: null, published: 0 }).where('subscription', '=', subscription).where('state', '=', 'dead');
    if (eventIds !== undefined) {
      if (eventIds.length === 0) return 0;
      b = b.where('event_id', 'in', [...eventIds]);
    }
    return Number((await b.executeTakeFirst()).numUpdatedRows);
  }

  /** A page of a subscription's feed: its events after `after`, in order (refused ones left out). */
  async feed(subscription: string, after: number, limit: number): Promise<QueuedEvent[]> {
    const rows = await this.db.selectFrom('event_queue').selectAll().where('subscription', '=', subscription).where('seq', '>', after).where('state', '!=', 'refused').orderBy('seq').limit(limit).execute();
    return rows.map(toQueued);
  }

  /** Marks feed events fetched; returns the ones fetched for the first time (they get access records). */
  async markFetched(subscription: string, seqs: readonly number[], at: string): Promise<Set<number>> {
    if (seqs.length === 0) return new Set();
    const fresh = await this.db.selectFrom('event_queue').select('seq').where('subscription', '=', subscription).where('seq', 'in', [...seqs]).where('delivered_at', 'is', null).execute();
    if (fresh.length > 0) await this.db.updateTable('event_queue').set({ state: 'delivered', delivered_at: at }).where('subscription', '=', subscription).where('seq', 'in', fresh.map((r) => Number(r.seq))).execute();
    return new Set(fresh.map((r) => Number(r.seq)));
  }

  /** Push events not yet handed to JetStream, oldest first. */
  async unpublished(limit: number): Promise<QueuedEvent[]> {
    const rows = await this.db
      .selectFrom('event_queue as q')
      .innerJoin('event_subscription as s', 's.id', 'q.subscription')
      .selectAll('q')
      .where('q.state', '=', 'pending')
      .where('q.published', '=', 0)
      .where('s.mode', '=', 'push')
      .orderBy('q.subscription')
      .orderBy('q.seq')
      .limit(limit)
      .execute();
    return rows.map(toQueued);
  }

  async markPublished(rows: readonly { subscription: string; seq: number }[]): Promise<void> {
    // One transaction for the lot: a commit per row would cost a disk sync each.
    await this.db.transaction().execute(async (trx) => {
      for (const r of rows) await trx.updateTable('event_queue').set({ published: 1 }).where('subscription', '=', r.subscription).where('seq', '=', r.seq).execute();
    });
  }

  /**
   * Takes or renews the lease `name` for `holder` until `until`; true when held. Several gateway
   * processes of one organisation share one PostgreSQL: only the holder dispatches, so events of
   * one subscription leave in order.
   */
  async lease(name: string, holder: string, now: string, until: string): Promise<boolean> {
    await this.db.insertInto('event_lease').values({ name, holder, until: '' }).onConflict((oc) => oc.column('name').doNothing()).execute();
    const r = await this.db
      .updateTable('event_lease')
      .set({ holder, until })
      .where('name', '=', name)
      .where((eb) => eb.or([eb('holder', '=', holder), eb('until', '<', now)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db.updateTable('event_lease').set({ until: '' }).where('name', '=', name).where('holder', '=', holder).execute();
  }
}

/** Throws `not_found` unless a subscription exists and belongs to `client`. */
export function requireOwn(s: Subscription | undefined, client: string, id: string): Subscription {
  // Another client's subscription is answered as missing: its existence is not for them to learn.
  if (!s || s.client !== client) throw new OnceOnlyError('not_found', `no subscription ${id.slice(0, 64)} of ${client}`, { field: 'path.subscription', expected: 'the id of one of your subscriptions' });
  return s;
}
