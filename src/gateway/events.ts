/**
 * @module gateway/events
 * Tell Us Once at the gateways (issue 12; docs/events.md). Every event travels through the
 * exchange like any release, so it is signed, logged at both ends and, about a person, recorded
 * in the register gateway's transparency log:
 *
 * - at a register's gateway, two built-in services of the register's subsystem:
 *   `subscriptions` (a client subsystem subscribes under an agreement whose `events` name the
 *   kinds of change, keeps its interest list, reads its dead letters and asks for redelivery) and
 *   `events/{subscription}` (the pull feed); the relay (events/relay) queues events from the
 *   register's outbox, and the dispatcher pushes them: as an internal client request from the
 *   register's subsystem to the subscriber's `event-inbox`, with the subscription's entitlement
 *   checked again at that moment;
 * - at a subscriber's gateway, the built-in `event-inbox` of a subsystem with a webhook: it checks
 *   that an agreement in force lets that register tell it of that change with those items, and
 *   forwards the event as a Standard Webhooks request signed with the subsystem's secret.
 */
import { randomUUID } from 'node:crypto';
import { Type } from 'typebox';
import { request } from 'undici';
import { OnceOnlyError, isOnceOnlyError, type ErrorType } from '../core/errors.ts';
import { checker } from '../core/schema.ts';
import { GroupCommit } from '../core/batch.ts';
import { isValidId, type IdKind } from '../core/subjects.ts';
import { encodeIdPath } from '../core/ids.ts';
import type { Agreement } from '../catalogue/agreements.ts';
import { checkChangeEvent, signWebhook, type ChangeEvent } from '../events/format.ts';
import { requireOwn, type EventStore, type QueuedEvent, type Subscription } from '../events/store.ts';
import type { Entitlement } from '../events/relay.ts';
import type { Outcome } from '../events/dispatch.ts';
import type { OutboxEvent } from '../registry/outbox.ts';
import type { Envelope } from '../registry/service.ts';
import type { Release } from '../transparency/access.ts';
import { decideAccess, requireActiveClient, requireActiveProvider } from './access.ts';
import type { ConfView } from './confclient.ts';
import type { InboundRequest, OutboundResponse, ServiceRegistration } from './gateway.ts';

/** The built-in services' codes. */
export const SUBSCRIPTIONS_SERVICE = 'subscriptions';
export const FEED_SERVICE = 'events';
export const INBOX_SERVICE = 'event-inbox';

/** A subscriber subsystem's webhook (`gateway.json` `webhooks`). */
export const WebhookSchema = Type.Object(
  {
    /** The subscriber system's endpoint. */
    url: Type.String({ minLength: 1, maxLength: 2000 }),
    /** Standard Webhooks secret, `whsec_` and base64 (events/format newWebhookSecret). */
    secret: Type.String({ pattern: '^whsec_[A-Za-z0-9+/]{24,}={0,2}$' }),
    timeoutMs: Type.Integer({ minimum: 1, maximum: 60_000 }),
  },
  { additionalProperties: false },
);
export interface Webhook {
  url: string;
  secret: string;
  timeoutMs: number;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const ID_KINDS: IdKind[] = ['person', 'address', 'company'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Most subjects on one interest-list page, events on one feed page. */
const MAX_PAGE = 500;

const NewSubscription = Type.Object(
  {
    events: Type.Array(Type.String({ pattern: '^[a-z][a-zA-Z0-9]{0,39}$' }), { minItems: 1, maxItems: 20, uniqueItems: true }),
    mode: Type.Union([Type.Literal('push'), Type.Literal('pull')]),
  },
  { additionalProperties: false },
);
const checkNewSubscription = checker(NewSubscription, 'body', 'invalid_request');
const Redeliver = Type.Object({ eventIds: Type.Optional(Type.Array(Type.String({ pattern: UUID.source }), { maxItems: 1000 })) }, { additionalProperties: false });
const checkRedeliver = checker(Redeliver, 'body', 'invalid_request');

/** What a built-in answers, before the provider side signs and logs it. */
export interface BuiltinAnswer {
  status: number;
  body: Buffer;
  contentType?: string;
  items: string[];
  agreement: string | null;
  /** About people: the access records to write with the log record. */
  release?: Release | Release[];
}

/** What the provider side hands a built-in. */
export interface BuiltinRequest {
  v: ConfView;
  method: string;
  servicePath: string;
  query: string;
  body: Buffer;
  client: string;
  provider: string;
  purpose: string;
  agreement: string;
  xroadId: string;
  userId: string;
  date: string;
  now: Date;
}

function json(status: number, doc: unknown, extra: Omit<BuiltinAnswer, 'status' | 'body'> = { items: [], agreement: null }): BuiltinAnswer {
  return { status, body: Buffer.from(status === 204 ? '' : JSON.stringify(doc)), contentType: JSON_TYPE, ...extra };
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new OnceOnlyError('invalid_request', 'the body is not JSON', { field: 'body', expected: 'a JSON object' });
  }
}

function query(q: string, allowed: readonly string[]): URLSearchParams {
  const p = new URLSearchParams(q);
  for (const k of new Set(p.keys())) {
    if (!allowed.includes(k)) throw new OnceOnlyError('invalid_request', `the query parameter ${JSON.stringify(k.slice(0, 40))} is not accepted here`, { field: `query.${k.slice(0, 40)}`, expected: allowed.join(', ') || 'no query' });
    if (p.getAll(k).length > 1) throw new OnceOnlyError('invalid_request', `the query parameter ${k} is given more than once`, { field: `query.${k}`, expected: `${k} once` });
  }
  return p;
}

function whole(p: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const raw = p.get(name);
  if (raw === null) return dflt;
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new OnceOnlyError('invalid_request', `${name} must be a whole number from ${min} to ${max}`, { field: `query.${name}`, expected: `${min}..${max}` });
  return n;
}

function inForce(a: Agreement, date: string): boolean {
  return a.validFrom <= date && date <= a.validUntil;
}

/** The change kinds an agreement's events grant a correction of `items` under. */
function grantsKind(a: Agreement, kind: string, types: Record<string, { items: string[] }>, items: readonly string[]): boolean {
  if (kind !== 'correction') return a.events.includes(kind);
  // A correction reaches the subscribers of a kind that carries the corrected item.
  return a.events.some((k) => items.every((i) => types[k]?.items.includes(i) ?? false));
}

/** How a subscription is shown to its client. */
function shown(s: Subscription): Record<string, unknown> {
  return { id: s.id, provider: s.provider, client: s.client, events: s.events, mode: s.mode, agreement: s.agreement, purpose: s.purpose, status: s.status, createdAt: s.createdAt, ...(s.removedAt ? { removedAt: s.removedAt } : {}) };
}

/** One register this gateway serves and relays events of. */
export interface RegisterFeed {
  provider: string;
  /** The registry service reads go to (its `url` and credential headers). */
  service: ServiceRegistration;
  /** The register's outbox (`GET {events}?after=&limit=&wait=`, `GET {events}/types`). */
  eventsUrl: string;
}

/** Options of {@link GatewayEvents}. */
export interface GatewayEventsOptions {
  gatewayId: string;
  store: EventStore;
  /** The global configuration held now. */
  conf: () => ConfView;
  /** Registers with an outbox, by provider subsystem id. */
  registers: Record<string, RegisterFeed>;
  /** Webhooks of this gateway's subscriber subsystems. */
  webhooks: Record<string, Webhook>;
  /** Sends an internal client request through this gateway's client side (the push). */
  send?: (req: InboundRequest & { internal: { release?: (res: OutboundResponse) => Release[] } }) => Promise<OutboundResponse>;
  now?: () => Date;
}

/** Most events in one push (one exchange message). */
const MAX_BATCH = 100;
/** Webhooks a subscriber's gateway sends at once, per push. */
const WEBHOOKS_AT_ONCE = 16;
const InboxBody = Type.Object({ events: Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_BATCH }) }, { additionalProperties: false });
const checkInboxBody = checker(InboxBody, 'body', 'invalid_request');

/** Error types of a refused push that no retry will change: the event is refused for good. */
const FINAL: ReadonlySet<string> = new Set<ErrorType>(['no_agreement', 'agreement_not_in_force', 'item_not_covered', 'member_suspended', 'subsystem_suspended', 'unknown_client', 'service_disabled', 'unknown_service', 'unknown_provider']);

/** Only the items asked for, and only as `provider`'s own: the release check of gateway/release. */
function ownItems(provider: string, items: readonly string[], got: Record<string, Envelope>): Record<string, Envelope> {
  const out: Record<string, Envelope> = {};
  for (const i of items) if (Object.hasOwn(got, i) && got[i]?.source === provider) out[i] = got[i];
  return out;
}

export class GatewayEvents {
  readonly #o: GatewayEventsOptions;
  readonly #now: () => Date;
  readonly #types = new Map<string, { at: number; types: Record<string, { items: string[] }>; latest: number }>();
  /** Pushes under way, per subscription (see deliver). */
  readonly #pushes = new Map<string, GroupCommit<QueuedEvent, Outcome>>();

  constructor(o: GatewayEventsOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => new Date());
  }

  get store(): EventStore {
    return this.#o.store;
  }

  /** Whether `code` of `provider` is a built-in here (a registered service of that code wins). */
  builtin(provider: string, code: string, registered: Record<string, ServiceRegistration> | undefined): boolean {
    if (registered?.[code]) return false;
    if (code === INBOX_SERVICE) return Object.hasOwn(this.#o.webhooks, provider);
    return (code === SUBSCRIPTIONS_SERVICE || code === FEED_SERVICE) && Object.hasOwn(this.#o.registers, provider);
  }

  /** Serves a built-in on the provider side, after the exchange's own checks. */
  handle(code: string, r: BuiltinRequest): Promise<BuiltinAnswer> {
    if (code === INBOX_SERVICE) return this.#inbox(r);
    if (code === FEED_SERVICE) return this.#feed(r);
    return this.#subscriptions(r);
  }

  // ---- the register's side ------------------------------------------------------------------

  async #registerCall(feed: RegisterFeed, url: string, signal?: AbortSignal): Promise<unknown> {
    let res;
    try {
      res = await request(url, { headers: { accept: 'application/json', ...(feed.service.headers ?? {}) }, headersTimeout: feed.service.timeoutMs + 30_000, bodyTimeout: feed.service.timeoutMs + 30_000, ...(signal ? { signal } : {}) });
    } catch (e) {
      throw new OnceOnlyError('service_unreachable', 'the register could not be reached', { code: (e as { code?: string }).code ?? 'error' });
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new OnceOnlyError('service_failed', `the register answered ${res.statusCode}`);
    try {
      return JSON.parse(text);
    } catch {
      throw new OnceOnlyError('service_failed', 'the register answered something that is not JSON');
    }
  }

  /** The register's kinds of change and the items each carries (cached for a minute), and its latest event. */
  async types(provider: string, fresh = false): Promise<{ types: Record<string, { items: string[] }>; latest: number }> {
    const c = this.#types.get(provider);
    if (c && !fresh && Date.now() - c.at < 60_000) return c;
    const feed = this.#feed_(provider);
    const doc = (await this.#registerCall(feed, `${feed.eventsUrl.replace(/\/$/, '')}/types`)) as { types?: Record<string, { items: string[] }>; latest?: number };
    if (typeof doc.types !== 'object' || doc.types === null || typeof doc.latest !== 'number') throw new OnceOnlyError('service_failed', 'the register\'s event types are not in the expected shape');
    const out = { at: Date.now(), types: doc.types, latest: doc.latest };
    this.#types.set(provider, out);
    return out;
  }

  /** The kinds of change last read from the register (empty before the first read). */
  cachedTypes(provider: string): Record<string, { items: string[] }> {
    return this.#types.get(provider)?.types ?? {};
  }

  #feed_(provider: string): RegisterFeed {
    const f = this.#o.registers[provider];
    if (!f) throw new OnceOnlyError('unknown_service', 'this subsystem announces no change events', { field: 'path.service' });
    return f;
  }

  /** Reads the register's outbox after `after` (the relay's source). */
  async outbox(provider: string, after: number, waitSeconds: number, signal?: AbortSignal): Promise<OutboxEvent[]> {
    const feed = this.#feed_(provider);
    const doc = (await this.#registerCall(feed, `${feed.eventsUrl.replace(/\/$/, '')}?after=${after}&limit=200&wait=${waitSeconds}&values=1`, signal)) as { events?: OutboxEvent[] };
    if (!Array.isArray(doc.events)) throw new OnceOnlyError('service_failed', 'the register\'s events are not in the expected shape');
    // The values travel with the events (one request a page, not one a change); what is kept of
    // them passes the same check as a read of them would (readItems). A register that sends none
    // is read item by item.
    for (const e of doc.events) {
      if (e.values === undefined) continue;
      e.values = typeof e.values === 'object' && e.values !== null && Array.isArray(e.items) ? ownItems(provider, e.items, e.values) : {};
    }
    return doc.events;
  }

  /** Reads `items` of `subject` as the register held them valid at `asAt`, known at `knownAt`. */
  async readItems(provider: string, subject: string, items: readonly string[], asAt: string, knownAt: string): Promise<Record<string, Envelope>> {
    const feed = this.#feed_(provider);
    const q = new URLSearchParams({ items: items.join(','), asAt, knownAt });
    const doc = (await this.#registerCall(feed, `${feed.service.url.replace(/\/$/, '')}/${encodeURIComponent(subject)}?${q.toString()}`)) as { items?: Record<string, Envelope> };
    if (typeof doc.items !== 'object' || doc.items === null) throw new OnceOnlyError('service_failed', 'the register\'s answer has no items');
    return ownItems(provider, items, doc.items);
  }

  /**
   * Whether `s` may be told now of a change of `kind` carrying `items`: its agreement in force,
   * naming the kind among its events, granting every item; client and provider active.
   */
  entitled(s: Subscription, kind: string, items: readonly string[], types: Record<string, { items: string[] }>): Entitlement {
    if (s.status !== 'active') return { ok: false, reason: 'the subscription was removed' };
    const v = this.#o.conf();
    try {
      requireActiveClient(v, s.client);
      requireActiveProvider(v, s.provider);
    } catch (e) {
      return { ok: false, reason: isOnceOnlyError(e) ? e.message : String(e) };
    }
    const a = v.conf.agreements.find((x) => x.id === s.agreement);
    const date = this.#now().toISOString().slice(0, 10);
    if (!a || a.client !== s.client || a.provider !== s.provider) return { ok: false, reason: `agreement ${s.agreement} is no longer in the public register` };
    if (!inForce(a, date)) return { ok: false, reason: `agreement ${a.id} is not in force` };
    if (!grantsKind(a, kind, types, items)) return { ok: false, reason: `agreement ${a.id} does not tell of ${kind} changes` };
    const missing = items.filter((i) => !a.items.includes(i));
    if (missing.length) return { ok: false, reason: `agreement ${a.id} does not grant ${missing.join(', ')}` };
    return { ok: true, agreement: a.id, purpose: a.purpose.id, items: a.items };
  }

  async #subscriptions(r: BuiltinRequest): Promise<BuiltinAnswer> {
    const { store } = this.#o;
    const path = r.servicePath;
    const at = r.now.toISOString();
    if (path === '' || path === '/') {
      if (r.method === 'GET') {
        query(r.query, []);
        return json(200, { provider: r.provider, subscriptions: (await store.subscriptions({ provider: r.provider, client: r.client })).map(shown) });
      }
      if (r.method !== 'POST') throw new OnceOnlyError('method_not_allowed', 'subscriptions are listed with GET and made with POST', { field: 'method', expected: 'GET or POST' });
      query(r.query, []);
      const body = checkNewSubscription(parseJson(r.body) ?? {});
      const { types, latest } = await this.types(r.provider, true);
      const unknown = body.events.find((e) => !Object.hasOwn(types, e) && e !== 'correction');
      if (unknown !== undefined) throw new OnceOnlyError('invalid_request', `the register announces no ${JSON.stringify(unknown.slice(0, 40))} changes`, { field: 'body.events', expected: `some of: ${Object.keys(types).join(', ')}` });
      if (body.events.includes('correction')) throw new OnceOnlyError('invalid_request', 'corrections reach the subscribers of the kinds they correct: subscribe to those kinds', { field: 'body.events', expected: Object.keys(types).join(', ') });
      // Subscribing is asking for every item the events can carry, under one agreement naming them all.
      const items = [...new Set(body.events.flatMap((e) => types[e]!.items))];
      const a = decideAccess(r.v, { client: r.client, provider: r.provider, purpose: r.purpose, agreement: r.agreement, items, date: r.date });
      const missing = body.events.filter((e) => !a.events.includes(e));
      if (missing.length) {
        throw new OnceOnlyError('no_agreement', `agreement ${a.id} grants the items but does not tell of ${missing.join(', ')} changes`, { field: 'body.events', agreement: a.id, expected: a.events.length ? `some of: ${a.events.join(', ')}` : `${a.id} names no events` });
      }
      const cursor = await store.relayCursor(r.provider);
      const s = await store.createSubscription({ id: randomUUID(), provider: r.provider, client: r.client, events: body.events, agreement: a.id, purpose: a.purpose.id, mode: body.mode, createdAt: at, fromSeq: cursor >= 0 ? Math.max(cursor, latest) : latest });
      return json(201, shown(s), { items: [], agreement: a.id });
    }
    const m = /^\/([0-9a-f-]{36})(?:\/(interests|dead-letters|redeliver)(?:\/([^/]+))?)?$/.exec(path);
    if (!m) throw new OnceOnlyError('unknown_service', 'no such subscriptions path', { field: 'path', expected: '/, /{id}, /{id}/interests[/{subject}], /{id}/dead-letters, /{id}/redeliver' });
    const s = requireOwn(await store.subscription(m[1]!), r.client, m[1]!);
    const part = m[2];
    if (part === undefined) {
      query(r.query, []);
      if (r.method === 'GET') return json(200, shown(s), { items: [], agreement: s.agreement });
      if (r.method !== 'DELETE') throw new OnceOnlyError('method_not_allowed', 'a subscription is read with GET and ended with DELETE', { field: 'method', expected: 'GET or DELETE' });
      await store.removeSubscription(s.id, at);
      return json(204, null, { items: [], agreement: s.agreement });
    }
    if (s.status !== 'active') throw new OnceOnlyError('conflict', 'the subscription was removed', { field: 'path.subscription' });
    if (part === 'dead-letters') {
      if (r.method !== 'GET') throw new OnceOnlyError('method_not_allowed', 'dead letters are read with GET', { field: 'method', expected: 'GET' });
      const p = query(r.query, ['limit']);
      const dead = await store.deadLetters(s.id, whole(p, 'limit', 100, 1, MAX_PAGE));
      return json(200, { subscription: s.id, deadLetters: dead.map((d) => ({ eventId: d.eventId, sequence: d.seq, type: d.type, attempts: d.attempts, lastError: d.lastError, createdAt: d.createdAt })) }, { items: [], agreement: s.agreement });
    }
    if (part === 'redeliver') {
      if (r.method !== 'POST') throw new OnceOnlyError('method_not_allowed', 'redelivery is asked for with POST', { field: 'method', expected: 'POST' });
      query(r.query, []);
      const body = checkRedeliver(parseJson(r.body) ?? {});
      const n = await store.redeliver(s.id, body.eventIds, at);
      return json(200, { subscription: s.id, redelivered: n }, { items: [], agreement: s.agreement });
    }
    // The interest list.
    if (m[3] === undefined) {
      if (r.method !== 'GET') throw new OnceOnlyError('method_not_allowed', 'the interest list is read with GET; subjects are added with PUT and removed with DELETE on /interests/{subject}', { field: 'method', expected: 'GET' });
      const p = query(r.query, ['after', 'limit']);
      const after = p.get('after') ?? '';
      if (after.length > 64) throw new OnceOnlyError('invalid_request', 'after is too long', { field: 'query.after', expected: 'a subject id' });
      return json(200, { subscription: s.id, subjects: await store.interests(s.id, whole(p, 'limit', 100, 1, MAX_PAGE), after) }, { items: [], agreement: s.agreement });
    }
    query(r.query, []);
    let subject: string;
    try {
      subject = decodeURIComponent(m[3]);
    } catch {
      throw new OnceOnlyError('invalid_request', 'the subject is not valid percent-encoded UTF-8', { field: 'path.subject' });
    }
    // A mistyped id is refused as such, never answered "not found".
    if (!ID_KINDS.some((k) => isValidId(k, subject))) throw new OnceOnlyError('invalid_identifier', 'the subject is not a register id (check character included)', { field: 'path.subject', expected: 'a register id such as a person id' });
    if (r.method === 'DELETE') {
      const gone = await store.removeInterest(s.id, subject);
      if (!gone) throw new OnceOnlyError('not_found', 'that subject is not on the interest list', { field: 'path.subject' });
      return json(204, null, { items: [], agreement: s.agreement });
    }
    if (r.method !== 'PUT') throw new OnceOnlyError('method_not_allowed', 'a subject is added with PUT and removed with DELETE', { field: 'method', expected: 'PUT or DELETE' });
    // Checked like a read: the agreement still in force for this client, and the record there (an
    // existence check, recorded for the person like any).
    const a = decideAccess(r.v, { client: r.client, provider: r.provider, purpose: '', agreement: s.agreement, items: [], date: r.date });
    const feed = this.#feed_(r.provider);
    const doc = (await this.#registerCall(feed, `${feed.service.url.replace(/\/$/, '')}/${encodeURIComponent(subject)}/exists`)) as { exists?: boolean };
    if (doc.exists !== true) throw new OnceOnlyError('unknown_subject', 'the register holds no such record', { field: 'path.subject' });
    const added = await store.addInterest(s.id, subject, at);
    const release: Release | undefined = isValidId('person', subject)
      ? { person: subject, client: r.client, provider: r.provider, service: `${r.provider}/${SUBSCRIPTIONS_SERVICE}`, items: [], agreement: a.id, purpose: a.purpose.id, legalBasis: a.legalBasis, requestId: r.xroadId, userId: r.userId || null }
      : undefined;
    return json(added ? 201 : 200, { subscription: s.id, subject, added }, { items: [], agreement: a.id, ...(release ? { release } : {}) });
  }

  /** The pull feed: `GET /events/{subscription}?after=&limit=`. */
  async #feed(r: BuiltinRequest): Promise<BuiltinAnswer> {
    const { store } = this.#o;
    if (r.method !== 'GET') throw new OnceOnlyError('method_not_allowed', 'the feed is read with GET', { field: 'method', expected: 'GET' });
    const m = /^\/([0-9a-f-]{36})$/.exec(r.servicePath);
    if (!m) throw new OnceOnlyError('unknown_service', 'the feed is read at /events/{subscription}', { field: 'path', expected: '/{subscription id}' });
    const s = requireOwn(await store.subscription(m[1]!), r.client, m[1]!);
    if (s.mode !== 'pull') throw new OnceOnlyError('invalid_request', 'this subscription is pushed to your webhook: its events are not also served as a feed', { field: 'path.subscription', expected: 'a pull subscription' });
    const p = query(r.query, ['after', 'limit']);
    const after = whole(p, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = whole(p, 'limit', 100, 1, MAX_PAGE);
    // Entitlement now, not only when subscribed: a lapsed agreement or suspended member reads nothing.
    const { types } = await this.types(s.provider);
    const page = await store.feed(s.id, after, limit);
    for (const e of page) {
      const doc = JSON.parse(e.payload) as ChangeEvent;
      const ent = this.entitled(s, e.type, Object.keys(doc.data.items), types);
      if (!ent.ok) throw new OnceOnlyError('agreement_not_in_force', `the subscription's events cannot be released now: ${ent.reason}`, { agreement: s.agreement });
    }
    if (page.length === 0 && s.status !== 'active') throw new OnceOnlyError('not_found', 'the subscription was removed', { field: 'path.subscription' });
    const fresh = await store.markFetched(s.id, page.map((e) => e.seq), r.now.toISOString());
    const a = r.v.conf.agreements.find((x) => x.id === s.agreement)!;
    const releases: Release[] = [];
    const items = new Set<string>();
    const events = page.map((e) => {
      const doc = JSON.parse(e.payload) as ChangeEvent;
      for (const i of Object.keys(doc.data.items)) items.add(i);
      // The first fetch is the telling; a page read again repeats what the organisation was told.
      if (fresh.has(e.seq) && isValidId('person', e.subject)) releases.push(this.#notice(s, a, e, Object.keys(doc.data.items), r.xroadId, r.userId));
      return doc;
    });
    const next = page.length ? page[page.length - 1]!.seq : after;
    return json(200, { subscription: s.id, events, next }, { items: [...items], agreement: s.agreement, ...(releases.length ? { release: releases } : {}) });
  }

  #notice(s: Subscription, a: Agreement, e: QueuedEvent, items: string[], requestId: string, userId: string): Release {
    return { person: e.subject, client: s.client, provider: s.provider, service: `${s.provider}/${FEED_SERVICE}`, items, agreement: a.id, purpose: a.purpose.id, legalBasis: a.legalBasis, requestId, userId: userId || null, notice: { type: e.type, eventId: e.eventId } };
  }

  /**
   * Pushes one queued event. Events of one subscription handed over while a push of that
   * subscription is under way travel together in the next one (one exchange message, one
   * signature, one log record at each gateway: the cost that bounds throughput, docs/events.md),
   * so a batch forms only under load and a lone event leaves at once. Never two events about one
   * person of one subscription are in a batch: both transports hand over only the next event
   * about each person once the one before it is settled.
   */
  deliver(e: QueuedEvent): Promise<Outcome> {
    let b = this.#pushes.get(e.subscription);
    if (!b) {
      b = new GroupCommit<QueuedEvent, Outcome>((batch) => this.#push(batch), { max: MAX_BATCH });
      this.#pushes.set(e.subscription, b);
    }
    return b.submit(e);
  }

  /**
   * One push: re-checks the entitlement of each event now, then sends those entitled through this
   * gateway's client side to the subscriber's `event-inbox`, as the register's subsystem, under
   * the subscription's agreement. The access records written are those of the events the
   * subscriber's gateway says it took.
   */
  async #push(batch: QueuedEvent[]): Promise<Outcome[]> {
    const sub = batch[0]!.subscription;
    const s = await this.#o.store.subscription(sub);
    if (!s || s.status !== 'active') return batch.map(() => ({ kind: 'refused', reason: 'the subscription was removed' }));
    const { types } = await this.types(s.provider);
    const outcomes: Outcome[] = new Array<Outcome>(batch.length);
    const sent: { i: number; e: QueuedEvent; id: string; items: string[] }[] = [];
    for (const [i, e] of batch.entries()) {
      const doc = JSON.parse(e.payload) as ChangeEvent;
      const items = Object.keys(doc.data.items);
      const ent = this.entitled(s, e.type, items, types);
      if (ent.ok) sent.push({ i, e, id: doc.id, items });
      else outcomes[i] = { kind: 'refused', reason: ent.reason };
    }
    if (sent.length === 0) return outcomes;
    const a = this.#o.conf().conf.agreements.find((x) => x.id === s.agreement)!;
    const xroadId = `${s.provider.split('/')[0]}-${randomUUID()}`;
    // The payloads are the stored JSON, byte for byte: what the subscriber verifies is what was queued.
    const body = Buffer.from(`{"events":[${sent.map((x) => x.e.payload).join(',')}]}`);
    const headers: [string, string][] = [['X-Road-Client', encodeIdPath(s.provider)], ['X-Road-Id', xroadId], ['X-OnceOnly-Agreement', s.agreement], ['content-type', JSON_TYPE], ['accept', 'application/json']];
    let taken: Map<string, InboxResult> | undefined;
    const res = await this.#o.send!({
      method: 'POST', rawUrl: `/r1/${encodeIdPath(s.client)}/${INBOX_SERVICE}`, rawHeaders: headers.flat(), headers: Object.fromEntries(headers.map(([k, v]) => [k.toLowerCase(), v])), body,
      internal: {
        release: (r) => {
          taken = inboxResults(r.body);
          return sent.filter((x) => taken!.get(x.id)?.received === true && isValidId('person', x.e.subject)).map((x) => this.#notice(s, a, x.e, x.items, xroadId, ''));
        },
      },
    });
    if (res.status >= 200 && res.status < 300) {
      taken ??= inboxResults(res.body);
      for (const x of sent) {
        const t = taken.get(x.id);
        if (t?.received) outcomes[x.i] = { kind: 'delivered' };
        else {
          const reason = t?.error ? `the subscriber's gateway did not take it (${t.error})` : 'the subscriber\'s gateway did not answer for it';
          outcomes[x.i] = t?.error && FINAL.has(t.error) ? { kind: 'refused', reason } : { kind: 'retry', reason };
        }
      }
      return outcomes;
    }
    const type = errorTypeOf(res.body);
    const reason = `the subscriber's gateway answered ${res.status}${type ? ` (${type})` : ''}`;
    for (const x of sent) outcomes[x.i] = type && FINAL.has(type) ? { kind: 'refused', reason } : { kind: 'retry', reason };
    return outcomes;
  }

  // ---- the subscriber's side ----------------------------------------------------------------

  /**
   * `POST event-inbox` from a register's gateway: `{"events": [...]}`, each event checked on its
   * own, then forwarded as its own signed webhook (one event per webhook, as Standard Webhooks
   * has it), side by side. Answers 200 with a result per event when at least one was taken, so
   * the register's gateway settles each; when none was, the first failure is the answer.
   */
  async #inbox(r: BuiltinRequest): Promise<BuiltinAnswer> {
    if (r.method !== 'POST' || r.servicePath !== '') throw new OnceOnlyError('method_not_allowed', 'events are delivered with POST to event-inbox', { field: 'method', expected: 'POST' });
    query(r.query, []);
    const hook = this.#o.webhooks[r.provider]!;
    const { events } = checkInboxBody(parseJson(r.body));
    const ids = new Set<string>();
    const results: InboxResult[] = [];
    const failures = new Map<number, OnceOnlyError>();
    const items = new Set<string>();
    let agreement: string | null = null;
    const one = async (raw: unknown, at: number): Promise<InboxResult> => {
      const said = raw !== null && typeof raw === 'object' ? (raw as { id?: unknown }).id : undefined;
      const id = typeof said === 'string' ? said.slice(0, 64) : '';
      try {
        const event = checkChangeEvent(raw);
        if (ids.has(event.id)) throw new OnceOnlyError('invalid_request', 'the batch carries this event twice', { field: 'body.events.id', expected: 'each event once' });
        ids.add(event.id);
        const a = this.#checkTold(r, event);
        await this.#webhook(hook, event);
        for (const i of Object.keys(event.data.items)) items.add(i);
        agreement = a.id;
        return { id: event.id, received: true };
      } catch (e) {
        const err = isOnceOnlyError(e) ? e : new OnceOnlyError('internal_error', 'internal error');
        failures.set(at, err);
        return { id, received: false, error: err.type };
      }
    };
    for (let k = 0; k < events.length; k += WEBHOOKS_AT_ONCE) results.push(...(await Promise.all(events.slice(k, k + WEBHOOKS_AT_ONCE).map((e, i) => one(e, k + i)))));
    // Nothing taken: the first event's failure, in the batch's order, is the answer.
    if (failures.size === results.length) throw failures.get(0)!;
    return json(200, { results }, { items: [...items], agreement });
  }

  /** Whether the register may tell this subsystem of `event`: its agreement with it, in force, for this kind and every item carried. */
  #checkTold(r: BuiltinRequest, event: ChangeEvent): Agreement {
    // The sender is the register (the request's client); the agreement is the subscriber's own
    // with that register, in force, telling of this kind and granting every item carried.
    if (event.data.provider !== r.client) throw new OnceOnlyError('invalid_request', 'the event names another register than the one sending it', { field: 'body.data.provider', expected: r.client });
    if (r.agreement !== event.data.agreement) throw new OnceOnlyError('invalid_request', 'the event names another agreement than the request', { field: 'body.data.agreement', expected: r.agreement });
    const a = r.v.conf.agreements.find((x) => x.id === event.data.agreement);
    if (!a || a.client !== r.provider || a.provider !== r.client) throw new OnceOnlyError('no_agreement', 'no agreement lets this register tell this subsystem of changes', { field: 'headers.x-onceonly-agreement' });
    if (!inForce(a, r.date)) throw new OnceOnlyError('agreement_not_in_force', `agreement ${a.id} is not in force today`, { agreement: a.id });
    const items = Object.keys(event.data.items);
    const notGranted = items.filter((i) => !a.items.includes(i));
    if (notGranted.length) throw new OnceOnlyError('item_not_covered', `the agreement does not cover ${notGranted.join(', ')}`, { field: 'body.data.items', agreement: a.id, notCovered: notGranted });
    if (event.type !== 'correction' && !a.events.includes(event.type)) throw new OnceOnlyError('no_agreement', `agreement ${a.id} does not tell of ${event.type} changes`, { field: 'body.type', agreement: a.id });
    if (event.type === 'correction' && a.events.length === 0) throw new OnceOnlyError('no_agreement', `agreement ${a.id} tells of no changes`, { field: 'body.type', agreement: a.id });
    return a;
  }

  /** One event to the subscriber's system, signed with the subsystem's secret. */
  async #webhook(hook: Webhook, event: ChangeEvent): Promise<void> {
    // Re-serialised from the checked event: the subscriber verifies exactly what it is sent.
    const text = JSON.stringify(event);
    let res;
    try {
      res = await request(hook.url, { method: 'POST', headers: { 'content-type': JSON_TYPE, ...signWebhook(hook.secret, event.id, text, this.#now()) }, body: text, headersTimeout: hook.timeoutMs, bodyTimeout: hook.timeoutMs });
      await res.body.dump();
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      throw new OnceOnlyError(code.includes('TIMEOUT') ? 'service_timeout' : 'service_unreachable', 'the subscriber system did not take the event', code ? { code } : {});
    }
    if (res.statusCode < 200 || res.statusCode >= 300) throw new OnceOnlyError('service_failed', `the subscriber system answered ${res.statusCode}`);
  }
}

/** What the subscriber's gateway says of one event of a push. */
interface InboxResult {
  id: string;
  received: boolean;
  error?: string;
}

/** The results of an `event-inbox` answer, by event id (an answer not of that shape takes nothing). */
function inboxResults(body: Buffer): Map<string, InboxResult> {
  const m = new Map<string, InboxResult>();
  try {
    const d = JSON.parse(body.toString('utf8')) as { results?: unknown };
    if (!Array.isArray(d.results)) return m;
    for (const x of d.results as unknown[]) {
      const t = x as Partial<InboxResult>;
      if (typeof t.id === 'string' && typeof t.received === 'boolean') m.set(t.id, { id: t.id, received: t.received, ...(typeof t.error === 'string' ? { error: t.error } : {}) });
    }
  } catch {
    // Not JSON: nothing was taken.
  }
  return m;
}

function errorTypeOf(body: Buffer): string {
  try {
    // X-Road's error body, with onceonly's own type beside X-Road's (gateway/xroad renderError).
    const d = JSON.parse(body.toString('utf8')) as { onceonly?: { type?: unknown } };
    return typeof d.onceonly?.type === 'string' ? d.onceonly.type : '';
  } catch {
    return '';
  }
}
