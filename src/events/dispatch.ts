/**
 * @module events/dispatch
 * Push delivery of queued events, one interface over two transports (selected by configuration,
 * `NATS_URL`): the embedded default, an in-process dispatcher over the store's queue, and NATS
 * JetStream (events/jetstream). Both deliver each subscription's events one at a time in order
 * (so a person's events arrive in the order they happened, retries included), retry a failed
 * delivery with exponential backoff and full jitter, move an event to the dead-letter list after
 * `maxAttempts`, and put dead letters back on request. Delivery is at least once: an event whose
 * answer was lost is sent again under the same id.
 */
import { randomUUID } from 'node:crypto';
import type { EventStore, QueuedEvent } from './store.ts';

/** What one delivery attempt came to. */
export type Outcome =
  | { kind: 'delivered' }
  /** Try again later (the subscriber or the exchange did not take it). */
  | { kind: 'retry'; reason: string }
  /** Never deliver it (the subscription ended, the agreement or the member lapsed). */
  | { kind: 'refused'; reason: string };

export type Deliver = (e: QueuedEvent) => Promise<Outcome>;

/** Retry policy. */
export interface RetryPolicy {
  /** Attempts before an event becomes a dead letter (default 8). */
  maxAttempts: number;
  /** Delay before the second attempt, ms (default 1 s); doubled for each further one. */
  baseDelayMs: number;
  /** Longest delay, ms (default 5 min). */
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 8, baseDelayMs: 1000, maxDelayMs: 300_000 };

/**
 * The wait before attempt `attempt + 1` after `attempt` failed: exponential, capped, with "full
 * jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015) so that subscribers that
 * came back at once are not retried in lockstep.
 */
export function backoffMs(attempt: number, p: RetryPolicy, random: () => number = Math.random): number {
  const cap = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(cap / 2 + (random() * cap) / 2);
}

/** A push transport. */
export interface Transport {
  readonly name: 'embedded' | 'jetstream';
  /** Starts delivering with `deliver`. */
  start(deliver: Deliver): Promise<void>;
  /** Events were queued (or put back): look now rather than at the next poll. */
  wake(): void;
  stop(): Promise<void>;
}

/** Records an attempt's outcome in the store; returns the event's state after it. */
export async function settle(store: EventStore, e: QueuedEvent, outcome: Outcome, attempt: number, policy: RetryPolicy, now: Date): Promise<'delivered' | 'pending' | 'dead' | 'refused'> {
  if (outcome.kind === 'delivered') {
    await store.markDelivered(e.subscription, e.seq, now.toISOString(), attempt);
    return 'delivered';
  }
  if (outcome.kind === 'refused') {
    await store.markFinal(e.subscription, e.seq, 'refused', attempt, outcome.reason);
    return 'refused';
  }
  if (attempt >= policy.maxAttempts) {
    await store.markFinal(e.subscription, e.seq, 'dead', attempt, outcome.reason);
    return 'dead';
  }
  await store.markRetry(e.subscription, e.seq, attempt, new Date(now.getTime() + backoffMs(attempt, policy)).toISOString(), outcome.reason);
  return 'pending';
}

/** Options of {@link EmbeddedTransport}. */
export interface EmbeddedOptions {
  store: EventStore;
  policy?: RetryPolicy;
  /** The lease's name: one dispatcher per gateway store. */
  leaseName: string;
  /** Longest sleep between looks when nothing is due, ms (default 1000: events queued by another process are seen within it). */
  pollMs?: number;
  /** Deliveries in flight at once, over all subscriptions (default 256: those of one subscription travel together, gateway/events); never two about one person of one subscription. */
  maxInFlight?: number;
  onError?: (e: unknown) => void;
  now?: () => Date;
}

/**
 * The embedded default: the store's queue is the transport. The dispatcher takes the heads (the
 * first undelivered event about each person of each subscription) that are due, delivers up to
 * `maxInFlight` of them side by side, records each outcome, and takes the next head as soon as a
 * slot frees: a slow subscriber holds back only its own events about that person. It sleeps until
 * the next retry is due or it is woken. Several gateway processes on one PostgreSQL: only the
 * holder of the lease dispatches.
 */
export class EmbeddedTransport implements Transport {
  readonly name = 'embedded' as const;
  readonly #o: EmbeddedOptions;
  readonly #policy: RetryPolicy;
  readonly #holder = randomUUID();
  readonly #now: () => Date;
  readonly #max: number;
  /** `subscription seq` of each delivery in flight. */
  readonly #inFlight = new Map<string, Promise<void>>();
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #woken = false;
  /** Until when the lease held needs no renewal (epoch ms; 0: not held). */
  #renewAt = 0;

  constructor(o: EmbeddedOptions) {
    this.#o = o;
    this.#policy = o.policy ?? DEFAULT_RETRY;
    this.#now = o.now ?? (() => new Date());
    this.#max = Math.max(1, o.maxInFlight ?? 256);
  }

  start(deliver: Deliver): Promise<void> {
    if (this.#running) return Promise.resolve();
    this.#running = true;
    this.#loop = this.#run(deliver);
    return Promise.resolve();
  }

  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    // Deliveries under way finish and are recorded: stopping never leaves one half-settled.
    await Promise.allSettled([...this.#inFlight.values()]);
    await this.#o.store.releaseLease(this.#o.leaseName, this.#holder).catch(() => undefined);
    // Released: a start after this must take the lease again, not trust the last renewal.
    this.#renewAt = 0;
  }

  #launch(e: QueuedEvent, deliver: Deliver): void {
    const key = `${e.subscription} ${e.seq}`;
    const run = (async () => {
      const attempt = e.attempts + 1;
      let outcome: Outcome;
      try {
        outcome = await deliver(e);
      } catch (err) {
        outcome = { kind: 'retry', reason: err instanceof Error ? err.message : String(err) };
      }
      try {
        await settle(this.#o.store, e, outcome, attempt, this.#policy, this.#now());
      } catch (err) {
        // Unrecorded: the event stays pending and is sent again (under the same id).
        this.#o.onError?.(err);
      }
    })().finally(() => {
      this.#inFlight.delete(key);
      this.wake();
    });
    this.#inFlight.set(key, run);
  }

  async #run(deliver: Deliver): Promise<void> {
    const poll = this.#o.pollMs ?? 1000;
    while (this.#running) {
      let sleep = poll;
      this.#woken = false;
      try {
        const now = this.#now();
        // The lease runs 3 polls and 10 s ahead; renewed once a poll, not on every wake (a write each).
        let held = now.getTime() < this.#renewAt;
        if (!held) {
          held = await this.#o.store.lease(this.#o.leaseName, this.#holder, now.toISOString(), new Date(now.getTime() + 3 * poll + 10_000).toISOString());
          this.#renewAt = held ? now.getTime() + poll : 0;
        }
        if (held && this.#inFlight.size < this.#max) {
          // A person's next event waits for the one in flight before it (the head is still pending).
          const inFlight = new Set(this.#inFlight.keys());
          const heads = (await this.#o.store.dueHeads(now.toISOString(), 1000)).filter((e) => !inFlight.has(`${e.subscription} ${e.seq}`));
          for (const e of heads) {
            if (this.#inFlight.size >= this.#max) break;
            this.#launch(e, deliver);
          }
          if (heads.length === 0 && this.#inFlight.size === 0) {
            const next = await this.#o.store.nextDue();
            if (next !== undefined) sleep = Math.max(0, Math.min(poll, Date.parse(next) - this.#now().getTime()));
          }
        }
      } catch (e) {
        this.#o.onError?.(e);
      }
      if (!this.#running) break;
      if (this.#woken) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, sleep);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = undefined;
    }
  }
}
