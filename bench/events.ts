/**
 * @module bench/events
 * Issue "Tell Us Once" benchmark: a change recorded at the population register, through the
 * register's gateway (relay, entitlement check, signing, message log, access record), over mutual
 * TLS to the subscribers' gateway (message log, signed webhook) into 3 subscriber systems, with
 * both gateways in their own processes, as deployed.
 *
 * - Latency: at a steady rate of changes (100 a second), from the change request's response to
 *   the event's arrival at each subscriber's system, p50 and p99.
 * - Throughput: a burst of changes as fast as the register takes them; events delivered per second
 *   (3 per change) until the last arrives, and how fast the register took the changes.
 * - Backlog: the same number of changes recorded while the register's gateway is stopped, then
 *   drained once it is back: delivery's own rate, without the register's writes.
 *
 * Baselines in the same run, with the same payload (one delivered event's JSON): a plain HTTP POST
 * of it to a receiver on loopback (latency at the same rate, and throughput at the same
 * concurrency), and a bare NATS JetStream publish -> consume of it (latency at the same rate;
 * skipped, with a line saying so, where no NATS answers). Run once per transport: the embedded
 * dispatcher, and JetStream when NATS is reachable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { connect, headers } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { IDS, TEST_AGREEMENTS, startExchange, type Exchange } from '../test/support/exchange.ts';
import { readSettings, setWebhook, writeSettings } from '../src/gateway/node.ts';
import { newWebhookSecret } from '../src/events/format.ts';
import { startReceiver, type Receiver } from '../src/events/receiver.ts';
import type { BenchResult } from './foundation.ts';
import { cpuMs } from './exchange.ts';

const BIN = fileURLToPath(new URL('../bin/onceonly.js', import.meta.url));
const SUBSCRIBERS = [IDS.parking, 'UK/MUN/LEEDS/revenues', 'UK/MUN/LEEDS/housing'] as const;
const NOTIFY = { 'x-onceonly-purpose': 'change-notification', 'content-type': 'application/json', accept: 'application/json' };
const CONCURRENCY = 8;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`events bench: timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Runs `fire` `rate` times a second for `seconds`, each call started on its tick (not after the previous one). */
async function atRate(rate: number, seconds: number, fire: (i: number) => Promise<void>): Promise<void> {
  const start = performance.now();
  const total = rate * seconds;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(fire(i));
  }
  await Promise.all(pending);
}

/** The local nats-server's process id (Linux /proc), for its CPU; undefined when none is found. */
function natsServerPid(): number | undefined {
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'nats-server') return Number(d);
      } catch {
        // Gone meanwhile.
      }
    }
  } catch {
    // Not Linux.
  }
  return undefined;
}

/** Runs `fire` over 0..n-1 with `concurrency` in flight. */
async function pool(n: number, concurrency: number, fire: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await fire(next++);
  }));
}

function gatewayProcess(dir: string, natsUrl: string | undefined): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // BENCH_PROFILE=1: CPU profiles of both gateways in /tmp/prof-events (as the exchange bench's BENCH_PROFILE).
    const prof = process.env['BENCH_PROFILE'] === '1' ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof-events'] : [];
    const c = spawn(process.execPath, [...prof, BIN, 'gateway', 'serve', '--dir', dir], { env: { ...process.env, NATS_URL: natsUrl ?? '', DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('client side')) resolve(c);
    });
    c.once('exit', (code) => reject(new Error(`gateway ${dir} exited with ${code}: ${err}`)));
  });
}

async function stopProcess(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await exited;
}

interface Rig {
  ex: Exchange;
  receivers: Receiver[];
  /** Event id -> arrival times at the subscribers' systems (performance.now()). */
  arrivals: Map<string, number[]>;
  people: string[];
  addresses: string[];
  change(person: string, addressId: string): Promise<{ eventId: string; at: number }>;
  /** Stops the register's gateway (its relay and dispatcher with it). */
  stopRegisterGateway(): Promise<void>;
  /** Starts it again; resolves when it serves. */
  startRegisterGateway(): Promise<void>;
  /** Process ids: the register's gateway, the subscribers' gateway. */
  pids(): { register: number | undefined; subscribers: number | undefined };
  stop(): Promise<void>;
}

async function rig(natsUrl: string | undefined, people: number, addresses: number): Promise<Rig> {
  const ex = await startExchange({ confIntervalMs: 60_000, ...(natsUrl ? { natsUrl } : {}) });
  const children: ChildProcess[] = [];
  const receivers: Receiver[] = [];
  const agent = new Agent({ connections: 64, pipelining: 1 });
  try {
    for (const id of SUBSCRIBERS.slice(1)) {
      await ex.central.addSubsystem({ id });
      await ex.central.assignSubsystem(IDS.leedsGw, id);
    }
    await ex.central.publishAgreements({
      agreements: [
        ...TEST_AGREEMENTS.agreements,
        ...SUBSCRIBERS.map((client) => ({
          id: `bench-${client.split('/').pop()}-moves`, client, provider: IDS.population, items: ['person.address'], events: ['move'],
          purpose: { id: 'change-notification', description: 'Keep the address current.' }, legalBasis: 'Synthetic agreement for the benchmark', validFrom: '2020-01-01', validUntil: '2099-12-31',
        })),
      ],
    });
    const arrivals = new Map<string, number[]>();
    for (const sub of SUBSCRIBERS) {
      const secret = newWebhookSecret();
      const rx = await startReceiver({
        secret,
        onEvent: (e) => {
          const at = performance.now();
          const a = arrivals.get(e.id);
          if (a) a.push(at);
          else arrivals.set(e.id, [at]);
        },
      });
      receivers.push(rx);
      setWebhook(ex.dirs.leeds, sub, rx.url, { secret, timeoutMs: 5000 });
    }
    const gro = readSettings(ex.dirs.gro);
    gro.services[IDS.population]!['people']!.events = `${ex.registryUrl}/events`;
    writeSettings(ex.dirs.gro, gro);
    // Both gateways in their own processes, as deployed (and as the exchange bench runs them).
    await ex.stopGateway('gro');
    await ex.stopGateway('leeds');
    children.push(await gatewayProcess(ex.dirs.gro, natsUrl), await gatewayProcess(ex.dirs.leeds, natsUrl));
    const leedsClient = `http://127.0.0.1:${readSettings(ex.dirs.leeds).client.port}`;
    const call = async (path: string, client: string, method: 'POST' | 'PUT', body?: unknown): Promise<unknown> => {
      const r = await request(`${leedsClient}${path}`, { method, headers: { ...NOTIFY, 'x-road-client': client }, dispatcher: agent, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      const text = await r.body.text();
      if (r.statusCode >= 300) throw new Error(`events bench: ${method} ${path} as ${client}: ${r.statusCode} ${text.slice(0, 300)}`);
      return JSON.parse(text) as unknown;
    };
    const subs: string[] = [];
    for (const client of SUBSCRIBERS) subs.push(((await call(`/r1/${IDS.population}/subscriptions`, client, 'POST', { events: ['move'], mode: 'push' })) as { id: string }).id);
    const home = (await ex.registries.addresses.register({ lines: ['1 Bench Street'], town: 'Leeds', postcode: 'LS1 1AA' })).id;
    const ids: string[] = [];
    for (let i = 0; i < people; i++) ids.push((await ex.registries.population.register({ givenName: `Bench${i}`, familyName: 'Synthetic', birthDate: '1980-01-01', addressId: home })).id);
    const addrs: string[] = [];
    for (let i = 0; i < addresses; i++) addrs.push((await ex.registries.addresses.register({ lines: [`${i + 2} Bench Street`], town: 'Leeds', postcode: 'LS1 1AA' })).id);
    // Each subscriber serves every one of these people (each addition checked like a read).
    await pool(ids.length * subs.length, CONCURRENCY, async (k) => {
      const s = k % subs.length;
      await call(`/r1/${IDS.population}/subscriptions/${subs[s]}/interests/${ids[Math.floor(k / subs.length)]}`, SUBSCRIBERS[s]!, 'PUT');
    });
    const today = new Date().toISOString().slice(0, 10);
    const registry = new Agent({ connections: 64 });
    return {
      ex,
      receivers,
      arrivals,
      people: ids,
      addresses: addrs,
      async change(person, addressId) {
        // What the register's own system does: record the change at the register, over HTTP.
        const r = await request(`${ex.registryUrl}/people/${person}/changes`, { method: 'POST', dispatcher: registry, headers: { 'content-type': 'application/json', authorization: `Bearer ${ex.registryToken}` }, body: JSON.stringify({ type: 'move', addressId, effectiveDate: today }) });
        const text = await r.body.text();
        const at = performance.now();
        if (r.statusCode !== 201) throw new Error(`events bench: change refused: ${r.statusCode} ${text.slice(0, 200)}`);
        return { eventId: (JSON.parse(text) as { eventId: string }).eventId, at };
      },
      pids: () => ({ register: children[0]?.pid, subscribers: children[1]?.pid }),
      async stopRegisterGateway() {
        await stopProcess(children[0]!);
      },
      async startRegisterGateway() {
        children[0] = await gatewayProcess(ex.dirs.gro, natsUrl);
      },
      async stop() {
        await Promise.all(children.map(stopProcess));
        await Promise.all(receivers.map((r) => r.close()));
        await agent.close();
        await registry.close();
        await ex.stop();
      },
    };
  } catch (e) {
    await Promise.all(children.map(stopProcess));
    await Promise.all(receivers.map((r) => r.close()));
    await ex.stop();
    throw e;
  }
}

interface Measured {
  p50: number;
  p99: number;
  perSecond: number;
  /** How fast the register took the burst's changes (the events' source). */
  changesPerSecond: number;
  /** Events delivered per second draining a backlog (the register's write rate left out). */
  drainPerSecond: number;
  /** CPU ms per event of each process while draining. */
  drainCpu: Record<string, number>;
  payload: string;
}

/** The whole path: latency at `rate` changes a second, then a burst for throughput. */
async function measurePath(natsUrl: string | undefined, rate: number, seconds: number, burst: number): Promise<Measured> {
  const steady = rate * seconds;
  const r = await rig(natsUrl, 100, steady + 2 * burst + 50);
  try {
    let a = 0;
    const next = (): string => r.addresses[a++]!;
    // Warm-up: connections, JIT, the subscribers' consumers.
    for (let i = 0; i < 20; i++) {
      const c = await r.change(r.people[i % r.people.length]!, next());
      await until('the warm-up events', () => (r.arrivals.get(c.eventId)?.length ?? 0) >= SUBSCRIBERS.length, 30_000);
    }
    const sent = new Map<string, number>();
    await atRate(rate, seconds, async (i) => {
      const c = await r.change(r.people[i % r.people.length]!, next());
      sent.set(c.eventId, c.at);
    });
    await until('every steady-rate event at every subscriber', () => [...sent.keys()].every((id) => (r.arrivals.get(id)?.length ?? 0) >= SUBSCRIBERS.length), 120_000);
    const lat: number[] = [];
    for (const [id, at] of sent) for (const t of r.arrivals.get(id)!) lat.push(Math.max(0, t - at));
    lat.sort((x, y) => x - y);
    // Throughput: as fast as the register takes changes, until the last event arrives.
    const burstIds: string[] = [];
    const t0 = performance.now();
    await pool(burst, CONCURRENCY, async (i) => {
      burstIds.push((await r.change(r.people[i % r.people.length]!, next())).eventId);
    });
    const recorded = performance.now();
    await until('every burst event at every subscriber', () => burstIds.every((id) => (r.arrivals.get(id)?.length ?? 0) >= SUBSCRIBERS.length), 300_000);
    const last = Math.max(...burstIds.flatMap((id) => r.arrivals.get(id)!));
    // Delivery alone: a backlog of `burst` changes recorded while the register's gateway was
    // stopped (maintenance), drained once it is back: relay, routing, exchange, webhooks, without
    // the register's own write rate in the figure.
    await r.stopRegisterGateway();
    const backlog: string[] = [];
    await pool(burst, CONCURRENCY, async (i) => {
      backlog.push((await r.change(r.people[i % r.people.length]!, next())).eventId);
    });
    await r.startRegisterGateway();
    const d0 = performance.now();
    // CPU per event of each part while draining (far steadier than rates on a shared machine).
    const pids = r.pids();
    const nats = natsUrl ? natsServerPid() : undefined;
    const cpu0 = { register: cpuMs(pids.register), subscribers: cpuMs(pids.subscribers), bench: process.cpuUsage(), nats: cpuMs(nats) };
    await until('every backlog event at every subscriber', () => backlog.every((id) => (r.arrivals.get(id)?.length ?? 0) >= SUBSCRIBERS.length), 300_000);
    const drained = Math.max(...backlog.flatMap((id) => r.arrivals.get(id)!));
    const events = burst * SUBSCRIBERS.length;
    const per = (a: number | undefined, b: number | undefined): number => (a === undefined || b === undefined ? Number.NaN : (b - a) / events);
    const benchCpu = process.cpuUsage(cpu0.bench);
    const drainCpu = {
      register_gateway_cpu_ms_per_event: per(cpu0.register, cpuMs(pids.register)),
      subscriber_gateway_cpu_ms_per_event: per(cpu0.subscribers, cpuMs(pids.subscribers)),
      bench_process_cpu_ms_per_event: (benchCpu.user + benchCpu.system) / 1000 / events,
      ...(nats !== undefined ? { nats_server_cpu_ms_per_event: per(cpu0.nats, cpuMs(nats)) } : {}),
    };
    const dups = r.receivers.reduce((n, x) => n + x.duplicates.length, 0);
    if (dups > 0) process.stderr.write(`events bench: ${dups} duplicate deliveries (dropped by the receivers)\n`);
    return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), perSecond: (burst * SUBSCRIBERS.length * 1000) / (last - t0), changesPerSecond: (burst * 1000) / (recorded - t0), drainPerSecond: (burst * SUBSCRIBERS.length * 1000) / (drained - d0), drainCpu, payload: JSON.stringify(r.receivers[0]!.events.at(-1)) };
  } finally {
    await r.stop();
  }
}

/** Baseline: a plain HTTP POST of the payload to a receiver that reads it and answers 200. */
async function measureHttp(payload: string, rate: number, seconds: number, burst: number): Promise<{ p50: number; p99: number; perSecond: number }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/events`;
  const agent = new Agent({ connections: 64 });
  const post = async (): Promise<void> => {
    const r = await request(url, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: payload });
    await r.body.text();
  };
  try {
    for (let i = 0; i < 200; i++) await post();
    const lat: number[] = [];
    await atRate(rate, seconds, async () => {
      const t = performance.now();
      await post();
      lat.push(performance.now() - t);
    });
    lat.sort((x, y) => x - y);
    const n = burst * SUBSCRIBERS.length;
    const t0 = performance.now();
    await pool(n, CONCURRENCY, post);
    return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), perSecond: (n * 1000) / (performance.now() - t0) };
  } finally {
    await agent.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Baseline: a bare JetStream publish -> consume of the payload at the same rate, on a stream of its own. */
async function measureNats(natsUrl: string, payload: string, rate: number, seconds: number): Promise<{ p50: number; p99: number }> {
  const nc = await connect({ servers: natsUrl });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const stream = `ONCEONLY_BENCH_${process.pid}`;
  const subject = `onceonly.bench.${process.pid}`;
  try {
    await jsm.streams.add({ name: stream, subjects: [subject], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
    await jsm.consumers.add(stream, { durable_name: 'bench', ack_policy: AckPolicy.Explicit });
    const consumer = await js.consumers.get(stream, 'bench');
    const messages = await consumer.consume({ max_messages: 64 });
    const sentAt = new Map<number, number>();
    const lat: number[] = [];
    let got = 0;
    const reading = (async () => {
      for await (const m of messages) {
        const i = Number(m.headers?.get('i'));
        m.ack();
        const t = sentAt.get(i);
        if (t !== undefined) lat.push(performance.now() - t);
        got++;
      }
    })();
    const send = async (i: number): Promise<void> => {
      const h = headers();
      h.set('i', String(i));
      sentAt.set(i, performance.now());
      await js.publish(subject, payload, { headers: h });
    };
    for (let i = 0; i < 100; i++) await send(-1 - i);
    const total = rate * seconds;
    await atRate(rate, seconds, send);
    await until('the NATS baseline messages', () => got >= total + 100, 60_000);
    await messages.close();
    await reading;
    lat.sort((x, y) => x - y);
    return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99) };
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
}

async function natsReachable(url: string): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: url, timeout: 1000, reconnect: false });
    await jetstreamManager(nc, { timeout: 1000 });
    await nc.close();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

export async function runEvents(o: { rate: number; seconds: number; burst: number }): Promise<BenchResult[]> {
  const natsUrl = process.env['NATS_URL'] || 'nats://127.0.0.1:4222';
  const natsDown = await natsReachable(natsUrl);
  if (natsDown !== undefined) process.stderr.write(`events bench: the JetStream transport and the bare NATS baseline are skipped: NATS JetStream is not reachable at ${natsUrl} (${natsDown})\n`);
  const results: BenchResult[] = [];
  for (const transport of natsDown === undefined ? ['embedded', 'jetstream'] as const : ['embedded'] as const) {
    const path = await measurePath(transport === 'jetstream' ? natsUrl : undefined, o.rate, o.seconds, o.burst);
    const http = await measureHttp(path.payload, o.rate, o.seconds, o.burst);
    const nats = natsDown === undefined ? await measureNats(natsUrl, path.payload, o.rate, o.seconds) : undefined;
    const label = `Tell Us Once (${transport}), ${o.rate} changes/s, ${SUBSCRIBERS.length} subscribers`;
    const extra = { p50_ms: path.p50, http_p50_ms: http.p50, http_p99_ms: http.p99, ...(nats ? { nats_p50_ms: nats.p50, nats_p99_ms: nats.p99 } : {}), payload_bytes: Buffer.byteLength(path.payload) };
    // Latency ratios are value / baseline: lower is better, unlike the rates.
    results.push({ name: `${label}: p99 latency, change response -> subscriber (ratio: x the plain HTTP POST's p99)`, value: path.p99, unit: 'ms', baseline: http.p99, baselineName: 'plain HTTP POST of the payload, p99', ratio: path.p99 / http.p99, extra });
    if (nats) results.push({ name: `${label}: p99 latency (ratio: x the bare JetStream publish -> consume p99)`, value: path.p99, unit: 'ms', baseline: nats.p99, baselineName: 'bare JetStream publish -> consume of the payload, p99', ratio: path.p99 / nats.p99, extra: { p50_ms: path.p50, nats_p50_ms: nats.p50 } });
    results.push({ name: `${label}: events delivered per second, burst of ${o.burst} changes (target ratio >= 0.3)`, value: path.perSecond, unit: 'events/s', baseline: http.perSecond, baselineName: `plain HTTP POSTs of the payload, ${CONCURRENCY} in flight`, ratio: path.perSecond / http.perSecond, extra: { register_changes_per_s: path.changesPerSecond } });
    results.push({ name: `${label}: events delivered per second draining a backlog of ${o.burst} changes (the register's gateway restarted; the register's write rate left out)`, value: path.drainPerSecond, unit: 'events/s', baseline: http.perSecond, baselineName: `plain HTTP POSTs of the payload, ${CONCURRENCY} in flight`, ratio: path.drainPerSecond / http.perSecond, extra: path.drainCpu });
  }
  return results;
}
