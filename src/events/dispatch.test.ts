/**
 * The embedded dispatcher over the gateway's own store: order per person, people independent of
 * each other, a bound on deliveries in flight, backoff with full jitter, dead letters and
 * redelivery. (The whole path over the exchange is in tellusonce.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openStore, type Store } from '../store/db.ts';
import { EventStore, type QueuedEvent } from './store.ts';
import { backoffMs, EmbeddedTransport, type Outcome, type RetryPolicy } from './dispatch.ts';

const DIR = mkdtempSync(join(tmpdir(), 'onceonly-dispatch-'));
const stores: Store[] = [];
after(async () => {
  for (const s of stores) await s.close();
  rmSync(DIR, { recursive: true, force: true });
});

let n = 0;
async function fixture(): Promise<{ events: EventStore; subscribe: (id: string) => Promise<string>; queue: (sub: string, ids: string[], subject: string) => Promise<void> }> {
  n += 1;
  const store = await openStore({ sqliteFile: join(DIR, `d${n}.sqlite`) });
  stores.push(store);
  const events = new EventStore(store.db);
  const provider = 'GB/GOV/GRO/population';
  const at = new Date().toISOString();
  await events.initRelay(provider, 0, at);
  let cursor = 0;
  return {
    events,
    subscribe: async (id) => {
      await events.createSubscription({ id, provider, client: 'GB/MUN/LEEDS/parking', events: ['move'], agreement: 'agr-1', purpose: 'change-notification', mode: 'push', createdAt: at, fromSeq: 0 });
      return id;
    },
    queue: async (sub, ids, subject) => {
      const rows = ids.map((eventId) => ({ subscription: sub, eventId, subject, type: 'move', payload: (seq: number) => JSON.stringify({ id: eventId, seq }) }));
      assert.ok(await events.enqueue(provider, cursor, cursor + ids.length, rows, new Date().toISOString()));
      cursor += ids.length;
    },
  };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const policy: RetryPolicy = { maxAttempts: 3, baseDelayMs: 30, maxDelayMs: 100 };

test('backoff is full jitter: within 0 and min(max, base * 2^(attempt-1))', () => {
  for (let attempt = 1; attempt <= 12; attempt++) {
    const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
    for (let i = 0; i < 200; i++) {
      const d = backoffMs(attempt, policy);
      assert.ok(d >= 0 && d <= cap, `attempt ${attempt}: ${d} within 0..${cap}`);
    }
  }
});

test('events about different people leave side by side; one person\'s in order, the next only after the one before is settled', async () => {
  const f = await fixture();
  const sub = await f.subscribe('s-people');
  await f.queue(sub, ['a1', 'a2', 'a3'], 'person-a');
  await f.queue(sub, ['b1', 'b2'], 'person-b');
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const calls: string[] = [];
  const t = new EmbeddedTransport({ store: f.events, policy, leaseName: 'd', pollMs: 50 });
  await t.start(async (e: QueuedEvent): Promise<Outcome> => {
    calls.push(e.eventId);
    if (e.eventId === 'a1') await gate;
    return { kind: 'delivered' };
  });
  try {
    t.wake();
    await until('person b\'s events', () => calls.includes('b2'));
    assert.deepEqual(calls.filter((c) => c.startsWith('b')), ['b1', 'b2']);
    assert.deepEqual(calls.filter((c) => c.startsWith('a')), ['a1'], 'a2 waits behind a1');
    release();
    await until('person a\'s events', () => calls.includes('a3'));
    assert.deepEqual(calls.filter((c) => c.startsWith('a')), ['a1', 'a2', 'a3']);
    await until('all recorded', async () => (await f.events.queued(sub, 5))?.state === 'delivered' && (await f.events.queued(sub, 3))?.state === 'delivered');
  } finally {
    release();
    await t.stop();
  }
});

test('no more than maxInFlight deliveries at once', async () => {
  const f = await fixture();
  const sub = await f.subscribe('s-bound');
  for (let p = 0; p < 12; p++) await f.queue(sub, [`e${p}`], `person-${p}`);
  let now = 0;
  let most = 0;
  let done = 0;
  const t = new EmbeddedTransport({ store: f.events, policy, leaseName: 'd', pollMs: 50, maxInFlight: 3 });
  await t.start(async () => {
    now++;
    most = Math.max(most, now);
    await new Promise((r) => setTimeout(r, 30));
    now--;
    done++;
    return { kind: 'delivered' };
  });
  try {
    t.wake();
    await until('every event', () => done === 12);
    assert.equal(most, 3);
  } finally {
    await t.stop();
  }
});

test('retries with backoff, a dead letter after maxAttempts, a refusal never retried, and redelivery on request', async () => {
  const f = await fixture();
  const sub = await f.subscribe('s-fail');
  await f.queue(sub, ['x1'], 'person-x');
  await f.queue(sub, ['r1'], 'person-r');
  const calls: { id: string; at: number }[] = [];
  let healthy = false;
  const t = new EmbeddedTransport({ store: f.events, policy, leaseName: 'd', pollMs: 50 });
  await t.start((e): Promise<Outcome> => {
    calls.push({ id: e.eventId, at: Date.now() });
    if (e.eventId === 'r1') return Promise.resolve({ kind: 'refused', reason: 'no_agreement' });
    return Promise.resolve(healthy ? { kind: 'delivered' } : { kind: 'retry', reason: 'HTTP 503' });
  });
  try {
    t.wake();
    await until('the dead letter', async () => (await f.events.deadLetters(sub)).length === 1);
    assert.equal(calls.filter((c) => c.id === 'x1').length, 3, 'maxAttempts attempts');
    assert.equal(calls.filter((c) => c.id === 'r1').length, 1, 'a refusal is final');
    assert.equal((await f.events.queued(sub, 2))?.state, 'refused');
    const dead = (await f.events.deadLetters(sub))[0]!;
    assert.equal(dead.attempts, 3);
    assert.match(dead.lastError ?? '', /HTTP 503/);
    healthy = true;
    await f.events.redeliver(sub, undefined, new Date().toISOString());
    t.wake();
    await until('redelivered', async () => (await f.events.queued(sub, 1))?.state === 'delivered');
    assert.equal(calls.filter((c) => c.id === 'x1').length, 4);
    assert.equal((await f.events.queued(sub, 2))?.state, 'refused', 'a refused event is not put back');
  } finally {
    await t.stop();
  }
});

test('two dispatchers on one store: only the lease holder delivers; the other takes over when it stops', async () => {
  const f = await fixture();
  const sub = await f.subscribe('s-lease');
  const by: Record<string, string[]> = { first: [], second: [] };
  const deliverAs = (name: string) => (e: QueuedEvent): Promise<Outcome> => {
    by[name]!.push(e.eventId);
    return Promise.resolve({ kind: 'delivered' });
  };
  // A long poll for the first: its lease renewal stays fresh across the stop and start below.
  const first = new EmbeddedTransport({ store: f.events, policy, leaseName: 'shared', pollMs: 5000 });
  const second = new EmbeddedTransport({ store: f.events, policy, leaseName: 'shared', pollMs: 30 });
  try {
    await first.start(deliverAs('first'));
    await until('the first holds the lease', async () => {
      const row = await f.events.db.selectFrom('event_lease').selectAll().where('name', '=', 'shared').executeTakeFirst();
      return row !== undefined && row.until > new Date().toISOString();
    });
    await second.start(deliverAs('second'));
    await f.queue(sub, ['x1', 'x2', 'x3'], 'person-x');
    first.wake();
    second.wake();
    await until('three delivered', () => by['first']!.length + by['second']!.length === 3);
    // Several polls (each a chance to renew or take the lease) with the second running beside it.
    await new Promise((r) => setTimeout(r, 200));
    await f.queue(sub, ['y1'], 'person-y');
    first.wake();
    second.wake();
    await until('the fourth delivered', () => by['first']!.length + by['second']!.length === 4);
    assert.deepEqual(by['first'], ['x1', 'x2', 'x3', 'y1']);
    assert.deepEqual(by['second'], [], 'the one without the lease delivered nothing');
    await first.stop();
    await f.queue(sub, ['z1'], 'person-z');
    second.wake();
    await until('the second took over', () => by['second']!.length === 1);
    assert.deepEqual(by['second'], ['z1']);
    // Started again, the first takes the lease afresh rather than trust its renewal before stopping.
    await first.start(deliverAs('first'));
    await f.queue(sub, ['w1'], 'person-w');
    first.wake();
    second.wake();
    await until('the fifth delivered', () => by['second']!.length === 2 || by['first']!.length === 5);
    assert.deepEqual(by['second'], ['z1', 'w1'], 'still the holder');
    assert.equal(by['first'].length, 4, 'the restarted one delivered nothing');
  } finally {
    // Stopped whatever happened, so that a failure cannot leave the test process running.
    await first.stop();
    await second.stop();
  }
});
