/**
 * @module gateway/gateway
 * A gateway: one per organisation (X-Road's security server). Its client side takes X-Road REST
 * (`r1`) requests from the organisation's own systems and sends them, signed, over mutual TLS to
 * the provider's gateway; its provider side checks such requests (certificate, signature, time,
 * replay, address, agreement), calls the registered service, checks that the answer releases
 * nothing beyond what was granted, and signs the answer bound to the request. Both sides log
 * every exchange in a hash-chained message log. Protocol: docs/exchange.md.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import type { CompiledQuery, Kysely } from 'kysely';
import type SQLite from 'better-sqlite3';
import type { Database } from '../store/schema.ts';
import { OnceOnlyError, isOnceOnlyError, type ErrorType } from '../core/errors.ts';
import { today } from '../core/dates.ts';
import { parseSubsystemId } from '../core/ids.ts';
import { H, HOP_BY_HOP, bodyDigest, canonicalRequest, requestHash as hashOf, signRequest, signResponse, verifyRequest, verifyResponse, type SignedRequestFields } from './protocol.ts';
import { BatchSigner, BatchVerifier, type BatchSignature } from '../core/batchsign.ts';
import { optionalHeader, parseClientHeader, parseServiceTarget, type ParsedTarget } from './paths.ts';
import { decideAccess, requireActiveClient, requireActiveProvider } from './access.ts';
import type { ConfClient, ConfView } from './confclient.ts';
import type { LogEntryInput, MessageLog } from './messagelog.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { AccessRecorder, Release } from '../transparency/access.ts';
import type { ConsentStore } from '../consent/consent.ts';
import type { PreviewStore } from '../preview/preview.ts';

/** A service a provider subsystem offers through this gateway. */
export interface ServiceRegistration {
  /** Base URL; the rest of the path after the service code is appended. */
  url: string;
  /** Milliseconds before the call is abandoned with `service_timeout`. */
  timeoutMs: number;
  /** Headers the gateway adds when calling it (e.g. the registry's bearer token). */
  headers?: Record<string, string>;
  /**
   * `registry`: an onceonly registry; only GET, `items`/`item` in the query are access-checked and
   * the response's items are checked against the grant.
   */
  kind: 'registry';
  /** Description for listMethods. */
  description?: string;
}

/** Everything a gateway needs to run. */
export interface GatewayOptions {
  /** Gateway id `INSTANCE/CLASS/MEMBER/CODE`. */
  id: string;
  db: Kysely<Database>;
  /** The raw handle under `db` when the store is SQLite (hot-path statements use it). */
  sqlite?: SQLite.Database | undefined;
  conf: ConfClient;
  log: MessageLog;
  /** Access records of releases about people, and the data-usage service that serves them. */
  access?: AccessRecorder;
  /** Consents, checked for agreements flagged consent-required (without it those release nothing). */
  consents?: ConsentStore;
  /** Explicit requests and previews, for agreements flagged preview-required (without it those release nothing). */
  previews?: PreviewStore;
  metrics: GatewayMetrics;
  signingKey: KeyObject;
  tls: { key: string; cert: string };
  /** Services by provider subsystem id, then service code. */
  services: Record<string, Record<string, ServiceRegistration>>;
  /** Keep full request and response bodies in the message log (default false: digests only). */
  logBodies?: boolean;
  /** Largest request or response body accepted, bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /** Accepted clock difference between gateways, ms (default 60 s). */
  timeWindowMs?: number;
  now?: () => Date;
}

/** A request as either side of the gateway receives it. */
export interface InboundRequest {
  method: string;
  rawUrl: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The TLS socket, on the provider side. */
  socket?: TLSSocket;
  /** The body was over the size limit and was not read. */
  oversized?: boolean;
}

/** What the gateway answers. */
export interface OutboundResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const METASERVICES = new Set(['listMethods', 'allowedMethods', 'getOpenAPI']);
/** The data-usage service every provider gateway offers on each subsystem it serves. */
export const DATA_USAGE_SERVICE = 'data-usage';
/** Catalogue items that stand for a register's access records (what the data-usage service releases). */
const USAGE_ITEM = /^[a-z]+\.[A-Za-z]*[uU]sageRecords$/;
/** Subjects whose releases are recorded for the person: population-register ids. */
const PERSON_ID = /^P-\d{9}-[0-9X]$/;
const REGISTRY_OPERATIONS = /^\/[^/]+(\/exists)?$/;

function errorBody(e: OnceOnlyError): Buffer {
  return Buffer.from(JSON.stringify(e.toJSON()));
}

function toTyped(e: unknown): OnceOnlyError {
  if (isOnceOnlyError(e)) return e;
  return new OnceOnlyError('internal_error', 'internal error');
}

/** Reads `items` (comma list) or `item` from a raw query string. */
export function itemsFromQuery(query: string): string[] {
  const p = new URLSearchParams(query);
  const out: string[] = [];
  for (const v of p.getAll('items')) for (const s of v.split(',')) if (s.trim() !== '') out.push(s.trim());
  for (const v of p.getAll('item')) if (v.trim() !== '') out.push(v.trim());
  return [...new Set(out)];
}

/** One organisation's gateway. */
export class Gateway {
  readonly id: string;
  readonly member: string;
  private readonly o: GatewayOptions;
  private readonly now: () => Date;
  private readonly maxBody: number;
  private readonly window: number;
  /** One connection pool per provider gateway, each pinned to that gateway's certificate. */
  private readonly peers = new Map<string, Agent>();
  private readonly upstreamOptions: Agent.Options;
  private readonly upstream: Agent;
  private replaySweep: NodeJS.Timeout | undefined;
  private replayInsert: CompiledQuery | undefined;
  private replayRaw: SQLite.Statement | undefined;
  private replayQueue: { params: [string, string, string, string]; resolve: (fresh: boolean) => void; reject: (e: unknown) => void }[] = [];
  private readonly signer: BatchSigner;
  private readonly verifier = new BatchVerifier();

  constructor(o: GatewayOptions) {
    this.o = o;
    this.id = o.id;
    const gw = parseSubsystemId(o.id, 'gateway.id');
    this.member = `${gw.instance}/${gw.memberClass}/${gw.memberCode}`;
    this.now = o.now ?? (() => new Date());
    this.maxBody = o.maxBodyBytes ?? 4 * 1024 * 1024;
    this.window = o.timeWindowMs ?? 60_000;
    this.signer = new BatchSigner(o.signingKey, o.id);
    this.upstreamOptions = { keepAliveTimeout: 30_000, connections: 64, maxResponseSize: this.maxBody };
    this.upstream = new Agent(this.upstreamOptions);
  }

  /**
   * The pool for connections to one provider gateway: our certificate, the central CA only, and
   * the peer must present exactly the certificate the configuration lists for that gateway (not
   * just any member's), so a request never reaches another organisation's gateway.
   */
  private peerAgent(gatewayId: string): Agent {
    let agent = this.peers.get(gatewayId);
    if (!agent) {
      agent = new Agent({
        ...this.upstreamOptions,
        connect: {
          key: this.o.tls.key,
          cert: this.o.tls.cert,
          ca: this.o.conf.held()?.caCertificate ?? '',
          rejectUnauthorized: true,
          checkServerIdentity: (_host, cert) => {
            const fp = cert.fingerprint256.replaceAll(':', '').toLowerCase();
            const g = this.o.conf.held()?.gateways.find((x) => x.id === gatewayId);
            if (!g || g.status !== 'active' || g.tlsFingerprint.toLowerCase() !== fp) return new Error(`the peer's certificate is not the one the global configuration lists for ${gatewayId}`);
            return undefined;
          },
        },
      });
      this.peers.set(gatewayId, agent);
    }
    return agent;
  }

  /**
   * Admits a connection to the provider side before its body is read: the certificate must chain
   * to the central CA and belong to a gateway in the configuration. Refusals here are answered
   * unsigned and not logged: nothing has been exchanged with an unauthenticated party, and signing
   * or logging for it would let anyone make this gateway spend CPU and disk.
   */
  async admit(socket: TLSSocket): Promise<OutboundResponse | undefined> {
    let err: OnceOnlyError | undefined;
    if (!socket.authorized) {
      err = new OnceOnlyError('untrusted_certificate', 'the client certificate was not issued by the central certificate authority', { reason: String(socket.authorizationError ?? 'no client certificate') });
    } else {
      const fp = peerFingerprint(socket);
      const known = (): boolean => {
        try {
          return this.o.conf.current().gatewaysByFingerprint.has(fp);
        } catch {
          return true; // an expired configuration is refused, typed and signed, by the handler
        }
      };
      if (!known() && !((await this.o.conf.refreshIfStale()) && known())) {
        err = new OnceOnlyError('unknown_gateway', 'the client certificate belongs to no gateway in the global configuration');
      }
    }
    if (!err) return undefined;
    this.o.metrics.error('provider', err.type);
    return { status: err.status, headers: { 'content-type': JSON_TYPE, [H.errorType]: err.type, connection: 'close' }, body: errorBody(err) };
  }

  /** Starts background work (replay-guard sweeping). */
  start(): void {
    this.replaySweep = setInterval(() => {
      void this.o.db.deleteFrom('replay_guard').where('gateway_id', '=', this.id).where('expires_at', '<', this.now().toISOString()).execute().catch(() => undefined);
    }, 30_000);
    this.replaySweep.unref();
  }

  async close(): Promise<void> {
    if (this.replaySweep) clearInterval(this.replaySweep);
    await Promise.allSettled([...[...this.peers.values()].map((a) => a.close()), this.upstream.close()]);
  }

  private async writeLog(e: LogEntryInput): Promise<void> {
    await this.o.log.append(e);
  }

  // ---------------------------------------------------------------------------------------
  // Client side: X-Road REST r1 from the organisation's own systems.
  // ---------------------------------------------------------------------------------------

  /** Handles `METHOD /r1/…` from one of the organisation's information systems. */
  async handleClient(req: InboundRequest): Promise<OutboundResponse> {
    const started = performance.now();
    const requestId = this.clientRequestId(req.headers['x-road-id']);
    let res: OutboundResponse;
    try {
      res = await this.clientInner(req, requestId);
    } catch (e) {
      const err = toTyped(e);
      this.o.metrics.error('client', err.type);
      res = { status: err.status, headers: { 'content-type': JSON_TYPE, 'x-road-error': `Server.ClientProxy.${err.type}`, 'x-road-id': requestId }, body: errorBody(err) };
    }
    this.o.metrics.observe('client', res.status, (performance.now() - started) / 1000);
    return res;
  }

  private clientRequestId(v: string | string[] | undefined): string {
    try {
      const id = optionalHeader(v, 'x-road-id', 128);
      return id === '' ? randomUUID() : id;
    } catch {
      return randomUUID();
    }
  }

  private tooLarge(req: InboundRequest): void {
    if (req.oversized || req.body.length > this.maxBody) throw new OnceOnlyError('payload_too_large', 'request body is too large', { field: 'body', expected: `at most ${this.maxBody} bytes` });
  }

  private async clientInner(req: InboundRequest, requestId: string): Promise<OutboundResponse> {
    this.tooLarge(req);
    let v = this.o.conf.current();
    if (req.rawUrl.split('?')[0] === '/r1/listClients') return this.listClients(v, requestId);
    const target = parseServiceTarget(req.rawUrl, '/r1/');
    const client = parseClientHeader(req.headers['x-road-client'], 'x-road-client');
    const clientMember = `${client.instance}/${client.memberClass}/${client.memberCode}`;
    if (clientMember !== this.member) {
      throw new OnceOnlyError('unknown_client', 'this gateway does not serve the client subsystem named in X-Road-Client', { field: 'headers.x-road-client', expected: `a subsystem of ${this.member}` });
    }
    // A subsystem registered since our last fetch: look again in a fresh copy (rate-limited).
    if ((!v.subsystems.has(client.id) || !v.subsystems.has(target.providerId)) && (await this.o.conf.refreshIfStale())) v = this.o.conf.current();
    requireActiveClient(v, client.id);
    const purpose = optionalHeader(req.headers['x-onceonly-purpose'], 'x-onceonly-purpose', 128);
    const agreement = optionalHeader(req.headers['x-onceonly-agreement'], 'x-onceonly-agreement', 128);
    const isMeta = METASERVICES.has(target.service.serviceCode) && target.path === '';
    if (purpose === '' && agreement === '' && !isMeta) {
      throw new OnceOnlyError('invalid_request', 'the purpose of the request is required', { field: 'headers.x-onceonly-purpose', expected: 'the purpose id of a data-sharing agreement (or X-OnceOnly-Agreement with its id)' });
    }
    requireActiveProvider(v, target.providerId);
    const providerSub = v.subsystems.get(target.providerId)!;
    const gw = v.conf.gateways.find((g) => g.member === providerSub.member && g.status === 'active');
    if (!gw) {
      const any = v.conf.gateways.find((g) => g.member === providerSub.member);
      if (any) throw new OnceOnlyError('gateway_suspended', 'the provider\'s gateway is suspended', { field: 'path.service', gateway: any.id });
      throw new OnceOnlyError('unknown_service', 'no gateway serves the provider subsystem', { field: 'path.service' });
    }
    const oo1Target = `/oo1/${target.serviceId}${target.path}${target.query ? `?${target.query}` : ''}`;
    const fields: SignedRequestFields = {
      method: req.method,
      target: oo1Target,
      client: client.id,
      id: requestId,
      userId: optionalHeader(req.headers['x-road-userid'], 'x-road-userid', 256),
      issue: optionalHeader(req.headers['x-road-issue'], 'x-road-issue', 256),
      purpose,
      agreement,
      timestamp: String(this.now().getTime()),
      sender: this.id,
      audience: gw.id,
      bodyDigest: bodyDigest(req.body),
    };
    const { signature, batch, requestHash } = await signRequest(this.signer, fields);
    const headers: Record<string, string> = {
      [H.client]: fields.client,
      [H.id]: fields.id,
      [H.userId]: fields.userId,
      [H.issue]: fields.issue,
      [H.purpose]: fields.purpose,
      [H.agreement]: fields.agreement,
      [H.timestamp]: fields.timestamp,
      [H.sender]: fields.sender,
      [H.audience]: fields.audience,
      [H.bodyDigest]: fields.bodyDigest,
      [H.signature]: signature,
      [H.signatureBatch]: batch,
    };
    // Only content negotiation passes from the client system; X-Road drops hop-by-hop headers,
    // Host, User-Agent and Server, and we pass nothing else that could steer the provider.
    for (const k of ['content-type', 'accept']) {
      const val = req.headers[k];
      if (typeof val === 'string' && !HOP_BY_HOP.has(k)) headers[k] = val;
    }
    let upstream: Dispatcher.ResponseData;
    try {
      upstream = await request(new URL(oo1Target, gw.address), {
        method: req.method,
        headers,
        body: req.body.length > 0 ? req.body : null,
        dispatcher: this.peerAgent(gw.id),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
    } catch (e) {
      // The transport's own message would name internal hosts and ports: keep it out of the answer.
      const code = (e as { code?: string }).code;
      throw new OnceOnlyError('provider_unreachable', 'the provider gateway could not be reached', { gateway: gw.id, ...(code ? { code } : {}) });
    }
    let body: Buffer;
    try {
      body = Buffer.from(await upstream.body.arrayBuffer());
    } catch {
      throw new OnceOnlyError('provider_unreachable', 'the provider gateway\'s response was cut off or too large', { gateway: gw.id });
    }
    const rh = (name: string): string => {
      const val = upstream.headers[name];
      return typeof val === 'string' ? val : '';
    };
    const contentType = rh('content-type');
    const responseSig: BatchSignature = { signature: rh(H.signature), batch: rh(H.signatureBatch) };
    const ok =
      rh(H.responder) === gw.id &&
      rh(H.requestHash) === requestHash &&
      rh(H.bodyDigest) === bodyDigest(body) &&
      responseSig.signature !== '' &&
      verifyResponse(this.verifier, v.keys.get(gw.id)!, { requestHash, status: String(upstream.statusCode), contentType, timestamp: rh(H.timestamp), responder: gw.id, bodyDigest: rh(H.bodyDigest), errorType: rh(H.errorType) }, responseSig);
    const items = itemsFromQuery(target.query);
    const errorType = ok ? rh(H.errorType) : '';
    await this.writeLog({
      at: this.now().toISOString(),
      side: 'client',
      requestId,
      client: client.id,
      service: target.serviceId,
      purpose: purpose || null,
      agreement: agreement || null,
      items: items.length ? items : null,
      userId: fields.userId || null,
      status: ok ? upstream.statusCode : 502,
      errorType: ok ? errorType || null : 'invalid_response_signature',
      requestHash,
      responseDigest: bodyDigest(body),
      requestSignature: `${signature} ${batch}`,
      responseSignature: responseSig.signature ? `${responseSig.signature} ${responseSig.batch}` : null,
      requestBody: this.o.logBodies ? req.body.toString('utf8') : null,
      responseBody: this.o.logBodies ? body.toString('utf8') : null,
    });
    if (!ok) {
      throw new OnceOnlyError('invalid_response_signature', 'the provider\'s response signature does not verify or is not bound to this request', { gateway: gw.id });
    }
    const out: Record<string, string> = { 'x-road-id': requestId, 'x-road-request-hash': requestHash };
    if (contentType) out['content-type'] = contentType;
    if (errorType) out['x-road-error'] = `Server.ServerProxy.${errorType}`;
    return { status: upstream.statusCode, headers: out, body };
  }

  private listClients(v: ConfView, requestId: string): OutboundResponse {
    const member = (s: string): { instance: string; memberClass: string; memberCode: string } => {
      const [instance, memberClass, memberCode] = s.split('/') as [string, string, string];
      return { instance, memberClass, memberCode };
    };
    // Shape of X-Road's REST listClients answer (member and subsystem entries).
    const member_ = v.conf.members.filter((m) => m.status === 'active').map((m) => ({ id: { object_type: 'MEMBER', xroad_instance: member(m.id).instance, member_class: member(m.id).memberClass, member_code: member(m.id).memberCode }, name: m.name }));
    const subs = v.conf.subsystems.filter((s) => s.status === 'active').map((s) => {
      const [instance, memberClass, memberCode, subsystemCode] = s.id.split('/') as [string, string, string, string];
      return { id: { object_type: 'SUBSYSTEM', xroad_instance: instance, member_class: memberClass, member_code: memberCode, subsystem_code: subsystemCode }, name: v.members.get(s.member)?.name ?? '' };
    });
    return { status: 200, headers: { 'content-type': JSON_TYPE, 'x-road-id': requestId }, body: Buffer.from(JSON.stringify({ member: [...member_, ...subs] })) };
  }

  // ---------------------------------------------------------------------------------------
  // Provider side: signed requests from other gateways, over mutual TLS.
  // ---------------------------------------------------------------------------------------

  /** Handles `METHOD /oo1/…` from another gateway. Every answer is signed. */
  async handleProvider(req: InboundRequest): Promise<OutboundResponse> {
    const started = performance.now();
    const h = (name: string): string => {
      const val = req.headers[name];
      return typeof val === 'string' ? val : '';
    };
    const fields: SignedRequestFields = {
      method: req.method,
      target: req.rawUrl,
      client: h(H.client),
      id: h(H.id),
      userId: h(H.userId),
      issue: h(H.issue),
      purpose: h(H.purpose),
      agreement: h(H.agreement),
      timestamp: h(H.timestamp),
      sender: h(H.sender),
      audience: h(H.audience),
      bodyDigest: h(H.bodyDigest),
    };
    const signature: BatchSignature = { signature: h(H.signature), batch: h(H.signatureBatch) };
    // The hash is computed over what arrived, valid or not, so that even a refusal is bound to it.
    const requestHash = hashOf(canonicalRequest(fields), signature);
    const ctx: ProviderContext = { fields, signature, requestHash, items: [], agreement: null, service: '' };
    let res: { status: number; contentType: string; body: Buffer; errorType?: ErrorType };
    try {
      res = await this.providerInner(req, ctx);
    } catch (e) {
      const err = toTyped(e);
      this.o.metrics.error('provider', err.type);
      res = { status: err.status, contentType: JSON_TYPE, body: errorBody(err), errorType: err.type };
    }
    const timestamp = String(this.now().getTime());
    const digest = bodyDigest(res.body);
    const responseSignature = await signResponse(this.signer, { requestHash, status: String(res.status), contentType: res.contentType, timestamp, responder: this.id, bodyDigest: digest, errorType: res.errorType ?? '' });
    try {
      await this.writeLog({
        at: this.now().toISOString(),
        side: 'provider',
        requestId: fields.id.slice(0, 128) || '-',
        client: fields.client.slice(0, 200) || '-',
        service: ctx.service || '-',
        purpose: fields.purpose.slice(0, 256) || null,
        agreement: ctx.agreement,
        items: ctx.items.length ? ctx.items : null,
        userId: fields.userId.slice(0, 256) || null,
        status: res.status,
        errorType: res.errorType ?? null,
        requestHash,
        responseDigest: digest,
        requestSignature: signature.signature ? `${signature.signature} ${signature.batch}` : null,
        responseSignature: `${responseSignature.signature} ${responseSignature.batch}`,
        requestBody: this.o.logBodies ? req.body.toString('utf8') : null,
        responseBody: this.o.logBodies ? res.body.toString('utf8') : null,
        ...(ctx.release && res.status >= 200 && res.status < 300 ? { release: ctx.release } : {}),
      });
    } catch {
      // Nothing leaves without a log record: a release that cannot be logged is withheld.
      const err = new OnceOnlyError('internal_error', 'the exchange could not be recorded in the message log');
      return { status: 500, headers: { 'content-type': JSON_TYPE }, body: errorBody(err) };
    }
    this.o.metrics.observe('provider', res.status, (performance.now() - started) / 1000);
    const headers: Record<string, string> = {
      'content-type': res.contentType,
      [H.requestHash]: requestHash,
      [H.timestamp]: timestamp,
      [H.responder]: this.id,
      [H.bodyDigest]: digest,
      [H.signature]: responseSignature.signature,
      [H.signatureBatch]: responseSignature.batch,
    };
    if (res.errorType) headers[H.errorType] = res.errorType;
    return { status: res.status, headers, body: res.body };
  }

  private async providerInner(req: InboundRequest, ctx: ProviderContext): Promise<{ status: number; contentType: string; body: Buffer; errorType?: ErrorType }> {
    this.tooLarge(req);
    let v = this.o.conf.current();
    const { fields, signature } = ctx;
    // 1. Who is connecting: a certificate from the central CA that the configuration lists.
    const sock = req.socket;
    if (!sock?.authorized) {
      throw new OnceOnlyError('untrusted_certificate', 'the client certificate was not issued by the central certificate authority', { reason: String(sock?.authorizationError ?? 'no client certificate') });
    }
    const fp = peerFingerprint(sock);
    let peer = v.gatewaysByFingerprint.get(fp);
    // A gateway registered since our last fetch: look again in a fresh copy (rate-limited).
    if (!peer && (await this.o.conf.refreshIfStale())) {
      v = this.o.conf.current();
      peer = v.gatewaysByFingerprint.get(fp);
    }
    if (!peer) throw new OnceOnlyError('unknown_gateway', 'the client certificate belongs to no gateway in the global configuration');
    if (peer.status !== 'active') throw new OnceOnlyError('gateway_suspended', 'the sending gateway is suspended', { gateway: peer.id });
    if (v.members.get(peer.member)?.status !== 'active') throw new OnceOnlyError('member_suspended', 'the sending gateway\'s member is suspended', { gateway: peer.id });
    // 2. The signature: present, by the connecting gateway, over an untampered request for us.
    if (signature.signature === '' || signature.batch === '') throw new OnceOnlyError('unsigned_request', 'the request carries no signature', { field: `headers.${H.signature}` });
    for (const [k, val] of Object.entries(fields) as [string, string][]) {
      if (/[\r\n]/.test(val) || val.length > 4096) throw new OnceOnlyError('invalid_request', `header ${k} is malformed`, { field: k });
    }
    if (fields.sender !== peer.id) throw new OnceOnlyError('invalid_signature', 'the request names a sender other than the gateway that connected', { field: `headers.${H.sender}` });
    if (bodyDigest(req.body) !== fields.bodyDigest) throw new OnceOnlyError('invalid_signature', 'the body does not match its signed digest', { field: 'body' });
    if (!verifyRequest(this.verifier, v.keys.get(peer.id)!, peer.id, fields, signature)) throw new OnceOnlyError('invalid_signature', 'the request signature does not verify', { field: `headers.${H.signature}` });
    if (fields.audience !== this.id) throw new OnceOnlyError('wrong_audience', 'the request is addressed to another gateway', { field: `headers.${H.audience}`, expected: this.id });
    // 3. Freshness and uniqueness.
    const ts = Number(fields.timestamp);
    const nowMs = this.now().getTime();
    if (!Number.isSafeInteger(ts) || Math.abs(nowMs - ts) > this.window) {
      throw new OnceOnlyError('message_expired', 'the request is outside the accepted time window', { field: `headers.${H.timestamp}`, expected: `within ${this.window / 1000} s of the provider's clock` });
    }
    if (fields.id === '' || fields.id.length > 128) throw new OnceOnlyError('invalid_request', 'the request id is missing or too long', { field: `headers.${H.id}` });
    const client = parseSubsystemId(fields.client, `headers.${H.client}`);
    if (`${client.instance}/${client.memberClass}/${client.memberCode}` !== peer.member) {
      throw new OnceOnlyError('unknown_client', 'the client subsystem does not belong to the sending gateway\'s member', { field: `headers.${H.client}` });
    }
    await this.guardReplay(fields.client, fields.id, nowMs);
    // 4. What is asked for.
    const target = parseServiceTarget(fields.target, '/oo1/');
    ctx.service = target.serviceId;
    const providerMember = `${target.provider.instance}/${target.provider.memberClass}/${target.provider.memberCode}`;
    const registered = this.o.services[target.providerId];
    if (providerMember !== this.member || !registered) throw new OnceOnlyError('unknown_service', 'this gateway does not serve that subsystem', { field: 'path.service' });
    if (METASERVICES.has(target.service.serviceCode) && target.path === '') return this.metaservice(v, target, fields.client, registered);
    if (target.service.serviceCode === DATA_USAGE_SERVICE && this.o.access) return this.dataUsage(v, target, fields, ctx, this.o.access);
    const service = registered[target.service.serviceCode];
    if (!service) throw new OnceOnlyError('unknown_service', 'the subsystem offers no such service', { field: 'path.service' });
    if (req.method !== 'GET') throw new OnceOnlyError('method_not_allowed', 'registry services are read with GET through the exchange', { field: 'method', expected: 'GET' });
    // Only a record's items and its existence are exchanged; a registry's history and other
    // operations are for its own staff and auditors, not for agreement holders.
    if (!REGISTRY_OPERATIONS.test(target.path)) {
      throw new OnceOnlyError('unknown_service', 'the exchange offers only /{id}?items=… and /{id}/exists on a registry service', { field: 'path', expected: '/{id} or /{id}/exists' });
    }
    ctx.items = itemsFromQuery(target.query);
    // 5. The agreement: deny by default.
    const agreement = decideAccess(v, { client: fields.client, provider: target.providerId, purpose: fields.purpose, agreement: fields.agreement, items: ctx.items, date: today(this.now()) });
    ctx.agreement = agreement.id;
    // 6. The person's own say, where the agreement gives them one.
    const person = target.path.split('/')[1] ?? '';
    if (agreement.consentRequired) {
      const consent = this.o.consents && PERSON_ID.test(person) ? await this.o.consents.inForce({ person, controller: fields.client, purpose: agreement.purpose.id, items: ctx.items, agreement: agreement.id, at: this.now() }) : null;
      if (!consent) throw new OnceOnlyError('consent_required', `agreement ${agreement.id} releases data only while the person's consent covers the request`, { agreement: agreement.id });
    }
    if (agreement.previewRequired) {
      // An existence check asks for no items, so there is nothing to preview: it is refused.
      if (!this.o.previews || !PERSON_ID.test(person) || ctx.items.length === 0) {
        throw new OnceOnlyError('preview_required', `agreement ${agreement.id} releases data only after the person has seen and approved it`, { agreement: agreement.id });
      }
      // OOTS explicit request: the first request opens a preview at the source; after the person
      // approves, one retry is released (consume throws preview_declined after a decline).
      const decision = await this.o.previews.consume({ client: fields.client, provider: target.providerId, person, items: ctx.items, agreement: agreement.id });
      if (decision === 'none') {
        const p = await this.o.previews.open({ client: fields.client, provider: target.providerId, person, items: ctx.items, agreement, requestFingerprint: ctx.requestHash });
        throw new OnceOnlyError('preview_required', 'the person must see and approve this release at the source first', { agreement: agreement.id, previewUrl: p.url, expiresAt: p.expiresAt });
      }
    }
    // 7. Call the service, then check that the answer releases only what was granted.
    const upstream = await this.callService(service, target);
    if (upstream.status >= 200 && upstream.status < 300) {
      this.checkRelease(upstream.body, new Set(agreement.items), target);
      const subject = target.path.split('/')[1] ?? '';
      if (PERSON_ID.test(subject)) {
        ctx.release = {
          person: subject,
          client: fields.client,
          provider: target.providerId,
          service: ctx.service,
          items: target.path.endsWith('/exists') ? [] : ctx.items,
          agreement: agreement.id,
          purpose: agreement.purpose.id,
          legalBasis: agreement.legalBasis,
          requestId: fields.id,
          userId: fields.userId || null,
        };
      }
    }
    return upstream;
  }

  /**
   * The data-usage service: a person's access records on this gateway, newest first, paged, each
   * with its transparency-log inclusion proof. Reached like any service, so the same rules apply:
   * the client needs an agreement in force granting this register's usage-records item.
   */
  private async dataUsage(v: ConfView, target: ParsedTarget, fields: SignedRequestFields, ctx: ProviderContext, access: AccessRecorder): Promise<{ status: number; contentType: string; body: Buffer }> {
    const person = /^\/([^/]+)$/.exec(target.path)?.[1] ?? '';
    if (!PERSON_ID.test(person)) throw new OnceOnlyError('invalid_identifier', 'the data-usage service is asked for /{person id}', { field: 'path', expected: '/P-#########-#' });
    ctx.items = itemsFromQuery(target.query);
    if (ctx.items.length === 0 || !ctx.items.every((i) => USAGE_ITEM.test(i))) {
      throw new OnceOnlyError('invalid_request', 'the data-usage service releases only usage-records items', { field: 'query.items', expected: 'the register\'s usage-records item, e.g. person.usageRecords' });
    }
    const agreement = decideAccess(v, { client: fields.client, provider: target.providerId, purpose: fields.purpose, agreement: fields.agreement, items: ctx.items, date: today(this.now()) });
    ctx.agreement = agreement.id;
    const q = new URLSearchParams(target.query);
    const num = (name: string, dflt: number): number => {
      const raw = q.get(name);
      if (raw === null) return dflt;
      if (!/^\d{1,6}$/.test(raw)) throw new OnceOnlyError('invalid_request', `${name} must be a whole number`, { field: `query.${name}` });
      return Number(raw);
    };
    const page = await access.list(person, num('page', 1), num('pageSize', 20));
    return { status: 200, contentType: JSON_TYPE, body: Buffer.from(JSON.stringify({ provider: target.providerId, gateway: this.id, ...page })) };
  }

  private async guardReplay(client: string, requestId: string, nowMs: number): Promise<void> {
    const params: [string, string, string, string] = [this.id, client, requestId, new Date(nowMs + 2 * this.window).toISOString()];
    let fresh = true;
    if (this.o.sqlite) {
      fresh = await this.replayBatch(params);
    } else {
      this.replayInsert ??= this.o.db.insertInto('replay_guard').values({ gateway_id: '', client: '', request_id: '', expires_at: '' }).compile();
      try {
        await this.o.db.executeQuery({ ...this.replayInsert, parameters: params });
      } catch (e) {
        // PostgreSQL unique_violation (SQLSTATE 23505): the primary key (gateway, client, request
        // id) refused the second copy, whichever gateway process received the first.
        if ((e as { code?: string }).code !== '23505') throw e;
        fresh = false;
      }
    }
    if (!fresh) throw new OnceOnlyError('replayed_request', 'a request with this id from this client was already received', { field: `headers.${H.id}` });
  }

  /**
   * SQLite: the replay-guard rows of requests arriving together are written in one transaction
   * (one commit instead of one per request), under Kysely's connection lock. `INSERT OR IGNORE`
   * and the primary key decide, per row, whether the id was new.
   */
  private replayBatch(params: [string, string, string, string]): Promise<boolean> {
    return new Promise((resolve, reject) => {
      if (this.replayQueue.length === 0) {
        setImmediate(() => {
          const batch = this.replayQueue;
          this.replayQueue = [];
          const sqlite = this.o.sqlite!;
          this.replayRaw ??= sqlite.prepare('INSERT OR IGNORE INTO replay_guard (gateway_id, client, request_id, expires_at) VALUES (?, ?, ?, ?)');
          const stmt = this.replayRaw;
          const write = sqlite.transaction(() => batch.map((b) => stmt.run(...b.params).changes === 1));
          this.o.db
            .connection()
            .execute(() => Promise.resolve(write()))
            .then(
              (results) => batch.forEach((b, i) => b.resolve(results[i] === true)),
              (e: unknown) => batch.forEach((b) => b.reject(e)),
            );
        });
      }
      this.replayQueue.push({ params, resolve, reject });
    });
  }

  private async callService(service: ServiceRegistration, target: ParsedTarget): Promise<{ status: number; contentType: string; body: Buffer }> {
    const url = `${service.url.replace(/\/$/, '')}${target.path}${target.query ? `?${target.query}` : ''}`;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: 'GET',
        headers: { accept: 'application/json', ...(service.headers ?? {}) },
        dispatcher: this.upstream,
        headersTimeout: service.timeoutMs,
        bodyTimeout: service.timeoutMs,
      });
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      if (code.includes('TIMEOUT')) throw new OnceOnlyError('service_timeout', 'the service did not answer in time', { timeoutMs: service.timeoutMs });
      throw new OnceOnlyError('service_failed', 'the service could not be reached');
    }
    let body: Buffer;
    try {
      body = Buffer.from(await res.body.arrayBuffer());
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      if (code.includes('TIMEOUT')) throw new OnceOnlyError('service_timeout', 'the service did not finish answering in time', { timeoutMs: service.timeoutMs });
      throw new OnceOnlyError('service_failed', 'the service\'s answer was cut off or too large', { expected: `at most ${this.maxBody} bytes` });
    }
    const ct = res.headers['content-type'];
    return { status: res.statusCode, contentType: typeof ct === 'string' ? ct : 'application/octet-stream', body };
  }

  /**
   * Data minimisation at the border: a registry answer may carry only items that were both asked
   * for and granted. Anything else (a misbehaving or compromised service) is withheld whole.
   */
  private checkRelease(body: Buffer, granted: Set<string>, target: ParsedTarget): void {
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      throw new OnceOnlyError('response_not_allowed', 'the service answered something other than JSON');
    }
    const asked = new Set(itemsFromQuery(target.query));
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new OnceOnlyError('response_not_allowed', 'the service answer is not a registry answer');
    const o = doc as { items?: unknown; item?: unknown; exists?: unknown };
    if (target.path.endsWith('/exists')) {
      if (Object.keys(o).some((k) => k !== 'exists')) throw new OnceOnlyError('response_not_allowed', 'an existence check answered more than whether the record exists');
      return;
    }
    const released = o.items && typeof o.items === 'object' ? Object.keys(o.items) : typeof o.item === 'string' ? [o.item] : [];
    if (released.length === 0 && asked.size > 0) throw new OnceOnlyError('response_not_allowed', 'the service answer is not a registry answer');
    for (const it of released) {
      if (!granted.has(it) || !asked.has(it)) throw new OnceOnlyError('response_not_allowed', 'the service answered items that were not asked for or not granted');
    }
  }

  private metaservice(v: ConfView, target: ParsedTarget, client: string, registered: Record<string, ServiceRegistration>): { status: number; contentType: string; body: Buffer } | Promise<{ status: number; contentType: string; body: Buffer }> {
    const code = target.service.serviceCode;
    const p = target.provider;
    const entry = (serviceCode: string): Record<string, string> => ({ object_type: 'SERVICE', xroad_instance: p.instance, member_class: p.memberClass, member_code: p.memberCode, subsystem_code: p.subsystemCode, service_code: serviceCode, service_type: 'REST' });
    const date = today(this.now());
    const json = (x: unknown): { status: number; contentType: string; body: Buffer } => ({ status: 200, contentType: JSON_TYPE, body: Buffer.from(JSON.stringify(x)) });
    requireActiveClient(v, client);
    if (code === 'listMethods') return json({ service: Object.keys(registered).map(entry) });
    const allowed = v.conf.agreements.some((a) => a.client === client && a.provider === target.providerId && a.validFrom <= date && date <= a.validUntil);
    if (code === 'allowedMethods') return json({ service: allowed ? Object.keys(registered).map(entry) : [] });
    // getOpenAPI?serviceCode=X: the service's own description, for clients with an agreement.
    const serviceCode = new URLSearchParams(target.query).get('serviceCode') ?? '';
    const service = registered[serviceCode];
    if (!service) throw new OnceOnlyError('unknown_service', 'getOpenAPI needs ?serviceCode= naming a service of this subsystem', { field: 'query.serviceCode' });
    if (!allowed) throw new OnceOnlyError('no_agreement', 'no agreement in force lets this client use this provider');
    const base = new URL(service.url);
    return this.callService({ ...service, url: `${base.origin}/openapi.json` }, { ...target, path: '', query: '' });
  }
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

interface ProviderContext {
  /** Set when the answer releases items about a person: the access record to write with the log record. */
  release?: Release;
  fields: SignedRequestFields;
  signature: BatchSignature;
  requestHash: string;
  items: string[];
  agreement: string | null;
  service: string;
}
