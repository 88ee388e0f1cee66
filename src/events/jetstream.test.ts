/**
 * The JetStream transport against a real NATS JetStream (NATS_URL, default nats://127.0.0.1:4222).
 * Without a reachable server every test is reported skipped with the reason: a transport that
 * was never exercised must not look like one that passed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { openStore, type Store } from '../store/db.ts';
import { EventStore, type QueuedEvent } from './store.ts';
import { JetStreamTransport, PARTITIONS, partitionOf, token, type JetStreamOptions } from './jetstream.ts';
import type { Outcome, RetryPolicy } from './dispatch.ts';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const RUN = `ONCEONLY_TEST_${randomBytes(4).toString('hex').toUpperCase()}`;
const DIR = mkdtempSync(join(tmpdir(), 'onceonly-jetstream-'));

/**
 * A plain TCP probe for the server's greeting first: the NATS client's own connect timeout
 * rejects after a second but leaves its socket open for ~10 s, keeping the test process alive.
 */
function probe(url: string, ms: number): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: u.hostname, port: Number(u.port || 4222) });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`no NATS greeting within ${ms} ms`));
    }, ms);
    // A NATS server speaks first (INFO): anything else, or silence, is not one.
    s.once('data', (b: Buffer) => {
      clearTimeout(t);
      s.destroy();
      if (b.toString('latin1').startsWith('INFO ')) resolve();
      else reject(new Error('not a NATS server'));
    });
    s.once('error', (e) => {
      clearTimeout(t);
      s.destroy();
      reject(e);
    });
  });
}

async function reachable(): Promise<string | undefined> {
  try {
    await probe(NATS_URL.split(',')[0]!.trim(), 1000);
    const nc = await connect({ servers: NATS_URL, timeout: 1000, maxReconnectAttempts: 0, reconnect: false });
    try {
      await jetstreamManager(nc, { timeout: 1000 });
    } finally {
      await nc.close();
    }
    return undefined;
  } catch (e) {
    return `NATS JetStream not reachable at ${NATS_URL}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

const skip = await reachable();
const opts = skip === undefined ? {} : { skip };

const stores: Store[] = [];
let n = 0;

after(async () => {
  for (const s of stores) await s.close();
  rmSync(DIR, { recursive: true, force: true });
  if (skip !== undefined) return;
  const nc = await connect({ servers: NATS_URL, timeout: 1000 });
  const jsm = await jetstreamManager(nc);
  for await (const name of jsm.streams.names()) if (name.startsWith(RUN)) await jsm.streams.delete(name);
  await nc.close();
});

/** A store of its own, a register with an outbox cursor, and transport options unique to the test. */
async function fixture(policy: RetryPolicy = { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 200 }): Promise<{
  events: EventStore;
  provider: string;
  options: JetStreamOptions;
  subscribe: (id: string) => Promise<string>;
  queue: (sub: string, ids: string[], subject?: string) => Promise<void>;
}> {
  n += 1;
  const store = await openStore({ sqliteFile: join(DIR, `t${n}.sqlite`) });
  stores.push(store);
  const events = new EventStore(store.db);
  // A '/' and a '.' in the id: what the stream and subject naming must cope with.
  const provider = `GB/GOV.${n}/registry`;
  const at = new Date().toISOString();
  await events.initRelay(provider, 0, at);
  let cursor = 0;
  return {
    events,
    provider,
    options: { servers: NATS_URL, store: events, policy, prefix: `${RUN}_${n}`, subjectPrefix: `onceonly.test.${RUN.toLowerCase()}.${n}`, pollMs: 100 },
    subscribe: async (id) => {
      await events.createSubscription({ id, provider, client: 'GB/GOV/council/benefits', events: ['death'], agreement: 'agr-1', purpose: 'benefits', mode: 'push', createdAt: at, fromSeq: 0 });
      return id;
    },
    queue: async (sub, ids, subject = 'person-1') => {
      const rows = ids.map((eventId) => ({ subscription: sub, eventId, subject, type: 'death', payload: (seq: number) => JSON.stringify({ id: eventId, seq }) }));
      const r = await events.enqueue(provider, cursor, cursor + ids.length, rows, new Date().toISOString());
      assert.ok(r, 'the relay cursor moved');
      cursor += ids.length;
    },
  };
}

/** Records each delivery call; `outcome` decides what the subscriber answers. */
function recorder(outcome: (e: QueuedEvent, call: number) => Outcome | Promise<Outcome> = () => ({ kind: 'delivered' })): {
  calls: { sub: string; eventId: string; at: number }[];
  deliver: (e: QueuedEvent) => Promise<Outcome>;
  count: (eventId: string) => number;
} {
  const calls: { sub: string; eventId: string; at: number }[] = [];
  const count = (eventId: string): number => calls.filter((c) => c.eventId === eventId).length;
  return {
    calls,
    count,
    deliver: async (e) => {
      calls.push({ sub: e.subscription, eventId: e.eventId, at: Date.now() });
      return outcome(e, count(e.eventId));
    },
  };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function errors(): { onError: (e: unknown) => void; seen: string[] } {
  const seen: string[] = [];
  return { seen, onError: (e) => seen.push(e instanceof Error ? e.message : String(e)) };
}

const ids = (prefix: string, k: number): string[] => Array.from({ length: k }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);

test('delivers one subscription\'s events once each, in order, through a stream named by a hashed provider token', opts, async () => {
  const f = await fixture();
  const sub = await f.subscribe('sub-order');
  const want = ids('ev', 12);
  await f.queue(sub, want);
  const r = recorder();
  const err = errors();
  const t = new JetStreamTransport({ ...f.options, onError: err.onError });
  await t.start(r.deliver);
  try {
    t.wake();
    await until('12 deliveries', () => r.calls.length >= 12);
    await new Promise((res) => setTimeout(res, 200));
    assert.deepEqual(r.calls.map((c) => c.eventId), want);
    for (const [i] of want.entries()) {
      const row = await f.events.queued(sub, i + 1);
      assert.equal(row?.state, 'delivered');
      assert.equal(row?.attempts, 1);
    }
    assert.deepEqual(await f.events.unpublished(100), []);
    const nc = await connect({ servers: NATS_URL });
    try {
      const info = await (await jetstreamManager(nc)).streams.info(t.streamName(f.provider));
      assert.equal(info.config.name, `${f.options.prefix}_${token(f.provider)}`);
      assert.match(info.config.name, /^[A-Za-z0-9_-]+$/);
      assert.deepEqual(info.config.subjects, [`${f.options.subjectPrefix}.${token(f.provider)}.>`]);
      // A work queue: acknowledged pointers leave the stream.
      assert.equal(info.state.messages, 0);
    } finally {
      await nc.close();
    }
    assert.deepEqual(err.seen, []);
  } finally {
    await t.stop();
  }
});

test('a failing delivery is retried with backoff, dead after maxAttempts, and delivered after redeliver', opts, async () => {
  const f = await fixture({ maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 200 });
  const sub = await f.subscribe('sub-retry');
  await f.queue(sub, ['bad', 'next']);
  let failing = true;
  const r = recorder((e) => (e.eventId === 'bad' && failing ? { kind: 'retry', reason: 'HTTP 503' } : { kind: 'delivered' }));
  const t = new JetStreamTransport(f.options);
  await t.start(r.deliver);
  try {
    t.wake();
    await until('the second event', () => r.count('next') === 1);
    const bad = r.calls.filter((c) => c.eventId === 'bad');
    assert.equal(bad.length, 3, 'three attempts, then a dead letter');
    // Full jitter draws from [cap/2, cap]: at least 25 ms after attempt 1, 50 ms after attempt 2.
    assert.ok(bad[1]!.at - bad[0]!.at >= 20, `first backoff ${bad[1]!.at - bad[0]!.at} ms`);
    assert.ok(bad[2]!.at - bad[1]!.at >= 45, `second backoff ${bad[2]!.at - bad[1]!.at} ms`);
    // Order: the next event waited for the failing one to be settled.
    assert.deepEqual(r.calls.map((c) => c.eventId), ['bad', 'bad', 'bad', 'next']);
    const dead = await f.events.deadLetters(sub);
    assert.deepEqual(dead.map((d) => [d.eventId, d.attempts, d.lastError]), [['bad', 3, 'HTTP 503']]);

    failing = false;
    assert.equal(await f.events.redeliver(sub, undefined, new Date().toISOString()), 1);
    t.wake();
    await until('the redelivered dead letter', () => r.count('bad') === 4);
    await until('its state', async () => (await f.events.queued(sub, 1))?.state === 'delivered');
    const row = await f.events.queued(sub, 1);
    assert.equal(row?.attempts, 1, 'counted afresh after the redelivery');
    assert.deepEqual(await f.events.deadLetters(sub), []);
    const nc = await connect({ servers: NATS_URL });
    try {
      // Terminated and acknowledged pointers alike leave the work queue: nothing piles up.
      assert.equal((await (await jetstreamManager(nc)).streams.info(t.streamName(f.provider))).state.messages, 0);
    } finally {
      await nc.close();
    }
  } finally {
    await t.stop();
  }
});

test('a refused outcome is never retried', opts, async () => {
  const f = await fixture();
  const sub = await f.subscribe('sub-refused');
  await f.queue(sub, ['no', 'yes']);
  const r = recorder((e) => (e.eventId === 'no' ? { kind: 'refused', reason: 'the agreement lapsed' } : { kind: 'delivered' }));
  const t = new JetStreamTransport(f.options);
  await t.start(r.deliver);
  try {
    t.wake();
    await until('the second event', () => r.count('yes') === 1);
    // Longer than every backoff of the policy: a retry would have shown by now.
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(r.count('no'), 1);
    const row = await f.events.queued(sub, 1);
    assert.equal(row?.state, 'refused');
    assert.equal(row?.lastError, 'the agreement lapsed');
    assert.deepEqual(await f.events.deadLetters(sub), []);
  } finally {
    await t.stop();
  }
});

test('a thrown delivery counts as a retry', opts, async () => {
  const f = await fixture({ maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 50 });
  const sub = await f.subscribe('sub-throws');
  await f.queue(sub, ['boom']);
  const r = recorder(() => Promise.reject(new Error('socket hang up')));
  const t = new JetStreamTransport(f.options);
  await t.start(r.deliver);
  try {
    t.wake();
    await until('a dead letter', async () => (await f.events.deadLetters(sub)).length === 1);
    assert.equal(r.count('boom'), 2);
    assert.equal((await f.events.deadLetters(sub))[0]?.lastError, 'socket hang up');
  } finally {
    await t.stop();
  }
});

test('a new transport over the same store and streams continues without loss or reordering', opts, async () => {
  const f = await fixture();
  const sub = await f.subscribe('sub-restart');
  const first = ids('a', 15);
  await f.queue(sub, first);
  const r = recorder(async () => {
    await new Promise((res) => setTimeout(res, 15));
    return { kind: 'delivered' };
  });
  const t1 = new JetStreamTransport(f.options);
  await t1.start(r.deliver);
  t1.wake();
  await until('some deliveries', () => r.calls.length >= 4);
  await t1.stop();
  const before = r.calls.length;
  assert.ok(before < first.length, `stopped part way (${before} delivered)`);

  // Queued while no transport ran (by the relay of another process, say).
  const second = ids('b', 5);
  await f.queue(sub, second);
  const t2 = new JetStreamTransport(f.options);
  await t2.start(r.deliver);
  try {
    await until('every event', () => new Set(r.calls.map((c) => c.eventId)).size === first.length + second.length);
    const seen: string[] = [];
    for (const c of r.calls) if (!seen.includes(c.eventId)) seen.push(c.eventId);
    assert.deepEqual(seen, [...first, ...second], 'first deliveries in queue order, none lost');
    await until('the last one recorded', async () => (await f.events.queued(sub, first.length + second.length))?.state === 'delivered');
    for (let seq = 1; seq <= first.length + second.length; seq += 1) assert.equal((await f.events.queued(sub, seq))?.state, 'delivered');
  } finally {
    await t2.stop();
  }
});

test('a row republished after a crash between publish and markPublished is delivered once', opts, async () => {
  const f = await fixture();
  const sub = await f.subscribe('sub-crash');
  await f.queue(sub, ['c1', 'c2', 'c3']);
  let release: () => void = () => undefined;
  const gate = new Promise<void>((res) => {
    release = res;
  });
  const r = recorder(async () => {
    await gate;
    return { kind: 'delivered' };
  });
  const t = new JetStreamTransport(f.options);
  await t.start(r.deliver);
  try {
    t.wake();
    await until('all published', async () => (await f.events.unpublished(10)).length === 0);
    const nc = await connect({ servers: NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      const m = await jsm.streams.getMessage(t.streamName(f.provider), { seq: 1 });
      // A pointer into the store: the event (personal data) is not copied into the broker.
      assert.deepEqual(m?.json(), { subscription: sub, seq: 1 });
      // The subject names hashes of the register and subscription, and the person's partition.
      assert.equal(m?.subject, `${f.options.subjectPrefix}.${token(f.provider)}.${token(sub)}.${partitionOf('person-1')}`);
    } finally {
      await nc.close();
    }
    // As if the process had died before recording that it published them.
    await f.events.db.updateTable('event_queue').set({ published: 0 }).where('subscription', '=', sub).execute();
    t.wake();
    await until('all republished', async () => (await f.events.unpublished(10)).length === 0);
    release();
    await until('three deliveries', () => r.calls.length >= 3);
    await new Promise((res) => setTimeout(res, 400));
    assert.deepEqual(r.calls.map((c) => c.eventId), ['c1', 'c2', 'c3'], 'the same msgID fell in the duplicate window');
  } finally {
    release();
    await t.stop();
  }
});

test('two subscriptions progress independently: one whose delivery hangs does not hold back the other', opts, async () => {
  const f = await fixture({ maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 200 });
  const stuck = await f.subscribe('sub-stuck');
  const free = await f.subscribe('sub-free');
  await f.queue(stuck, ['s1', 's2']);
  await f.queue(free, ids('f', 6));
  let release: () => void = () => undefined;
  const gate = new Promise<void>((res) => {
    release = res;
  });
  const r = recorder(async (e) => {
    if (e.subscription === stuck && e.eventId === 's1') await gate;
    return { kind: 'delivered' };
  });
  const t = new JetStreamTransport(f.options);
  await t.start(r.deliver);
  try {
    t.wake();
    await until('the free subscription\'s events', () => r.calls.filter((c) => c.sub === free).length === 6);
    assert.deepEqual(r.calls.filter((c) => c.sub === free).map((c) => c.eventId), ids('f', 6));
    assert.deepEqual(r.calls.filter((c) => c.sub === stuck).map((c) => c.eventId), ['s1'], 's2 waits behind s1');
    release();
    await until('the stuck subscription\'s events', () => r.count('s2') === 1);
    assert.deepEqual(r.calls.filter((c) => c.sub === stuck).map((c) => c.eventId), ['s1', 's2']);
  } finally {
    release();
    await t.stop();
  }
});

test('two subscriptions progress independently: one failing and backing off does not hold back the other', opts, async () => {
  const f = await fixture({ maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 1000 });
  const failing = await f.subscribe('sub-failing');
  const free = await f.subscribe('sub-free');
  await f.queue(failing, ['x1', 'x2']);
  await f.queue(free, ids('g', 6));
  const r = recorder((e) => (e.subscription === failing ? { kind: 'retry', reason: 'HTTP 500' } : { kind: 'delivered' }));
  const t = new JetStreamTransport(f.options);
  await t.start(r.deliver);
  try {
    t.wake();
    await until('both dead letters', async () => (await f.events.deadLetters(failing)).length === 2);
    const g = r.calls.filter((c) => c.sub === free);
    assert.deepEqual(g.map((c) => c.eventId), ids('g', 6));
    // Attempts 2 and 3 of x1 come at least 100 ms and 200 ms after the first: the free
    // subscription was done before x1's backoff was over.
    const x1 = r.calls.filter((c) => c.eventId === 'x1');
    assert.equal(x1.length, 3);
    assert.ok(g[5]!.at < x1[2]!.at, 'the free subscription finished while the other was still retrying');
    assert.deepEqual(r.calls.filter((c) => c.sub === failing).map((c) => c.eventId), ['x1', 'x1', 'x1', 'x2', 'x2', 'x2'], 'x2 only after x1 was settled');
  } finally {
    await t.stop();
  }
});

test('events about different people of one subscription progress independently; one person\'s stay in order', opts, async () => {
  const f = await fixture({ maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 200 });
  const sub = await f.subscribe('sub-people');
  // Two people whose events land in different partitions.
  const slow = 'person-1';
  let quick = 'person-2';
  for (let i = 2; partitionOf(quick) === partitionOf(slow); i++) quick = `person-${i}`;
  await f.queue(sub, ['p1', 'p2'], slow);
  await f.queue(sub, ids('q', 4), quick);
  let release: () => void = () => undefined;
  const gate = new Promise<void>((res) => {
    release = res;
  });
  const r = recorder(async (e) => {
    if (e.eventId === 'p1') await gate;
    return { kind: 'delivered' };
  });
  const t = new JetStreamTransport(f.options);
  await t.start(r.deliver);
  try {
    t.wake();
    await until('the other person\'s events', () => ids('q', 4).every((id) => r.count(id) === 1));
    assert.deepEqual(r.calls.filter((c) => c.eventId.startsWith('q')).map((c) => c.eventId), ids('q', 4), 'in order');
    assert.equal(r.count('p2'), 0, 'p2 waits behind p1, about the same person');
    release();
    await until('the held person\'s second event', () => r.count('p2') === 1);
    assert.deepEqual(r.calls.filter((c) => c.eventId.startsWith('p')).map((c) => c.eventId), ['p1', 'p2']);
  } finally {
    release();
    await t.stop();
  }
});

test('a removed subscription\'s consumer is deleted', opts, async () => {
  const f = await fixture();
  const sub = await f.subscribe('sub-removed');
  const r = recorder();
  const t = new JetStreamTransport(f.options);
  await t.start(r.deliver);
  const nc = await connect({ servers: NATS_URL });
  try {
    const jsm = await jetstreamManager(nc);
    const stream = t.streamName(f.provider);
    const names = async (): Promise<string[]> => {
      const out: string[] = [];
      // A consumer deleted while the list is paged comes back as null (seen in CI): skipped.
      for await (const ci of jsm.consumers.list(stream) as AsyncIterable<{ name: string } | null>) if (ci) out.push(ci.name);
      return out;
    };
    assert.deepEqual((await names()).sort(), Array.from({ length: PARTITIONS }, (_, p) => `s_${token(sub)}_${p}`).sort(), 'one consumer per partition');
    await f.events.removeSubscription(sub, new Date().toISOString());
    t.wake();
    await until('the consumer gone', async () => (await names()).length === 0);
  } finally {
    await nc.close();
    await t.stop();
  }
});
