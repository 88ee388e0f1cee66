/**
 * @module gateway/provider
 * The provider side of a gateway (X-Road's server proxy): signed `oo1` requests from other
 * gateways, over mutual TLS. What it checks, in order, is the table in docs/exchange.md; in short:
 * who connects (a gateway certificate the configuration lists, active), that the message is signed
 * by that gateway, for this gateway, fresh and not seen before, that its client is assigned to the
 * sending gateway and its provider subsystem to this one (issue 10, hole 2), that an agreement in
 * force allows exactly what is asked, the past included (hole 1), with the person's consent or
 * approval where the agreement needs it; then it calls the service, lets only the documented answer
 * leave (hole 3, gateway/release), signs the answer bound to the request's hash, and logs it. Every
 * answer is signed, refusals too.
 */
import type { TLSSocket } from 'node:tls';
import { OnceOnlyError, type ErrorType } from '../core/errors.ts';
import { today } from '../core/dates.ts';
import { isValidId, parseId } from '../core/subjects.ts';
import { encodeIdPath, formatClientId, memberOfId, parseClientId, type ServiceId } from '../core/ids.ts';
import { H, bodyDigest, canonicalRequest, packHeaders, requestHash as hashOf, signResponse, unpackHeaders, verifyRequest, type SignedRequestFields } from './protocol.ts';
import type { BatchSignature } from '../core/batchsign.ts';
import { parseTargetPath, splitTarget } from './r1.ts';
import { decideAccess, requireActiveClient, requireActiveProvider } from './access.ts';
import { DATA_USAGE_SERVICE, METASERVICES, providerMetaservice } from './metaservices.ts';
import { PERSON_CONSENTS_SERVICE, personConsents } from './person-consents.ts';
import { PERSON_PREVIEWS_SERVICE, personPreviews } from './person-previews.ts';
import { checkRegistryAnswer, parseRegistryRead, readTime, type RegistryRead } from './release.ts';
import { ReplayGuard } from './replay.ts';
import { Upstream } from './upstream.ts';
import { GATEWAY_SET_HEADERS, SKIPPED_HEADERS, renderError, toXRoadError } from './xroad.ts';
import type { ConfView } from './confclient.ts';
import type { GatewayContext, InboundRequest, OutboundResponse, ServiceRegistration } from './gateway.ts';
import type { Release } from '../transparency/access.ts';

/** Subjects whose releases are recorded for the person: population-register ids, check character included. */
const isPerson = (id: string): boolean => isValidId('person', id);
/** Catalogue items that stand for a register's access records (what the data-usage service releases). */
const USAGE_ITEM = /^[a-z]+\.[A-Za-z]*[uU]sageRecords$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const JSON_TYPE = 'application/json; charset=utf-8';

/** What the provider answers before signing. */
interface Answer {
  status: number;
  /** Headers passed back to the information system (the content type among them). */
  headers: [string, string][];
  body: Buffer;
  errorType?: ErrorType;
}

interface ProviderContext {
  fields: SignedRequestFields;
  signature: BatchSignature;
  requestHash: string;
  /** The authenticated sending gateway, once known. */
  peer: string | null;
  items: string[];
  agreement: string | null;
  service: string;
  userId: string;
  detail: Record<string, unknown>;
  /** Set when the answer releases items about people: the access record(s) to write with the log record. */
  release?: Release | Release[];
}

// A TLS connection carries many requests; its peer certificate is read and hashed once.
const fingerprints = new WeakMap<TLSSocket, string>();

function peerFingerprint(sock: TLSSocket): string {
  let fp = fingerprints.get(sock);
  if (fp === undefined) {
    fp = sock.getPeerCertificate().fingerprint256.replaceAll(':', '').toLowerCase();
    fingerprints.set(sock, fp);
  }
  return fp;
}

export class ProviderSide {
  readonly #g: GatewayContext;
  readonly #replay: ReplayGuard;
  readonly #upstream: Upstream;

  constructor(g: GatewayContext) {
    this.#g = g;
    // Within the window a captured request is refused by its id; after it, by its timestamp.
    this.#replay = new ReplayGuard({ db: g.o.db, sqlite: g.o.sqlite, gatewayId: g.id, retainMs: 2 * g.window, now: g.now });
    this.#upstream = new Upstream(g.maxBody);
  }

  start(): void {
    this.#replay.start();
  }

  async close(): Promise<void> {
    this.#replay.stop();
    await this.#upstream.close();
  }

  /**
   * Admits a connection before its body is read: the certificate must chain to the central CA and
   * belong to a gateway in the configuration. Refusals here are answered unsigned and not logged:
   * nothing has been exchanged with an unauthenticated party, and signing or logging for it would
   * let anyone make this gateway spend CPU and disk.
   */
  async admit(socket: TLSSocket): Promise<OutboundResponse | undefined> {
    const conf = this.#g.o.conf;
    let err: OnceOnlyError | undefined;
    if (!socket.authorized) {
      err = new OnceOnlyError('untrusted_certificate', 'the client certificate was not issued by the central certificate authority', { reason: String(socket.authorizationError ?? 'no client certificate') });
    } else {
      const fp = peerFingerprint(socket);
      const known = (): boolean => {
        try {
          return conf.current().gatewaysByFingerprint.has(fp);
        } catch {
          return true; // an expired configuration is refused, typed and signed, by the handler
        }
      };
      if (!known() && !((await conf.refreshIfStale()) && known())) {
        err = new OnceOnlyError('unknown_gateway', 'the client certificate belongs to no gateway in the global configuration');
      }
    }
    if (!err) return undefined;
    this.#g.o.metrics.error('provider', err.type);
    const r = renderError(toXRoadError(err, 'provider'), undefined);
    return { status: r.status, headers: { ...r.headers, [H.errorType]: err.type, connection: 'close' }, body: r.body };
  }

  /** Handles `METHOD /oo1/…` from another gateway. Every answer is signed. Never throws. */
  async handle(req: InboundRequest): Promise<OutboundResponse> {
    const g = this.#g;
    const started = performance.now();
    const h = (name: string): string => {
      const val = req.headers[name];
      return typeof val === 'string' ? val : '';
    };
    const fields: SignedRequestFields = {
      method: req.method, target: req.rawUrl, client: h(H.client), id: h(H.id), requestId: h(H.requestId), purpose: h(H.purpose), agreement: h(H.agreement),
      timestamp: h(H.timestamp), sender: h(H.sender), audience: h(H.audience), headers: h(H.headers), bodyDigest: h(H.bodyDigest),
    };
    const signature: BatchSignature = { signature: h(H.signature), batch: h(H.signatureBatch) };
    // The hash is computed over what arrived, valid or not, so that even a refusal is bound to it.
    const requestHash = hashOf(canonicalRequest(fields), signature, req.body);
    const ctx: ProviderContext = { fields, signature, requestHash, peer: null, items: [], agreement: null, service: '', userId: '', detail: { requestId: fields.requestId.slice(0, 64) } };
    let res: Answer;
    try {
      res = await this.#inner(req, ctx);
    } catch (e) {
      const x = toXRoadError(e, 'provider');
      g.o.metrics.error('provider', x.onceonly.type);
      ctx.detail['errorId'] = x.detail;
      ctx.detail['xroadType'] = x.type;
      // Between gateways the refusal is JSON; the client gateway renders it in its client's format.
      const r = renderError(x, undefined);
      res = { status: r.status, headers: [['content-type', r.headers['content-type']!]], body: r.body, errorType: x.onceonly.type };
    }
    const timestamp = String(g.now().getTime());
    const digest = bodyDigest(res.body);
    const packed = packHeaders(res.headers);
    const responseSignature = await signResponse(g.signer, { requestHash, status: String(res.status), timestamp, responder: g.id, headers: packed, bodyDigest: digest, errorType: res.errorType ?? '' });
    try {
      await g.o.log.append({
        at: g.now().toISOString(),
        side: 'provider',
        requestId: fields.id.slice(0, 255) || '-',
        client: fields.client.slice(0, 1100) || '-',
        service: ctx.service || '-',
        purpose: fields.purpose.slice(0, 256) || null,
        agreement: ctx.agreement,
        items: ctx.items.length ? ctx.items : null,
        userId: ctx.userId.slice(0, 256) || null,
        status: res.status,
        errorType: res.errorType ?? null,
        requestHash,
        responseDigest: digest,
        requestSignature: signature.signature ? `${signature.signature} ${signature.batch}` : null,
        responseSignature: `${responseSignature.signature} ${responseSignature.batch}`,
        requestBody: g.o.logBodies ? req.body.toString('utf8') : null,
        responseBody: g.o.logBodies ? res.body.toString('utf8') : null,
        peer: ctx.peer,
        detail: ctx.detail,
        ...(ctx.release && res.status >= 200 && res.status < 300 ? { release: ctx.release } : {}),
      });
    } catch {
      // Nothing leaves without a log record: a release that cannot be logged is withheld.
      const r = renderError(toXRoadError(new OnceOnlyError('logging_failed', 'the exchange could not be recorded in the message log'), 'provider'), undefined);
      return { status: r.status, headers: r.headers, body: r.body };
    }
    g.o.metrics.observe('provider', res.status, (performance.now() - started) / 1000);
    const ct = res.headers.find(([k]) => k.toLowerCase() === 'content-type')?.[1];
    const headers: Record<string, string> = {
      [H.requestHash]: requestHash, [H.timestamp]: timestamp, [H.responder]: g.id, [H.headers]: packed,
      [H.bodyDigest]: digest, [H.signature]: responseSignature.signature, [H.signatureBatch]: responseSignature.batch,
    };
    if (ct) headers['content-type'] = ct;
    if (res.errorType) headers[H.errorType] = res.errorType;
    return { status: res.status, headers, body: res.body };
  }

  async #inner(req: InboundRequest, ctx: ProviderContext): Promise<Answer> {
    const g = this.#g;
    if (req.oversized || req.body.length > g.maxBody) throw new OnceOnlyError('payload_too_large', 'request body is too large', { field: 'body', expected: `at most ${g.maxBody} bytes` });
    let v = g.o.conf.current();
    const { fields, signature } = ctx;
    // 1. Who is connecting: a certificate from the central CA that the configuration lists.
    const sock = req.socket;
    if (!sock?.authorized) {
      throw new OnceOnlyError('untrusted_certificate', 'the client certificate was not issued by the central certificate authority', { reason: String(sock?.authorizationError ?? 'no client certificate') });
    }
    const fp = peerFingerprint(sock);
    let peer = v.gatewaysByFingerprint.get(fp);
    // A gateway registered since our last fetch: look again in a fresh copy (rate-limited).
    if (!peer && (await g.o.conf.refreshIfStale())) {
      v = g.o.conf.current();
      peer = v.gatewaysByFingerprint.get(fp);
    }
    if (!peer) throw new OnceOnlyError('unknown_gateway', 'the client certificate belongs to no gateway in the global configuration');
    if (peer.status !== 'active') throw new OnceOnlyError('gateway_suspended', 'the sending gateway is suspended', { gateway: peer.id });
    if (v.members.get(peer.member)?.status !== 'active') throw new OnceOnlyError('member_suspended', 'the sending gateway\'s member is suspended', { gateway: peer.id });
    // 2. The signature: present, by the connecting gateway, over an untampered request for us.
    if (signature.signature === '' || signature.batch === '') throw new OnceOnlyError('unsigned_request', 'the request carries no signature', { field: `headers.${H.signature}` });
    for (const [k, val] of Object.entries(fields) as [string, string][]) {
      if (/[\r\n]/.test(val) || val.length > (k === 'headers' ? 64 * 1024 : 4096)) throw new OnceOnlyError('invalid_request', `header ${k} is malformed`, { field: k });
    }
    if (fields.sender !== peer.id) throw new OnceOnlyError('invalid_signature', 'the request names a sender other than the gateway that connected', { field: `headers.${H.sender}` });
    if (bodyDigest(req.body) !== fields.bodyDigest) throw new OnceOnlyError('invalid_signature', 'the body does not match its signed digest', { field: 'body' });
    if (!verifyRequest(g.verifier, v.keys.get(peer.id)!, peer.id, fields, signature)) throw new OnceOnlyError('invalid_signature', 'the request signature does not verify', { field: `headers.${H.signature}` });
    ctx.peer = peer.id;
    if (fields.audience !== g.id) throw new OnceOnlyError('wrong_audience', 'the request is addressed to another gateway', { field: `headers.${H.audience}`, expected: g.id });
    // 3. Freshness and uniqueness.
    const ts = Number(fields.timestamp);
    const now = g.now();
    if (!Number.isSafeInteger(ts) || Math.abs(now.getTime() - ts) > g.window) {
      throw new OnceOnlyError('message_expired', 'the request is outside the accepted time window', { field: `headers.${H.timestamp}`, expected: `within ${g.window / 1000} s of the provider's clock` });
    }
    if (!UUID.test(fields.requestId)) throw new OnceOnlyError('invalid_request', 'the request id is not a UUID', { field: `headers.${H.requestId}`, expected: 'a UUID made by the client gateway' });
    if (fields.id === '' || fields.id.length > 255) throw new OnceOnlyError('invalid_request', 'X-Road-Id is missing or too long', { field: `headers.${H.id}` });
    // 4. The client: one the central assigned to the sending gateway (or its member itself).
    const client = formatClientId(parseClientId(fields.client, `headers.${H.client}`));
    if (memberOfId(client) !== peer.member || (client !== peer.member && !peer.subsystems.includes(client))) {
      throw new OnceOnlyError('unknown_client', 'the client is not assigned to the sending gateway', { field: `headers.${H.client}`, gateway: peer.id });
    }
    await this.#replay.check(peer.id, fields.requestId, `headers.${H.requestId}`);
    const passed = unpackHeaders(fields.headers, `headers.${H.headers}`);
    ctx.userId = [...passed].reverse().find(([k]) => k.toLowerCase() === 'x-road-userid')?.[1] ?? '';
    // 5. What is asked for: a subsystem the central assigned to this gateway, and a service of it.
    const { path, query } = splitTarget(fields.target);
    const target = parseTargetPath(path, '/oo1/');
    const providerId = `${target.service.instance}/${target.service.memberClass}/${target.service.memberCode}/${target.service.subsystemCode}`;
    ctx.service = `${providerId}/${target.service.serviceCode}`;
    const registered = g.o.services[providerId];
    const builtin = g.o.events?.builtin(providerId, target.service.serviceCode, registered) ?? false;
    if ((!registered && !builtin) || !(v.gateways.get(g.id)?.subsystems.includes(providerId) ?? false)) {
      throw new OnceOnlyError('provider_not_served', 'this gateway does not serve that subsystem', { field: 'path.service', expected: 'a subsystem the central assigned to this gateway' });
    }
    requireActiveClient(v, client);
    requireActiveProvider(v, providerId);
    const date = today(now);
    if (METASERVICES.has(target.service.serviceCode) && target.servicePath === '') {
      const m = await providerMetaservice({
        v, code: target.service.serviceCode, method: req.method, provider: target.service, providerId, client, query, registered: registered ?? {}, dataUsage: g.o.access !== undefined, date,
        fetchDescription: async (s) => {
          const d = await this.#upstream.call({ ...s, url: s.openapi!, headers: s.headers ?? {} }, { method: 'GET', pathAndQuery: '', headers: [['accept', 'application/json, application/yaml;q=0.9']], body: null });
          if (d.status !== 200) throw new OnceOnlyError('service_failed', `the service description answered ${d.status}`);
          return { status: 200, contentType: d.contentType || 'text/plain', body: d.body };
        },
      });
      return { status: m.status, headers: [['content-type', m.contentType]], body: m.body };
    }
    if (builtin) {
      // Tell Us Once (gateway/events): subscriptions and the feed at a register, the event inbox at a subscriber.
      const b = await g.o.events!.handle(target.service.serviceCode, {
        v, method: req.method, servicePath: target.servicePath, query, body: req.body, client, provider: providerId, purpose: ctx.fields.purpose, agreement: ctx.fields.agreement,
        xroadId: ctx.fields.id, userId: ctx.userId, date, now,
      });
      ctx.items = b.items;
      ctx.agreement = b.agreement;
      if (b.release) ctx.release = b.release;
      return { status: b.status, headers: b.contentType && b.status !== 204 ? [['content-type', b.contentType]] : [], body: b.body };
    }
    if (target.service.serviceCode === PERSON_CONSENTS_SERVICE && g.o.consents && registered && !registered[PERSON_CONSENTS_SERVICE]) {
      // A person's consents here, managed on their behalf by a client granted this service (gateway/person-consents).
      const a = await personConsents(g.o.consents, g.o.signingKey, g.id, { v, method: req.method, servicePath: target.servicePath, query, body: req.body, client, provider: providerId, purpose: ctx.fields.purpose, agreement: ctx.fields.agreement, userId: ctx.userId, date });
      ctx.agreement = a.agreement;
      return { status: a.status, headers: [['content-type', JSON_TYPE]], body: Buffer.from(JSON.stringify(a.body)) };
    }
    if (target.service.serviceCode === PERSON_PREVIEWS_SERVICE && g.o.previews && registered && !registered[PERSON_PREVIEWS_SERVICE]) {
      // The person's requests waiting for a decision, answered on their behalf (gateway/person-previews).
      const a = await personPreviews(g.o.previews, { v, method: req.method, servicePath: target.servicePath, query, body: req.body, client, provider: providerId, purpose: ctx.fields.purpose, agreement: ctx.fields.agreement, userId: ctx.userId, date });
      ctx.agreement = a.agreement;
      return { status: a.status, headers: [['content-type', JSON_TYPE]], body: Buffer.from(JSON.stringify(a.body)) };
    }
    if (!registered) throw new OnceOnlyError('unknown_service', 'the subsystem offers no such service', { field: 'path.service' });
    if (target.service.serviceCode === DATA_USAGE_SERVICE && g.o.access && !registered[DATA_USAGE_SERVICE]) return this.#dataUsage(v, target.servicePath, query, client, providerId, date, ctx);
    const service = registered[target.service.serviceCode];
    if (!service) throw new OnceOnlyError('unknown_service', 'the subsystem offers no such service', { field: 'path.service' });
    if (service.kind === 'rest') return this.#rest(v, service, req, target.servicePath, query, client, providerId, target.service.serviceCode, passed, date, ctx);
    return this.#registry(v, service, req, target.service, target.servicePath, query, client, providerId, date, now, ctx);
  }

  /** A registry read, under the registry contract (gateway/release). */
  async #registry(v: ConfView, service: ServiceRegistration, req: InboundRequest, svc: ServiceId, servicePath: string, query: string, client: string, providerId: string, date: string, now: Date, ctx: ProviderContext): Promise<Answer> {
    const g = this.#g;
    if (req.method !== 'GET') throw new OnceOnlyError('method_not_allowed', 'registry services are read with GET through the exchange', { field: 'method', expected: 'GET' });
    const read: RegistryRead = parseRegistryRead(servicePath, query);
    ctx.items = read.items;
    const time = readTime(read, date, now);
    if (time?.asAt) ctx.detail['asAt'] = time.asAt;
    if (time?.knownAt) ctx.detail['knownAt'] = time.knownAt;
    // 6. The agreement: deny by default, the past only where granted.
    const agreement = decideAccess(v, { client, provider: providerId, purpose: ctx.fields.purpose, agreement: ctx.fields.agreement, items: read.items, date, ...(time ? { time } : {}) });
    ctx.agreement = agreement.id;
    // 7. The person's own say, where the agreement gives them one.
    const person = read.id;
    if (agreement.consentRequired) {
      const consent = g.o.consents && isPerson(person) ? await g.o.consents.inForce({ person, controller: client, purpose: agreement.purpose.id, items: read.items, agreement: agreement.id, at: now }) : null;
      if (!consent) throw new OnceOnlyError('consent_required', `agreement ${agreement.id} releases data only while the person's consent covers the request`, { agreement: agreement.id });
    }
    if (agreement.previewRequired) {
      // An existence check asks for no items, so there is nothing to preview: it is refused.
      if (!g.o.previews || !isPerson(person) || read.items.length === 0 || time) {
        throw new OnceOnlyError('preview_required', `agreement ${agreement.id} releases data only after the person has seen and approved it`, { agreement: agreement.id });
      }
      // OOTS explicit request: the first request opens a preview at the source; after the person
      // approves, one retry is released (consume throws preview_declined after a decline).
      const decision = await g.o.previews.consume({ client, provider: providerId, person, items: read.items, agreement: agreement.id });
      if (decision === 'none') {
        const p = await g.o.previews.open({ client, provider: providerId, person, items: read.items, agreement, requestFingerprint: ctx.requestHash });
        throw new OnceOnlyError('preview_required', 'the person must see and approve this release at the source first', { agreement: agreement.id, previewUrl: p.url, expiresAt: p.expiresAt });
      }
    }
    // 8. Call the registry with exactly the read that was checked, then check its answer.
    const upstream = await this.#upstream.call(service, { method: 'GET', pathAndQuery: `${servicePath}${query ? `?${query}` : ''}`, headers: [['accept', 'application/json']], body: null });
    checkRegistryAnswer(read, providerId, date, upstream);
    if (upstream.status === 200 && isPerson(person)) {
      ctx.release = {
        person, client, provider: providerId, service: `${providerId}/${svc.serviceCode}`, items: read.exists ? [] : read.items,
        agreement: agreement.id, purpose: agreement.purpose.id, legalBasis: agreement.legalBasis, requestId: ctx.fields.id, userId: ctx.userId || null,
        ...(time?.asAt ? { asAt: time.asAt } : {}),
        ...(time?.knownAt ? { knownAt: time.knownAt } : {}),
      };
    }
    return { status: upstream.status, headers: [['content-type', upstream.contentType]], body: upstream.body };
  }

  /** A plain REST service, passed through as X-Road does, under a service-level agreement. */
  async #rest(v: ConfView, service: ServiceRegistration, req: InboundRequest, servicePath: string, query: string, client: string, providerId: string, code: string, passed: [string, string][], date: string, ctx: ProviderContext): Promise<Answer> {
    const agreement = decideAccess(v, { client, provider: providerId, purpose: ctx.fields.purpose, agreement: ctx.fields.agreement, items: [], date, service: code });
    ctx.agreement = agreement.id;
    // The service sees the request as X-Road delivers it: the client's headers, and X-Road's own
    // from the signed request (never the client's say-so).
    const headers: [string, string][] = passed.filter(([k]) => !SKIPPED_HEADERS.has(k.toLowerCase()) && !GATEWAY_SET_HEADERS.has(k.toLowerCase()));
    headers.push(['X-Road-Client', encodeIdPath(client)], ['X-Road-Service', encodeIdPath(ctx.service)], ['X-Road-Id', ctx.fields.id], ['X-Road-Request-Id', ctx.fields.requestId]);
    const upstream = await this.#upstream.call(service, { method: req.method, pathAndQuery: `${servicePath}${query ? `?${query}` : ''}`, headers, body: req.body });
    const back = upstream.headers.filter(([k]) => !SKIPPED_HEADERS.has(k) && !GATEWAY_SET_HEADERS.has(k));
    return { status: upstream.status, headers: back, body: upstream.body };
  }

  /**
   * The data-usage service: a person's access records on this gateway, newest first, paged, each
   * with its transparency-log inclusion proof. Reached like any service, so the same rules apply:
   * the client needs an agreement in force granting this register's usage-records item.
   */
  async #dataUsage(v: ConfView, servicePath: string, query: string, client: string, providerId: string, date: string, ctx: ProviderContext): Promise<Answer> {
    const access = this.#g.o.access!;
    // A mistyped check character is refused as such, never answered "no recorded uses".
    const person = parseId('person', /^\/([^/]+)$/.exec(servicePath)?.[1] ?? '', 'path');
    const q = new URLSearchParams(query);
    for (const k of new Set(q.keys())) {
      if (!['items', 'page', 'pageSize'].includes(k)) throw new OnceOnlyError('invalid_request', `the query parameter ${JSON.stringify(k.slice(0, 40))} is not part of the data-usage service`, { field: `query.${k.slice(0, 40)}`, expected: 'items, page, pageSize' });
      if (q.getAll(k).length > 1) throw new OnceOnlyError('invalid_request', `the query parameter ${k} is given more than once`, { field: `query.${k}`, expected: `${k} once` });
    }
    ctx.items = (q.get('items') ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (ctx.items.length === 0 || !ctx.items.every((i) => USAGE_ITEM.test(i))) {
      throw new OnceOnlyError('invalid_request', 'the data-usage service releases only usage-records items', { field: 'query.items', expected: 'the register\'s usage-records item, e.g. person.usageRecords' });
    }
    const agreement = decideAccess(v, { client, provider: providerId, purpose: ctx.fields.purpose, agreement: ctx.fields.agreement, items: ctx.items, date });
    ctx.agreement = agreement.id;
    const num = (name: string, dflt: number): number => {
      const raw = q.get(name);
      if (raw === null) return dflt;
      if (!/^\d{1,6}$/.test(raw)) throw new OnceOnlyError('invalid_request', `${name} must be a whole number`, { field: `query.${name}` });
      return Number(raw);
    };
    const page = await access.list(person, num('page', 1), num('pageSize', 20));
    return { status: 200, headers: [['content-type', JSON_TYPE]], body: Buffer.from(JSON.stringify({ provider: providerId, gateway: this.#g.id, ...page })) };
  }
}
