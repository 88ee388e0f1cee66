/**
 * @module gateway/r1
 * Parses a request from an information system, once and up front, into a typed request: X-Road's
 * REST protocol `METHOD /r1/{serviceId}[/path][?query]` with its headers (PR-REST 1.0.4 §4.1-§4.3),
 * or the `GET /listClients` metaservice (PR-MREST §2, PR-META §2). Everything after this module works
 * on the typed request, never on the raw one again.
 *
 * The raw target is checked before anything decodes it: a decoded path can hide `..` or a slash
 * (`%2F`) that would change which service is called. The identifier parts of the service id and of
 * `X-Road-Client` are then percent-decoded exactly once (PR-REST §4.2) and validated (§4.8, core/ids).
 * In the service's own path an encoded slash, backslash, dot or control character is refused: the
 * service behind the gateway would decode it into a path the exchange never checked.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { checkParts, formatClientId, formatServiceId, formatSubsystemId, type ClientId, type ServiceId } from '../core/ids.ts';
import { GATEWAY_SET_HEADERS, SKIPPED_HEADERS } from './xroad.ts';

/** Longest request target accepted (path and query); PR-REST §4.2 lets a security server limit it. */
export const MAX_TARGET = 4096;
/** Longest X-Road-Id kept (X-Road stores it in a VARCHAR(255) column); a longer one is refused, never cut. */
export const MAX_XROAD_ID = 255;

/** A service request. */
export interface R1ServiceRequest {
  kind: 'service';
  method: string;
  service: ServiceId;
  /** `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`, decoded and checked. */
  serviceId: string;
  /** `INSTANCE/CLASS/MEMBER/SUBSYSTEM` of the provider. */
  providerId: string;
  /** The service's own path after the service code, raw: `''` or starting with `/`. */
  servicePath: string;
  /** The raw query without `?`, possibly empty (PR-REST §4.5: passed unmodified). */
  query: string;
  client: ClientId;
  /** `X-Road-Client`, decoded and checked: `INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`. */
  clientId: string;
  /** `X-Road-Id` as given, or undefined (the gateway makes one). */
  xroadId: string | undefined;
  userId: string;
  issue: string;
  /** `X-Road-Represented-Party` (`[CLASS/]CODE`), or ''. */
  representedParty: string;
  /** `X-Road-Security-Server` (`INSTANCE/CLASS/MEMBER/SERVERCODE`): the one gateway to send to, or ''. */
  securityServer: string;
  /** `X-OnceOnly-Purpose` and `X-OnceOnly-Agreement`: which agreement the request relies on. */
  purpose: string;
  agreement: string;
  accept: string | undefined;
  /** `Authorization`, for information-system authentication by bearer credential (gateway/isauth). */
  authorization: string | undefined;
  /** Headers passed on to the service, in the order and case received (PR-REST §4.3). */
  headers: [string, string][];
}

/** The `listClients` metaservice. */
export interface R1ListClients {
  kind: 'listClients';
  /** `?xRoadInstance=`; undefined for the gateway's own instance. */
  instance: string | undefined;
  accept: string | undefined;
}

export type R1Request = R1ServiceRequest | R1ListClients;

function bad(message: string, field: string, expected: string, type: 'invalid_request' | 'invalid_service_path' | 'invalid_identifier' = 'invalid_request'): OnceOnlyError {
  return new OnceOnlyError(type, message, { field, expected });
}

/** True if `s` contains a C0 control character or DEL (header splitting, NUL truncation). */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

// RFC 3986 pchar without `%` (escapes are checked apart): what may appear raw in a path segment.
const RAW_SEGMENT = /^[A-Za-z0-9._~!$&'()*+,;=:@-]*$/;
const ESCAPE = /%[0-9A-Fa-f]{2}/g;
// In the service path: encoded `/`, `\`, `.`, NUL and other controls.
const FORBIDDEN_ESCAPE = /%(2f|5c|2e|0[0-9a-f]|1[0-9a-f]|7f)/i;

function checkRawSegment(s: string, field: string): void {
  if (!RAW_SEGMENT.test(s.replace(ESCAPE, ''))) throw bad('the path contains characters that must be percent-encoded', field, 'RFC 3986 path characters, others percent-encoded', 'invalid_service_path');
  if (/%(?![0-9A-Fa-f]{2})/.test(s)) throw bad('the path contains a malformed percent-encoding', field, 'valid %XX escapes', 'invalid_service_path');
}

/** Percent-decodes one identifier part, once (PR-REST §4.2). */
function decodePart(raw: string, field: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw bad('an identifier part is not valid percent-encoded UTF-8', field, 'percent-encoded UTF-8', 'invalid_identifier');
  }
}

/** Decodes and checks an identifier given as `/`-separated, separately percent-encoded parts. */
function decodeId(raw: string[], field: string, shape: string): string[] {
  const parts = raw.map((p) => decodePart(p, field));
  checkParts(parts, field, shape);
  return parts;
}

/** The value of a header that is given once; the last one when it is repeated (PR-REST §4.3 for X-Road-Client). */
function last(headers: Map<string, string[]>, name: string): string | undefined {
  const v = headers.get(name);
  return v === undefined ? undefined : v[v.length - 1];
}

function printable(headers: Map<string, string[]>, name: string, max: number): string {
  const v = last(headers, name);
  if (v === undefined) return '';
  if (v.length > max || hasControl(v)) throw bad(`the ${name} header is too long or contains control characters`, `headers.${name}`, `at most ${max} printable characters`);
  return v;
}

/** A service target: which service, and the service's own path (raw). */
export interface ServiceTarget {
  service: ServiceId;
  servicePath: string;
}

/**
 * Parses the path of `PREFIX{serviceId}[/path]` (`/r1/` from information systems, `/oo1/` between
 * gateways): raw characters checked, the five identifier parts decoded once and validated, the
 * service's own path checked but left raw.
 */
export function parseTargetPath(path: string, prefix: '/r1/' | '/oo1/'): ServiceTarget {
  if (!path.startsWith(prefix)) throw bad(`the path must start with ${prefix}`, 'path', `${prefix}INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path]`, 'invalid_service_path');
  const segments = path.slice(prefix.length).split('/');
  for (const s of segments) checkRawSegment(s, 'path');
  // X-Road reads the service id positionally (its RestRequest): the subsystem is required.
  if (segments.length < 5 || segments.slice(0, 5).some((s) => s === '')) {
    throw bad('the path must name a service', 'path', `${prefix}INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path]`, 'invalid_identifier');
  }
  const [instance, memberClass, memberCode, subsystemCode, serviceCode] = decodeId(segments.slice(0, 5), 'path.service', 'INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE') as [string, string, string, string, string];
  const rest = segments.slice(5);
  for (const s of rest) {
    if (s === '.' || s === '..') throw bad('the path contains a dot segment', 'path', 'a path without "." or ".." segments', 'invalid_service_path');
  }
  if (FORBIDDEN_ESCAPE.test(rest.join('/'))) throw bad('the path contains an encoded slash, backslash, dot or control character', 'path', 'a path without %2F, %5C, %2E or control characters', 'invalid_service_path');
  if (rest.some((s, i) => s === '' && i < rest.length - 1)) throw bad('the path contains an empty segment', 'path', 'no "//" in the path', 'invalid_service_path');
  return { service: { instance, memberClass, memberCode, subsystemCode, serviceCode }, servicePath: rest.length ? `/${rest.join('/')}` : '' };
}

/** Splits a raw target into path and query, checking its length and the query's characters. */
export function splitTarget(rawUrl: string): { path: string; query: string } {
  if (rawUrl.length > MAX_TARGET) throw bad('the request target is too long', 'path', `at most ${MAX_TARGET} characters`, 'invalid_service_path');
  const q = rawUrl.indexOf('?');
  const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const query = q >= 0 ? rawUrl.slice(q + 1) : '';
  if (hasControl(query) || query.includes('#')) throw bad('the query contains control characters', 'query', 'a URL-encoded query', 'invalid_service_path');
  return { path, query };
}

/** Parses a request from an information system. `rawHeaders` as Node gives them (name, value, …). */
export function parseR1(method: string, rawUrl: string, rawHeaders: readonly string[]): R1Request {
  const headers = new Map<string, string[]>();
  const ordered: [string, string][] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    const list = headers.get(lower);
    if (list) list.push(value);
    else headers.set(lower, [value]);
    ordered.push([name, value]);
  }
  const accept = last(headers, 'accept');
  const { path, query } = splitTarget(rawUrl);
  if (path === '/listClients') {
    if (method !== 'GET') throw bad('listClients is read with GET', 'method', 'GET');
    const params = new URLSearchParams(query);
    const keys = [...params.keys()];
    if (keys.some((k) => k !== 'xRoadInstance') || params.getAll('xRoadInstance').length > 1) throw bad('listClients takes only xRoadInstance', 'query', '?xRoadInstance=INSTANCE or nothing');
    const instance = params.get('xRoadInstance') ?? undefined;
    if (instance !== undefined) checkParts([instance], 'query.xRoadInstance', 'INSTANCE');
    return { kind: 'listClients', instance, accept };
  }
  const { service, servicePath } = parseTargetPath(path, '/r1/');

  const rawClient = last(headers, 'x-road-client');
  if (rawClient === undefined || rawClient === '') throw bad('the X-Road-Client header is required', 'headers.x-road-client', 'INSTANCE/CLASS/MEMBER[/SUBSYSTEM]');
  if (hasControl(rawClient)) throw bad('the X-Road-Client header contains control characters', 'headers.x-road-client', 'INSTANCE/CLASS/MEMBER[/SUBSYSTEM]');
  const clientRaw = rawClient.split('/');
  if (clientRaw.length !== 3 && clientRaw.length !== 4) throw bad('X-Road-Client must have 3 or 4 parts', 'headers.x-road-client', 'INSTANCE/CLASS/MEMBER[/SUBSYSTEM]', 'invalid_identifier');
  const cp = decodeId(clientRaw, 'headers.x-road-client', 'INSTANCE/CLASS/MEMBER[/SUBSYSTEM]');
  const client: ClientId = cp.length === 4 ? { instance: cp[0]!, memberClass: cp[1]!, memberCode: cp[2]!, subsystemCode: cp[3]! } : { instance: cp[0]!, memberClass: cp[1]!, memberCode: cp[2]! };

  const xroadIdRaw = last(headers, 'x-road-id');
  if (xroadIdRaw !== undefined && (xroadIdRaw === '' || xroadIdRaw.length > MAX_XROAD_ID || hasControl(xroadIdRaw))) {
    throw bad('X-Road-Id must be 1 to 255 printable characters', 'headers.x-road-id', `a message id of at most ${MAX_XROAD_ID} printable characters, e.g. a UUID`);
  }
  const representedParty = printable(headers, 'x-road-represented-party', 600);
  if (representedParty !== '') {
    const parts = representedParty.split('/');
    if (parts.length > 2) throw bad('X-Road-Represented-Party is [CLASS/]CODE', 'headers.x-road-represented-party', '[MEMBERCLASS/]MEMBERCODE', 'invalid_identifier');
    decodeId(parts, 'headers.x-road-represented-party', '[MEMBERCLASS/]MEMBERCODE');
  }
  const securityServerRaw = printable(headers, 'x-road-security-server', 1100);
  let securityServer = '';
  if (securityServerRaw !== '') {
    const parts = securityServerRaw.split('/');
    if (parts.length !== 4) throw bad('X-Road-Security-Server must have 4 parts', 'headers.x-road-security-server', 'INSTANCE/CLASS/MEMBER/SERVERCODE', 'invalid_identifier');
    securityServer = decodeId(parts, 'headers.x-road-security-server', 'INSTANCE/CLASS/MEMBER/SERVERCODE').join('/');
  }
  const forwarded = ordered.filter(([n]) => {
    const l = n.toLowerCase();
    return !SKIPPED_HEADERS.has(l) && !GATEWAY_SET_HEADERS.has(l);
  });
  if (forwarded.length > 100) throw bad('too many headers', 'headers', 'at most 100 headers');
  return {
    kind: 'service',
    method,
    service,
    serviceId: formatServiceId(service),
    providerId: formatSubsystemId(service),
    servicePath,
    query,
    client,
    clientId: formatClientId(client),
    xroadId: xroadIdRaw,
    userId: printable(headers, 'x-road-userid', 255),
    issue: printable(headers, 'x-road-issue', 255),
    representedParty,
    securityServer,
    purpose: printable(headers, 'x-onceonly-purpose', 128),
    agreement: printable(headers, 'x-onceonly-agreement', 128),
    accept,
    authorization: last(headers, 'authorization'),
    headers: forwarded,
  };
}
