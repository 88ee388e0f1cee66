/**
 * @module events/relay
 * From a register's outbox to its subscribers' queues, at the register's gateway. The relay reads
 * the outbox in order (a long poll: an event committed is read within milliseconds), and for each
 * event decides who is told:
 *
 * 1. subscriptions of the register to that kind of change (a correction goes to the subscribers
 *    of every kind that carries the corrected item), made before the event;
 * 2. whose agreement is in force and grants every item the event carries;
 * 3. that have the subject on their interest list (no organisation learns of a person it has no
 *    relationship with);
 * 4. that the person chose, when they chose (`notify` in the change: all entitled, or a subset).
 *
 * It then takes the granted items as the change recorded them (valid at the change's date, as
 * known at its recording instant: the same values however late the relay runs), which come with
 * the outbox page (`values=1`) or, from a register that does not send them, are read one by one,
 * and queues one event per subscription, moving its cursor in the same transaction. Delivery
 * (events/dispatch) checks the agreement and the member again at the moment of sending.
 */
import { chosen, type OutboxEvent } from '../registry/outbox.ts';
import type { Envelope } from '../registry/service.ts';
import type { ChangeEvent } from './format.ts';
import type { EventStore, NewQueued, Subscription } from './store.ts';

/** What the gateway decides about a subscription, now (agreement in force, members active). */
export type Entitlement = { ok: true; agreement: string; purpose: string; items: readonly string[] } | { ok: false; reason: string };

/** Options of {@link Relay}. */
export interface RelayOptions {
  store: EventStore;
  /** The register subsystem relayed. */
  provider: string;
  /** Reads the register's outbox after `after`, waiting up to `waitSeconds` for the first event (until `signal` aborts). */
  fetchEvents: (after: number, waitSeconds: number, signal: AbortSignal) => Promise<OutboxEvent[]>;
  /** The register's latest event number, for a first start (nothing before it is relayed). */
  latest: () => Promise<number>;
  /** The kinds of change the register announces and the items each can carry. */
  types: () => Promise<Record<string, { items: string[] }>>;
  /** Reads items of a subject valid at `asAt` as known at `knownAt`. */
  readItems: (subject: string, items: readonly string[], asAt: string, knownAt: string) => Promise<Record<string, Envelope>>;
  /** Whether `subscription` may be told of an event of `type` carrying `items`, now. */
  entitled: (subscription: Subscription, type: string, items: readonly string[]) => Entitlement;
  /** Wakes the dispatcher once events are queued. */
  queued: (rows: { subscription: string; seq: number }[]) => void;
  onError?: (e: unknown) => void;
  now?: () => Date;
  /** How long one long poll waits, seconds (default 20). */
  waitSeconds?: number;
}

/** Events routed at once (each may read the register, when its values did not come with it): the relay's own pace. */
const ROUTE_AT_ONCE = 16;

/** The change kinds whose subscribers a correction of `item` reaches. */
function kindsCarrying(types: Record<string, { items: string[] }>, item: string): Set<string> {
  return new Set(Object.entries(types).filter(([, t]) => t.items.includes(item)).map(([k]) => k));
}

export class Relay {
  readonly #o: RelayOptions;
  readonly #now: () => Date;
  #running = false;
  #loop: Promise<void> | undefined;
  #abort = new AbortController();
  #types: Record<string, { items: string[] }> | undefined;

  constructor(o: RelayOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => new Date());
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#abort.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let backoff = 100;
    while (this.#running) {
      try {
        const moved = await this.step(this.#o.waitSeconds ?? 20);
        backoff = 100;
        if (!moved && !this.#running) break;
      } catch (e) {
        if (!this.#running) break;
        this.#o.onError?.(e);
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#abort.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
  }

  /**
   * Relays one batch: reads after the cursor (waiting up to `waitSeconds`), queues, moves the
   * cursor. Returns whether anything was read. Exposed for tests and the CLI.
   */
  async step(waitSeconds = 0): Promise<boolean> {
    const { store, provider } = this.#o;
    let cursor = await store.relayCursor(provider);
    if (cursor < 0) {
      // First start: subscriptions are told of what happens from now on, not of the past.
      await store.initRelay(provider, await this.#o.latest(), this.#now().toISOString());
      cursor = await store.relayCursor(provider);
    }
    const events = await this.#o.fetchEvents(cursor, waitSeconds, this.#abort.signal);
    if (events.length === 0) return false;
    this.#types ??= await this.#o.types();
    const subs = await store.subscriptions({ provider, status: 'active' });
    const rows: NewQueued[] = [];
    // Routed side by side (each reads the interest lists and the register), queued in outbox order.
    for (let k = 0; k < events.length; k += ROUTE_AT_ONCE) {
      for (const routed of await Promise.all(events.slice(k, k + ROUTE_AT_ONCE).map((e) => this.#route(e, subs)))) rows.push(...routed);
    }
    const queued = await store.enqueue(provider, cursor, events[events.length - 1]!.seq, rows, this.#now().toISOString());
    // Another process moved the cursor first: it queued these; read again from where it is.
    if (queued && queued.length > 0) this.#o.queued(queued);
    return true;
  }

  async #route(e: OutboxEvent, subs: readonly Subscription[]): Promise<NewQueued[]> {
    const types = this.#types ?? {};
    const kinds = e.type === 'correction' ? kindsCarrying(types, e.items[0] ?? '') : new Set([e.type]);
    const candidates = subs.filter((s) => s.fromSeq < e.seq && s.events.some((k) => kinds.has(k)) && chosen(e.notify, s.client));
    if (candidates.length === 0) return [];
    const interested = await this.#o.store.interested(candidates.map((s) => s.id), e.subject);
    const told: { s: Subscription; ent: Extract<Entitlement, { ok: true }> }[] = [];
    for (const s of candidates) {
      if (!interested.has(s.id)) continue;
      // A correction is judged as the kind it corrects; the agreement must grant every item it carries.
      const kind = e.type === 'correction' ? s.events.find((k) => kinds.has(k))! : e.type;
      const ent = this.#o.entitled(s, kind, e.items);
      if (ent.ok) told.push({ s, ent });
    }
    if (told.length === 0) return [];
    const values = e.values ?? (await this.#o.readItems(e.subject, e.items, e.effectiveDate, e.recordedAt));
    return told.map(({ s, ent }) => {
      const items: Record<string, Envelope> = {};
      for (const i of e.items) if (ent.items.includes(i) && values[i]) items[i] = values[i];
      return {
        subscription: s.id,
        eventId: e.id,
        subject: e.subject,
        type: e.type,
        payload: (sequence: number) => {
          const doc: ChangeEvent = {
            id: e.id,
            type: e.type,
            timestamp: e.recordedAt,
            data: { provider: s.provider, subscription: s.id, sequence, subject: e.subject, changeId: e.changeId, effectiveDate: e.effectiveDate, agreement: ent.agreement, purpose: ent.purpose, items },
          };
          return JSON.stringify(doc);
        },
      };
    });
  }
}
