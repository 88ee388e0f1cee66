/**
 * @module events/jetstream
 * The NATS JetStream push transport (selected when `NATS_URL` is configured). The store stays
 * the record of truth: JetStream only carries pointers (`{subscription, seq}`) to queued rows, so
 * no personal data is copied into the broker, and every decision (deliver or skip, retry, dead
 * letter) is taken against the row's state in the store.
 *
 * - One stream per register (provider subsystem), `<prefix>_<token>`, subjects
 *   `<subjectPrefix>.<token>.>`; one message per queued push event on
 *   `<subjectPrefix>.<token>.<subscriptionToken>`. Tokens are hex SHA-256 prefixes of the ids:
 *   provider ids contain '/' and may contain '.', which stream names and subject tokens cannot,
 *   and no character substitution is injective, whereas a hash is fixed-length and always safe.
 *   The real ids are kept in the stream's description and the consumer's description.
 * - The streams use work-queue retention: a message leaves once acknowledged, and nothing ages
 *   out unconsumed (an age limit would drop events of a gateway that was down too long).
 * - A publisher hands rows with `published = 0` to JetStream, then marks them published. A crash
 *   in between republishes them under the same msgID (JetStream's duplicate window drops the
 *   copy; past the window the consumer skips a row that is no longer pending).
 * - Each subscription's events are spread over {@link PARTITIONS} subjects by a hash of the
 *   person they are about, `<subjectPrefix>.<provider token>.<subscription token>.<partition>`,
 *   with one durable pull consumer per partition, explicit ack, `max_ack_pending: 1`: events about
 *   one person are delivered one at a time and in order (a retry, nak with delay, holds back the
 *   ones behind it in that partition), while other partitions and subscriptions progress side by
 *   side. Several gateway processes may bind the same consumers: the server still hands out one
 *   at a time per partition.
 */
import { createHash } from 'node:crypto';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { DEFAULT_RETRY, backoffMs, settle, type Deliver, type Outcome, type RetryPolicy, type Transport } from './dispatch.ts';
import type { EventStore, QueuedEvent, Subscription } from './store.ts';

/** Options of {@link JetStreamTransport}. */
export interface JetStreamOptions {
  /** NATS server URL(s), comma separated. */
  servers: string;
  store: EventStore;
  policy?: RetryPolicy;
  /** Stream names are `<prefix>_<provider token>` (default 'ONCEONLY_EVENTS'). */
  prefix?: string;
  /** Subjects are `<subjectPrefix>.<provider token>.<subscription token>` (default 'onceonly.events'). */
  subjectPrefix?: string;
  /** Longest wait between looks at the store for new events and subscriptions, ms (default 500). */
  pollMs?: number;
  /**
   * How long the server waits for an ack before redelivering, ms (default 10 s; kept alive while
   * a delivery runs). It bounds how long an event waits after a gateway process dies mid-delivery.
   */
  ackWaitMs?: number;
  onError?: (e: unknown) => void;
  now?: () => Date;
}

/** Stream names, subject tokens and consumer names must avoid '.', '*', '>', '/', whitespace: a hex digest has none. */
export function token(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 24);
}

/**
 * Partitions per subscription: the deliveries in flight for one subscriber at once. Fixed, so a
 * person's events always land in the same partition (and so in order) across restarts.
 */
export const PARTITIONS = 32;

/** The partition of a person's events: the first byte of a hash of the subject, modulo {@link PARTITIONS}. */
export function partitionOf(subject: string): number {
  return createHash('sha256').update(subject).digest()[0]! % PARTITIONS;
}

/** What a stream message carries: where the event is in the store, nothing of the event itself. */
interface Pointer {
  subscription: string;
  seq: number;
}

function isPointer(v: unknown): v is Pointer {
  return typeof v === 'object' && v !== null && typeof (v as Pointer).subscription === 'string' && Number.isSafeInteger((v as Pointer).seq);
}

/** One subscription's consumer as this process runs it. */
interface Running {
  sub: Subscription;
  stream: string;
  durable: string;
  /** The partition's subject, its consumer's filter. */
  subject: string;
  stopped: boolean;
  messages: ConsumerMessages | undefined;
  loop: Promise<void>;
  /** Cuts short the pause after a failed consume. */
  wake: (() => void) | undefined;
}

/** How a consumer's description starts; the subscription id follows. */
const SUBSCRIPTION = 'Tell Us Once subscription ';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isNotFound(e: unknown): boolean {
  return /not found/i.test(message(e));
}

export class JetStreamTransport implements Transport {
  readonly name = 'jetstream' as const;
  readonly #o: JetStreamOptions;
  readonly #policy: RetryPolicy;
  readonly #prefix: string;
  readonly #subjects: string;
  readonly #pollMs: number;
  readonly #ackWaitMs: number;
  readonly #now: () => Date;
  #nc: NatsConnection | undefined;
  #jsm: JetStreamManager | undefined;
  #js: JetStreamClient | undefined;
  #deliver: Deliver | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #woken = false;
  readonly #streams = new Set<string>();
  /** Subscription id → its partitions' consumers. */
  readonly #consumers = new Map<string, Running[]>();
  /** Subscription id → its provider, for routing rows (a queued row does not name its provider). */
  readonly #providers = new Map<string, string>();

  constructor(o: JetStreamOptions) {
    this.#o = o;
    this.#policy = o.policy ?? DEFAULT_RETRY;
    this.#prefix = o.prefix ?? 'ONCEONLY_EVENTS';
    this.#subjects = o.subjectPrefix ?? 'onceonly.events';
    this.#pollMs = o.pollMs ?? 500;
    this.#ackWaitMs = o.ackWaitMs ?? 10_000;
    this.#now = o.now ?? (() => new Date());
  }

  streamName(provider: string): string {
    return `${this.#prefix}_${token(provider)}`;
  }

  /** The subject of one partition of a subscription, or with `'>'` all of them. */
  subject(provider: string, subscription: string, partition: number | '>'): string {
    return `${this.#subjects}.${token(provider)}.${token(subscription)}.${partition}`;
  }

  async start(deliver: Deliver): Promise<void> {
    if (this.#running) return;
    // Fails start() when the broker is unreachable: a gateway configured for JetStream should not
    // come up silently undelivering. Once connected, the client reconnects for ever.
    const nc = await connect({ servers: this.#o.servers.split(',').map((s) => s.trim()), name: 'onceonly-gateway', maxReconnectAttempts: -1 });
    try {
      this.#jsm = await jetstreamManager(nc);
    } catch (e) {
      await nc.close();
      throw e;
    }
    this.#nc = nc;
    this.#js = jetstream(nc);
    this.#deliver = deliver;
    this.#running = true;
    await this.#sync(true).catch((e: unknown) => this.#o.onError?.(e));
    this.#loop = this.#run();
  }

  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    const consumers = [...this.#consumers.values()].flat();
    this.#consumers.clear();
    await Promise.all(consumers.map((c) => this.#halt(c)));
    // Drain flushes the acks just sent before the connection closes.
    await this.#nc?.drain().catch(() => this.#nc?.close());
    this.#nc = undefined;
    this.#streams.clear();
    this.#providers.clear();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      this.#woken = false;
      let more = false;
      try {
        await this.#sync(false);
        more = await this.#publish();
      } catch (e) {
        this.#o.onError?.(e);
      }
      if (!this.#running) break;
      if (more || this.#woken) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, this.#pollMs);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = undefined;
    }
  }

  /**
   * Brings the consumers in line with the store's active push subscriptions. At start it also
   * deletes consumers left behind by subscriptions removed while no transport ran.
   */
  async #sync(initial: boolean): Promise<void> {
    const active = (await this.#o.store.subscriptions({ status: 'active' })).filter((s) => s.mode === 'push');
    const ids = new Set(active.map((s) => s.id));
    for (const s of active) {
      this.#providers.set(s.id, s.provider);
      // One subscription whose consumer cannot be made must not stop the others (or publishing).
      if (!this.#consumers.has(s.id)) await this.#open(s).catch((e: unknown) => this.#o.onError?.(e));
    }
    for (const [id, parts] of this.#consumers) {
      if (ids.has(id)) continue;
      this.#consumers.delete(id);
      this.#providers.delete(id);
      await Promise.all(parts.map((c) => this.#halt(c)));
      for (const c of parts) await this.#remove(c.stream, c.durable, c.subject);
    }
    if (initial) await this.#sweep(ids);
  }

  async #sweep(active: Set<string>): Promise<void> {
    const jsm = this.#jsm!;
    for await (const name of jsm.streams.names(`${this.#subjects}.>`)) {
      if (!name.startsWith(`${this.#prefix}_`)) continue;
      for await (const ci of jsm.consumers.list(name)) {
        const d = ci.config.description;
        if (d?.startsWith(SUBSCRIPTION) !== true || active.has(d.slice(SUBSCRIPTION.length))) continue;
        await this.#remove(name, ci.name, ci.config.filter_subject);
      }
    }
  }

  /** Deletes a consumer and, the streams being work queues, the messages only it would have taken. */
  async #remove(stream: string, durable: string, subject: string | undefined): Promise<void> {
    const jsm = this.#jsm!;
    await jsm.consumers.delete(stream, durable).catch((e: unknown) => {
      if (!isNotFound(e)) throw e;
    });
    if (subject !== undefined) await jsm.streams.purge(stream, { filter: subject });
  }

  async #ensureStream(provider: string): Promise<string> {
    const name = this.streamName(provider);
    if (this.#streams.has(name)) return name;
    const jsm = this.#jsm!;
    try {
      await jsm.streams.info(name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      await jsm.streams.add({
        name,
        subjects: [`${this.#subjects}.${token(provider)}.>`],
        description: `Tell Us Once events of ${provider} (pointers into the gateway's queue)`,
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
      });
    }
    this.#streams.add(name);
    return name;
  }

  async #open(sub: Subscription): Promise<void> {
    const stream = await this.#ensureStream(sub.provider);
    const parts: Running[] = [];
    for (let p = 0; p < PARTITIONS; p++) parts.push(await this.#openPartition(sub, stream, p));
    this.#consumers.set(sub.id, parts);
  }

  async #openPartition(sub: Subscription, stream: string, partition: number): Promise<Running> {
    const durable = `s_${token(sub.id)}_${partition}`;
    const subject = this.subject(sub.provider, sub.id, partition);
    const config = {
      durable_name: durable,
      filter_subject: subject,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      // One unacknowledged message at a time: the next event waits until this one is settled.
      max_ack_pending: 1,
      max_deliver: this.#policy.maxAttempts,
      ack_wait: nanos(this.#ackWaitMs),
      // The description, not metadata, names the subscription: metadata needs NATS 2.10.
      description: `${SUBSCRIPTION}${sub.id}`,
    };
    const jsm = this.#jsm!;
    try {
      await jsm.consumers.add(stream, config);
    } catch (e) {
      // It exists with other settings (a changed retry policy): bring it up to date.
      const { durable_name: _d, ack_policy: _a, deliver_policy: _p, filter_subject: _f, ...update } = config;
      await jsm.consumers.update(stream, durable, update).catch(() => {
        throw e;
      });
    }
    const c: Running = { sub, stream, durable, subject, stopped: false, messages: undefined, loop: Promise.resolve(), wake: undefined };
    c.loop = this.#consume(c);
    return c;
  }

  async #halt(c: Running): Promise<void> {
    c.stopped = true;
    c.wake?.();
    await c.messages?.close().catch(() => undefined);
    await c.loop;
  }

  async #consume(c: Running): Promise<void> {
    while (!c.stopped) {
      try {
        const consumer = await this.#js!.consumers.get(c.stream, c.durable);
        // The server still sends one message at a time (max_ack_pending 1), but a standing pull
        // for several lets it send the next as soon as the last is acknowledged, without a new
        // pull request per message.
        const messages = await consumer.consume({ max_messages: 16 });
        c.messages = messages;
        if (c.stopped) await messages.close();
        for await (const m of messages) {
          await this.#handle(m);
          if (c.stopped) break;
        }
      } catch (e) {
        if (c.stopped) break;
        this.#o.onError?.(e);
      }
      if (c.stopped) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 1000);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        c.wake = done;
      });
      c.wake = undefined;
    }
  }

  async #handle(m: JsMsg): Promise<void> {
    let p: unknown;
    try {
      p = m.json<unknown>();
    } catch {
      p = undefined;
    }
    if (!isPointer(p)) {
      m.term();
      return;
    }
    let row: QueuedEvent | undefined;
    try {
      row = await this.#o.store.queued(p.subscription, p.seq);
    } catch (e) {
      this.#o.onError?.(e);
      m.nak(1000);
      return;
    }
    // Delivered, refused or dead already (a republished copy, or settled by another process).
    if (!row || row.state !== 'pending') {
      await this.#ack(m);
      return;
    }
    // The store's count is the truth (it survives republishing and is what EmbeddedTransport
    // uses); the delivery count covers an attempt whose outcome was never recorded (the process
    // died mid-delivery and the server redelivered after ack_wait).
    const attempt = Math.max(row.attempts + 1, m.info.deliveryCount);
    const keepAlive = setInterval(() => m.working(), Math.max(1000, Math.floor(this.#ackWaitMs / 3)));
    let outcome: Outcome;
    try {
      outcome = await this.#deliver!(row);
    } catch (err) {
      outcome = { kind: 'retry', reason: message(err) };
    } finally {
      clearInterval(keepAlive);
    }
    let state: Awaited<ReturnType<typeof settle>>;
    try {
      state = await settle(this.#o.store, row, outcome, attempt, this.#policy, this.#now());
    } catch (e) {
      // Unrecorded: try again (a delivered event may be sent twice, under the same id).
      this.#o.onError?.(e);
      m.nak(backoffMs(attempt, this.#policy));
      return;
    }
    if (state === 'delivered') await this.#ack(m);
    // No reason with term: NATS before 2.10.4 does not parse `+TERM <reason>` and would leave the
    // message unacknowledged, holding the subscription for ack_wait. The store keeps the reason.
    else if (state === 'refused' || state === 'dead') m.term();
    else {
      // Wait as long as the store says (settle drew the jitter), so both agree on the next attempt.
      const after = await this.#o.store.queued(row.subscription, row.seq).catch(() => undefined);
      const delay = after ? Date.parse(after.nextAttemptAt) - this.#now().getTime() : backoffMs(attempt, this.#policy);
      m.nak(Math.max(0, delay));
    }
  }

  async #ack(m: JsMsg): Promise<void> {
    // Confirmed, so a transport stopped right after does not see the event again.
    await m.ackAck().catch((e: unknown) => this.#o.onError?.(e));
  }

  /** Publishes a batch of unpublished rows; true when there may be more. */
  async #publish(): Promise<boolean> {
    const limit = 500;
    const rows = await this.#o.store.unpublished(limit);
    if (rows.length === 0) return false;
    // By partition: a partition's rows one after another, each acknowledged by the stream before
    // the next, so they sit in it in queue order (a person's events in the order they happened);
    // partitions, of every subscription, side by side.
    const byPartition = new Map<string, QueuedEvent[]>();
    for (const r of rows) {
      const key = `${r.subscription} ${partitionOf(r.subject)}`;
      const list = byPartition.get(key);
      if (list) list.push(r);
      else byPartition.set(key, [r]);
    }
    let failed = false;
    await Promise.all([...byPartition.values()].map(async (list) => {
      const sub = list[0]!.subscription;
      const provider = this.#providers.get(sub);
      if (provider === undefined) return; // Not (yet) an active push subscription here: the next sync sees it.
      const done: { subscription: string; seq: number }[] = [];
      try {
        const stream = await this.#ensureStream(provider);
        for (const r of list) {
          const body: Pointer = { subscription: r.subscription, seq: r.seq };
          // nextAttemptAt is the enqueue time on the first publish and the redelivery time after
          // store.redeliver: a put-back dead letter gets a new msgID and is not dropped as a duplicate.
          await this.#js!.publish(this.subject(provider, sub, partitionOf(r.subject)), JSON.stringify(body), { msgID: `${token(sub)}:${r.seq}:${r.nextAttemptAt}`, expect: { streamName: stream } });
          done.push(body);
        }
      } catch (e) {
        // Stops this partition's batch: publishing its later rows first would reorder them.
        failed = true;
        this.#o.onError?.(e);
      } finally {
        if (done.length > 0) await this.#o.store.markPublished(done);
      }
    }));
    return !failed && rows.length === limit;
  }
}
