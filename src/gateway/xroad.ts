/**
 * @module gateway/xroad
 * What the gateway says to information systems in X-Road's own words (X-Road message protocol
 * for REST, PR-REST 1.0.4, checked against X-Road 7.7's security server where the text is silent):
 * error types (`Client.BadRequest`, `Server.ClientProxy.UnknownMember`,
 * `Server.ServerProxy.AccessDenied`, …), their HTTP statuses (§4.6: 400 for a request that does not
 * follow the protocol, 500 for every error of the exchange itself), the error body
 * `{type, message, detail}` in JSON or, when the client asks for it, XML (§4.6), the request hash
 * (§4.3: base64 SHA-512) and the headers that never pass (§4.3 "Filtered headers").
 *
 * onceonly's own, finer reason (`item_not_covered`, `history_not_granted`, …) travels beside
 * X-Road's type in an extra member `onceonly: {type, detail}`, so code written for X-Road branches
 * on `type` as before and onceonly's callers still learn exactly what to fix.
 */
import { createHash, randomUUID } from 'node:crypto';
import { OnceOnlyError, isOnceOnlyError, type ErrorDetail, type ErrorType } from '../core/errors.ts';

/** Which side of the exchange refused: X-Road's client proxy or server proxy. */
export type Side = 'client' | 'provider';

/**
 * Headers never passed from one hop to the next, as X-Road's RestMessage.SKIPPED_HEADERS lists
 * them: hop-by-hop fields (RFC 9110 §7.6.1), Host, User-Agent and Server (they name the origin
 * host), Content-Length (the gateway frames the body itself) and Expect (answered locally).
 */
export const SKIPPED_HEADERS: ReadonlySet<string> = new Set(['transfer-encoding', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'connection', 'user-agent', 'host', 'content-length', 'server', 'expect', 'proxy-connection']);

/** Headers the gateway sets itself and never takes from an information system or a service (PR-REST §4.3). */
export const GATEWAY_SET_HEADERS: ReadonlySet<string> = new Set(['x-road-request-id', 'x-road-request-hash', 'x-road-id', 'x-road-client', 'x-road-service', 'x-road-error']);

// X-Road's type suffix for each onceonly type, on the client gateway (X-Road's client proxy) and on
// the provider gateway (its server proxy). `client` means the request did not follow the protocol:
// `Client.BadRequest` (PR-REST §4.6, category 3).
const SUFFIX: Partial<Record<ErrorType, { client?: string; provider?: string }>> = {
  invalid_request: { client: 'client', provider: 'InvalidRequest' },
  invalid_identifier: { client: 'client', provider: 'InvalidRequest' },
  invalid_service_path: { client: 'client', provider: 'InvalidRequest' },
  invalid_date: { client: 'client', provider: 'InvalidRequest' },
  payload_too_large: { client: 'client', provider: 'InvalidRequest' },
  global_conf_expired: { client: 'OutdatedGlobalConf', provider: 'OutdatedGlobalConf' },
  invalid_global_conf: { client: 'MalformedGlobalConf', provider: 'MalformedGlobalConf' },
  // Client gateway: the client or the provider is not registered (X-Road: "not found").
  unknown_client: { client: 'UnknownMember', provider: 'ServiceFailed.SslAuthenticationFailed' },
  member_suspended: { client: 'UnknownMember', provider: 'ServiceFailed.SslAuthenticationFailed' },
  subsystem_suspended: { client: 'UnknownMember', provider: 'AccessDenied' },
  gateway_suspended: { client: 'UnknownMember', provider: 'ServiceFailed.SslAuthenticationFailed' },
  unknown_provider: { client: 'UnknownMember', provider: 'ServiceFailed.UnknownMember' },
  provider_not_served: { client: 'UnknownMember', provider: 'ServiceFailed.UnknownMember' },
  invalid_security_server: { client: 'InvalidSecurityServer', provider: 'InvalidSecurityServer' },
  client_not_authenticated: { client: 'SslAuthenticationFailed', provider: 'ServiceFailed.SslAuthenticationFailed' },
  // Provider gateway: who is calling and what the message says.
  untrusted_certificate: { client: 'SslAuthenticationFailed', provider: 'ServiceFailed.SslAuthenticationFailed' },
  unknown_gateway: { client: 'SslAuthenticationFailed', provider: 'ServiceFailed.SslAuthenticationFailed' },
  unsigned_request: { provider: 'MissingSignature' },
  invalid_signature: { client: 'SignatureVerification.InvalidSignatureValue', provider: 'SignatureVerification.InvalidSignatureValue' },
  invalid_response_signature: { client: 'SignatureVerification.InvalidSignatureValue' },
  inconsistent_response: { client: 'InconsistentResponse' },
  wrong_audience: { provider: 'InvalidSecurityServer' },
  message_expired: { provider: 'InvalidMessage' },
  replayed_request: { provider: 'InvalidMessage' },
  // Provider gateway: what is asked for, and whether an agreement allows it (X-Road's access rights).
  unknown_service: { client: 'UnknownService', provider: 'UnknownService' },
  service_disabled: { provider: 'ServiceDisabled' },
  method_not_allowed: { provider: 'AccessDenied' },
  no_agreement: { provider: 'AccessDenied' },
  agreement_not_in_force: { provider: 'AccessDenied' },
  item_not_covered: { provider: 'AccessDenied' },
  history_not_granted: { provider: 'AccessDenied' },
  consent_required: { provider: 'AccessDenied' },
  preview_required: { provider: 'AccessDenied' },
  preview_declined: { provider: 'AccessDenied' },
  // The service behind the provider gateway (PR-REST §4.6 category 2).
  service_unreachable: { provider: 'NetworkError' },
  service_timeout: { provider: 'IOError' },
  service_failed: { provider: 'ServiceFailed' },
  response_not_allowed: { provider: 'ServiceFailed' },
  // Between the gateways and inside them.
  provider_unreachable: { client: 'NetworkError' },
  logging_failed: { client: 'LoggingFailed', provider: 'LoggingFailed' },
  internal_error: { client: 'InternalError', provider: 'InternalError' },
  service_unavailable: { client: 'InternalError', provider: 'InternalError' },
};

/** X-Road's error type for an onceonly error raised on `side`. */
export function xroadType(type: ErrorType, side: Side): string {
  const s = SUFFIX[type]?.[side];
  if (s === 'client') return 'Client.BadRequest';
  return `${side === 'client' ? 'Server.ClientProxy' : 'Server.ServerProxy'}.${s ?? 'InternalError'}`;
}

/** PR-REST §4.6: 400 for errors of the client (`Client.*`), 500 for every error of the exchange (`Server.*`). */
export function xroadStatus(xType: string): number {
  return xType.startsWith('Server.') ? 500 : 400;
}

/** An error as X-Road says it: its type, message and error id, with onceonly's reason beside. */
export interface XRoadError {
  type: string;
  message: string;
  /** X-Road's `detail`: an id for this occurrence (a UUID), which the message log records too. */
  detail: string;
  onceonly: { type: ErrorType; detail: ErrorDetail };
}

/** Builds the X-Road form of an error raised on `side` (anything untyped is an internal error). */
export function toXRoadError(e: unknown, side: Side): XRoadError {
  const err = isOnceOnlyError(e) ? e : new OnceOnlyError('internal_error', 'internal error');
  return { type: xroadType(err.type, side), message: err.message, detail: randomUUID(), onceonly: { type: err.type, detail: err.detail } };
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The media type of an error body for the client's Accept header, as X-Road's client proxy decides
 * it (PR-REST §4.6 "SHOULD respect the Accept header"): the first of `text/xml`, `application/xml`
 * or `text/*` listed wins (`text/*` meaning text/xml), anything else or nothing means JSON.
 */
export function errorMediaType(accept: string | undefined): 'application/json' | 'application/xml' | 'text/xml' {
  for (const part of (accept ?? '').split(',')) {
    const t = part.split(';')[0]!.trim().toLowerCase();
    if (t === 'text/xml' || t === 'text/*') return 'text/xml';
    if (t === 'application/xml') return 'application/xml';
  }
  return 'application/json';
}

function xmlText(s: string): string {
  // XML 1.0 §2.2: characters outside Char cannot appear even escaped; they become U+FFFD.
  return s.replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '\uFFFD').replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The body and headers of an X-Road error answer, in the client's preferred format. */
export function renderError(x: XRoadError, accept: string | undefined): { status: number; headers: Record<string, string>; body: Buffer } {
  const media = errorMediaType(accept);
  const headers: Record<string, string> = { 'x-road-error': x.type };
  let body: string;
  if (media === 'application/json') {
    headers['content-type'] = JSON_TYPE;
    body = JSON.stringify({ type: x.type, message: x.message, detail: x.detail, onceonly: x.onceonly });
  } else {
    headers['content-type'] = `${media}; charset=utf-8`;
    body = `<?xml version="1.0" encoding="UTF-8"?><error><type>${xmlText(x.type)}</type><message>${xmlText(x.message)}</message><detail>${xmlText(x.detail)}</detail><onceonly><type>${xmlText(x.onceonly.type)}</type><detail>${xmlText(JSON.stringify(x.onceonly.detail))}</detail></onceonly></error>`;
  }
  return { status: xroadStatus(x.type), headers, body: Buffer.from(body) };
}

/** Reads an X-Road error body produced by a provider gateway (signed JSON); undefined if it is not one. */
export function parseXRoadError(body: Buffer): XRoadError | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const oo = o['onceonly'] as { type?: unknown; detail?: unknown } | undefined;
  if (typeof o['type'] !== 'string' || typeof o['message'] !== 'string' || typeof o['detail'] !== 'string') return undefined;
  if (typeof oo !== 'object' || oo === null || typeof oo.type !== 'string' || typeof oo.detail !== 'object' || oo.detail === null) return undefined;
  return { type: o['type'], message: o['message'], detail: o['detail'], onceonly: { type: oo.type as ErrorType, detail: oo.detail as ErrorDetail } };
}

/**
 * The request hash (PR-REST §4.3): base64 of SHA-512 over the request's header part, or, when the
 * request has a body, of SHA-512(SHA-512(header part) ‖ SHA-512(body)). onceonly's header part is
 * the signed canonical request with its signature (gateway/protocol).
 */
export function requestHashOf(headerPart: string, body: Uint8Array): string {
  const h = createHash('sha512').update(headerPart).digest();
  if (body.length === 0) return h.toString('base64');
  return createHash('sha512').update(h).update(createHash('sha512').update(body).digest()).digest('base64');
}
