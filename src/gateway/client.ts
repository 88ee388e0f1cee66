/**
 * @module gateway/client
 * The client side of a gateway (X-Road's client proxy): X-Road REST (`r1`) from the
 * organisation's own information systems.
 *
 * For each request: parse it once (gateway/r1); check that its client is registered and assigned
 * to this gateway and that the connection may speak for it (gateway/isauth); choose among the
 * gateways the central assigned to the provider's subsystem (X-Road-Security-Server names one, else
 * the last that answered first, then the others shuffled), failing over only while a connection
 * cannot be made, so a request is never delivered twice; sign it for the gateway chosen; verify the
 * signed answer and that it is bound to this request; pass it on with X-Road's response headers.
 * Every request that arrived is logged, whatever its outcome (issue 10, hole 6).
 */
import { randomUUID } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
import { OnceOnlyError, isOnceOnlyError } from '../core/errors.ts';
import { encodeIdPath, memberOfId } from '../core/ids.ts';
import { H, bodyDigest, packHeaders, signRequest, unpackHeaders, verifyResponse, type SignedRequestFields } from './protocol.ts';
import type { BatchSignature } from '../core/batchsign.ts';
import { parseR1, type R1ServiceRequest } from './r1.ts';
import { authenticateClient } from './isauth.ts';
import { requireActiveClient } from './access.ts';
import { METASERVICES, listClients } from './metaservices.ts';
import { INBOX_SERVICE } from './events.ts';
import { parseXRoadError, renderError, requestHashOf, toXRoadError, xroadStatus, type XRoadError } from './xroad.ts';
import type { ConfView } from './confclient.ts';
import type { GlobalConfiguration } from '../central/types.ts';
import type { GatewayContext, InboundRequest, OutboundResponse } from './gateway.ts';
import type { LogEntryInput } from './messagelog.ts';

type GatewayEntry = GlobalConfiguration['gateways'][number];

/** How long the gateway that answered a provider's request is tried first (X-Road: one hour). */
const PREFERRED_MS = 3600_000;

/** Transport errors that mean the request never reached the provider gateway: safe to try the next. */
const NOT_DELIVERED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'ONCEONLY_PEER_MISMATCH']);
function notDelivered(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return NOT_DELIVERED.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || /CERT|SIGNATURE|SELF_SIGNED/.test(code);
}

/** Reads `items` (comma list) or `item` from a raw query string, for the log. */
function itemsOf(query: string): string[] {
  const p = new URLSearchParams(query);
  const out: string[] = [];
  for (const v of p.getAll('items')) for (const s of v.split(',')) if (s.trim() !== '') out.push(s.trim());
  return [...new Set(out)].slice(0, 200);
}

/** Encodes an identifier for the X-Road-Client and X-Road-Service response headers (each part escaped, PR-REST §4.3). */
const headerId = encodeIdPath;

/** The log record of one request, filled in as it goes. */
interface Record_ {
  entry: LogEntryInput;
  detail: Record<string, unknown>;
}

export class ClientSide {
  readonly #g: GatewayContext;
  /** Provider subsystem → the gateway that last answered it, and until when it is tried first. */
  readonly #preferred = new Map<string, { gateway: string; until: number }>();

  constructor(g: GatewayContext) {
    this.#g = g;
  }

  async close(): Promise<void> {
    await this.#g.peers.close();
  }

  /** Handles a request from one of the organisation's information systems. Never throws. */
  async handle(req: InboundRequest): Promise<OutboundResponse> {
    const started = performance.now();
    const g = this.#g;
    const requestId = randomUUID();
    const rec: Record_ = {
      detail: { requestId },
      entry: {
        at: '', side: 'client', requestId: '-', client: '-', service: '-', purpose: null, agreement: null, items: null, userId: null,
        status: 0, errorType: null, requestHash: '', responseDigest: null, requestSignature: null, responseSignature: null, requestBody: null, responseBody: null, peer: null,
      },
    };
    const accept = typeof req.headers.accept === 'string' ? req.headers.accept : undefined;
    let res: OutboundResponse;
    try {
      res = await this.#inner(req, requestId, rec);
    } catch (e) {
      const x = toXRoadError(e, 'client');
      res = this.#refusal(x, accept, rec);
    }
    rec.entry.at = g.now().toISOString();
    rec.entry.status = res.status;
    // A request refused before it was signed is logged with the hash of what arrived.
    if (rec.entry.requestHash === '') rec.entry.requestHash = requestHashOf(`r1-request\n${req.method}\n${req.rawUrl}`, req.body);
    if (g.o.logBodies) rec.entry.requestBody = req.body.toString('utf8');
    rec.entry.detail = rec.detail;
    // Pushed events about people were taken: their access records commit with this log record.
    if (req.internal?.release && res.status >= 200 && res.status < 300) {
      const taken = req.internal.release(res);
      if (taken.length > 0) rec.entry.release = taken;
    }
    try {
      await g.o.log.append(rec.entry);
    } catch {
      // An answer the gateway cannot prove it gave is not given (X-Road's LoggingFailed).
      res = renderError(toXRoadError(new OnceOnlyError('logging_failed', 'the exchange could not be recorded in the message log'), 'client'), accept);
    }
    g.o.metrics.observe('client', res.status, (performance.now() - started) / 1000);
    return res;
  }

  #refusal(x: XRoadError, accept: string | undefined, rec: Record_): OutboundResponse {
    this.#g.o.metrics.error('client', x.onceonly.type);
    rec.entry.errorType = x.onceonly.type;
    rec.detail['errorId'] = x.detail;
    rec.detail['xroadType'] = x.type;
    const r = renderError(x, accept);
    const headers: Record<string, string> = { ...r.headers, 'x-road-request-id': String(rec.detail['requestId']) };
    if (rec.entry.requestId !== '-') headers['x-road-id'] = rec.entry.requestId;
    return { status: r.status, headers, body: r.body };
  }

  async #inner(req: InboundRequest, requestId: string, rec: Record_): Promise<OutboundResponse> {
    const g = this.#g;
    if (req.oversized || req.body.length > g.maxBody) throw new OnceOnlyError('payload_too_large', 'request body is too large', { field: 'body', expected: `at most ${g.maxBody} bytes` });
    const r = parseR1(req.method, req.rawUrl, req.rawHeaders);
    if (r.kind === 'listClients') {
      rec.entry.service = 'listClients';
      const answer = listClients(g.o.conf.current(), r.accept, r.instance);
      rec.entry.responseDigest = bodyDigest(answer.body);
      return { status: answer.status, headers: { 'content-type': answer.contentType, 'x-road-request-id': requestId }, body: answer.body };
    }
    rec.entry.client = r.clientId;
    rec.entry.service = r.serviceId;
    rec.entry.requestId = r.xroadId ?? `${g.instance}-${randomUUID()}`;
    rec.entry.purpose = r.purpose || null;
    rec.entry.agreement = r.agreement || null;
    rec.entry.userId = r.userId || null;
    const items = itemsOf(r.query);
    rec.entry.items = items.length ? items : null;

    let v = g.o.conf.current();
    // A subsystem registered or assigned since our last fetch: look again in a fresh copy (rate-limited).
    if ((!this.#clientHere(v, r.clientId) || !v.subsystems.has(r.providerId) || this.#candidates(v, r.providerId).length === 0) && (await g.o.conf.refreshIfStale())) v = g.o.conf.current();
    this.#requireClientHere(v, r.clientId);
    // The gateway's own dispatcher (an internal request) is not an information system to authenticate.
    const consumed = req.internal ? false : authenticateClient(r.clientId, g.o.clients ?? {}, g.o.clientLoopback ?? true, { tls: req.socket, authorization: r.authorization });
    // Only the register's gateway sends events, so that each one is released with its access
    // record and notice: a register's own system posting to a subscriber's inbox would hand
    // personal data over with no record the person could see. To an information system the inbox
    // is no service at all (X-Road's client proxy has no access-denied of its own: UnknownService).
    if (!req.internal && r.service.serviceCode === INBOX_SERVICE) {
      throw new OnceOnlyError('unknown_service', 'change events are sent to event-inbox by the register\'s gateway only, never by an information system', { field: 'path.service', expected: 'subscribe with the register\'s subscriptions service instead (docs/events.md)' });
    }
    const isMeta = METASERVICES.has(r.service.serviceCode) && r.servicePath === '';
    if (r.purpose === '' && r.agreement === '' && !isMeta) {
      throw new OnceOnlyError('invalid_request', 'the purpose of the request is required', { field: 'headers.x-onceonly-purpose', expected: 'the purpose id of a data-sharing agreement (or X-OnceOnly-Agreement with its id)' });
    }
    const headers = consumed ? r.headers.filter(([n]) => n.toLowerCase() !== 'authorization') : r.headers;
    return this.#send(v, r, headers, req.body, requestId, rec);
  }

  /** True when `client` (a subsystem or this gateway's member) is one this gateway may send for. */
  #clientHere(v: ConfView, client: string): boolean {
    if (memberOfId(client) !== this.#g.member) return false;
    if (client === this.#g.member) return v.members.has(client);
    return v.gateways.get(this.#g.id)?.subsystems.includes(client) ?? false;
  }

  #requireClientHere(v: ConfView, client: string): void {
    if (memberOfId(client) !== this.#g.member) {
      throw new OnceOnlyError('unknown_client', 'this gateway does not serve the client named in X-Road-Client', { field: 'headers.x-road-client', expected: `a subsystem of ${this.#g.member} assigned to ${this.#g.id}` });
    }
    requireActiveClient(v, client);
    if (!v.gateways.has(this.#g.id)) {
      throw new OnceOnlyError('unknown_client', 'this gateway is not in the global configuration yet: its registration awaits the central operator\'s approval', { field: 'headers.x-road-client', expected: `onceonly central gateway approve ${this.#g.id}` });
    }
    if (!this.#clientHere(v, client)) {
      throw new OnceOnlyError('unknown_client', 'the central has not assigned this client subsystem to this gateway', { field: 'headers.x-road-client', expected: `a subsystem assigned to ${this.#g.id}` });
    }
  }

  /** The gateways the central assigned to `provider`, active and of an active member. */
  #candidates(v: ConfView, provider: string): GatewayEntry[] {
    return v.conf.gateways.filter((x) => x.status === 'active' && v.members.get(x.member)?.status === 'active' && x.subsystems.includes(provider));
  }

  /** The order to try the provider's gateways in: one named, else the preferred first, then the rest shuffled. */
  #order(v: ConfView, r: R1ServiceRequest): GatewayEntry[] {
    const sub = v.subsystems.get(r.providerId);
    if (!sub) throw new OnceOnlyError('unknown_provider', 'the provider subsystem is not registered in the global configuration', { field: 'path.service', expected: 'a registered subsystem' });
    if (v.members.get(sub.member)?.status !== 'active') throw new OnceOnlyError('member_suspended', 'the provider\'s member organisation is suspended', { field: 'path.service' });
    if (sub.status !== 'active') throw new OnceOnlyError('subsystem_suspended', 'the provider subsystem is suspended', { field: 'path.service' });
    const all = this.#candidates(v, r.providerId);
    if (r.securityServer !== '') {
      const named = all.find((x) => x.id === r.securityServer);
      if (!named) throw new OnceOnlyError('invalid_security_server', `${r.securityServer} is not an active gateway of the provider subsystem`, { field: 'headers.x-road-security-server', expected: `one of: ${all.map((x) => x.id).join(', ') || 'none'}` });
      return [named];
    }
    if (all.length === 0) {
      throw new OnceOnlyError('unknown_provider', 'no active gateway is assigned to the provider subsystem', { field: 'path.service', expected: 'a provider subsystem the central assigned to a gateway' });
    }
    const shuffled = [...all];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const pref = this.#preferred.get(r.providerId);
    if (pref && pref.until > this.#g.now().getTime()) {
      const k = shuffled.findIndex((x) => x.id === pref.gateway);
      if (k > 0) shuffled.unshift(...shuffled.splice(k, 1));
    }
    return shuffled;
  }

  async #send(v: ConfView, r: R1ServiceRequest, headers: [string, string][], body: Buffer, requestId: string, rec: Record_): Promise<OutboundResponse> {
    const g = this.#g;
    const target = `/oo1/${encodeIdPath(r.serviceId)}${r.servicePath}${r.query ? `?${r.query}` : ''}`;
    const packed = packHeaders(headers);
    const tried: { gateway: string; error: string }[] = [];
    rec.detail['tried'] = tried;
    let sent: { gw: GatewayEntry; fields: SignedRequestFields; requestHash: string; signature: string; batch: string; upstream: Dispatcher.ResponseData } | undefined;
    for (const gw of this.#order(v, r)) {
      const fields: SignedRequestFields = {
        method: r.method, target, client: r.clientId, id: rec.entry.requestId, requestId, purpose: r.purpose, agreement: r.agreement,
        timestamp: String(g.now().getTime()), sender: g.id, audience: gw.id, headers: packed, bodyDigest: bodyDigest(body),
      };
      const { signature, batch, requestHash } = await signRequest(g.signer, fields, body);
      rec.entry.peer = gw.id;
      rec.entry.requestHash = requestHash;
      rec.entry.requestSignature = `${signature} ${batch}`;
      const transport: Record<string, string> = {
        [H.client]: fields.client, [H.id]: fields.id, [H.requestId]: fields.requestId, [H.purpose]: fields.purpose, [H.agreement]: fields.agreement,
        [H.timestamp]: fields.timestamp, [H.sender]: fields.sender, [H.audience]: fields.audience, [H.headers]: fields.headers,
        [H.bodyDigest]: fields.bodyDigest, [H.signature]: signature, [H.signatureBatch]: batch,
      };
      try {
        const upstream = await request(new URL(target, gw.address), { method: r.method, headers: transport, body: body.length > 0 ? body : null, dispatcher: this.#g.peers.agent(gw.id), headersTimeout: 60_000, bodyTimeout: 60_000 });
        sent = { gw, fields, requestHash, signature, batch, upstream };
        break;
      } catch (e) {
        const code = (e as { code?: string }).code ?? 'error';
        tried.push({ gateway: gw.id, error: code });
        this.#preferred.delete(r.providerId);
        // Delivered, or perhaps delivered: never sent twice. The transport's message would name
        // internal hosts and ports, so only its code goes into the answer.
        if (!notDelivered(e)) throw new OnceOnlyError('provider_unreachable', 'the connection to the provider gateway failed', { gateway: gw.id, code });
      }
    }
    if (!sent) {
      const allPinned = tried.length > 0 && tried.every((t) => t.error === 'ONCEONLY_PEER_MISMATCH');
      if (allPinned) throw new OnceOnlyError('untrusted_certificate', 'no provider gateway presented the certificate the global configuration lists for it', { gateways: tried.map((t) => t.gateway) });
      throw new OnceOnlyError('provider_unreachable', 'no gateway of the provider could be reached', { gateways: tried.map((t) => t.gateway), codes: tried.map((t) => t.error) });
    }
    const { gw, upstream } = sent;
    let answer: Buffer;
    try {
      answer = Buffer.from(await upstream.body.arrayBuffer());
    } catch {
      throw new OnceOnlyError('provider_unreachable', 'the provider gateway\'s response was cut off or too large', { gateway: gw.id });
    }
    const rh = (name: string): string => {
      const x = upstream.headers[name];
      return typeof x === 'string' ? x : '';
    };
    rec.entry.responseDigest = bodyDigest(answer);
    if (g.o.logBodies) rec.entry.responseBody = answer.toString('utf8');
    const responseSig: BatchSignature = { signature: rh(H.signature), batch: rh(H.signatureBatch) };
    const key = v.keys.get(gw.id);
    const signed = rh(H.responder) === gw.id && rh(H.bodyDigest) === bodyDigest(answer) && responseSig.signature !== '' && key !== undefined &&
      verifyResponse(g.verifier, key, { requestHash: rh(H.requestHash), status: String(upstream.statusCode), timestamp: rh(H.timestamp), responder: gw.id, headers: rh(H.headers), bodyDigest: rh(H.bodyDigest), errorType: rh(H.errorType) }, responseSig);
    if (!signed) throw new OnceOnlyError('invalid_response_signature', 'the provider\'s response signature does not verify', { gateway: gw.id });
    rec.entry.responseSignature = `${responseSig.signature} ${responseSig.batch}`;
    // Signed, but for another request: X-Road's InconsistentResponse.
    if (rh(H.requestHash) !== sent.requestHash) throw new OnceOnlyError('inconsistent_response', 'the provider\'s response is bound to another request', { gateway: gw.id });
    this.#preferred.set(r.providerId, { gateway: gw.id, until: g.now().getTime() + PREFERRED_MS });
    const errorType = rh(H.errorType);
    const common: Record<string, string> = {
      'x-road-id': rec.entry.requestId,
      'x-road-client': headerId(r.clientId),
      'x-road-service': headerId(r.serviceId),
      'x-road-request-id': requestId,
      'x-road-request-hash': sent.requestHash,
      'x-onceonly-provider-gateway': gw.id,
    };
    if (errorType !== '') {
      // A refusal by the provider gateway: its X-Road type and error id, in the client's format.
      const x = parseXRoadError(answer);
      if (!x) throw new OnceOnlyError('inconsistent_response', 'the provider gateway\'s refusal is not an X-Road error', { gateway: gw.id });
      rec.entry.errorType = errorType;
      rec.detail['errorId'] = x.detail;
      rec.detail['xroadType'] = x.type;
      g.o.metrics.error('client', errorType);
      const rendered = renderError(x, r.accept);
      return { status: xroadStatus(x.type), headers: { ...rendered.headers, ...common }, body: rendered.body };
    }
    let passed: [string, string][];
    try {
      passed = unpackHeaders(rh(H.headers), 'response.headers');
    } catch (e) {
      throw isOnceOnlyError(e) ? new OnceOnlyError('inconsistent_response', 'the provider gateway passed back malformed headers', { gateway: gw.id }) : e;
    }
    const out: Record<string, string | string[]> = {};
    for (const [k, val] of passed) {
      const lower = k.toLowerCase();
      const prev = out[lower];
      out[lower] = prev === undefined ? val : Array.isArray(prev) ? [...prev, val] : [prev, val];
    }
    return { status: upstream.statusCode, headers: { ...out, ...common }, body: answer };
  }
}
