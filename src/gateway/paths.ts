/**
 * @module gateway/paths
 * Parsing of `/r1/…` (X-Road message protocol for REST, "Request URL") and `/oo1/…` targets from
 * the raw request line. It works on the raw, still-encoded path on purpose: a decoded path can
 * hide `..` or a slash (`%2F`) that would change which service is called, so any encoded
 * slash, backslash, dot, NUL or control character is refused before anything else looks at it.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { parseServiceId, parseSubsystemId, type ServiceId, type SubsystemId } from '../core/ids.ts';

/** Longest request target accepted (path and query). */
export const MAX_TARGET = 4096;

/** A parsed target: which service, the rest of the path, and the raw query. */
export interface ParsedTarget {
  service: ServiceId;
  /** `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`. */
  serviceId: string;
  provider: SubsystemId;
  /** `INSTANCE/CLASS/MEMBER/SUBSYSTEM`. */
  providerId: string;
  /** Remaining path after the service code, starting with `/` or empty. */
  path: string;
  /** Raw query string without `?`, possibly empty. */
  query: string;
}

/** True if `s` contains a C0 control character or DEL (header splitting, NUL truncation). */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

const SAFE_SEGMENT = /^[A-Za-z0-9._~!$&'()*+,;=:@-]*$/;
const FORBIDDEN_ESCAPE = /%(2f|5c|2e|00|0[0-9a-f]|1[0-9a-f]|7f)/i;

function invalidPath(message: string, expected: string): OnceOnlyError {
  return new OnceOnlyError('invalid_service_path', message, { field: 'path', expected });
}

/** Splits `rawUrl` into path and query, applying the checks every prefix shares. */
function splitRaw(rawUrl: string, prefix: string): { segments: string[]; query: string } {
  if (rawUrl.length > MAX_TARGET) throw invalidPath('the request target is too long', `at most ${MAX_TARGET} characters`);
  const q = rawUrl.indexOf('?');
  const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const query = q >= 0 ? rawUrl.slice(q + 1) : '';
  if (!path.startsWith(prefix)) throw invalidPath(`the path must start with ${prefix}`, `${prefix}INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path]`);
  if (FORBIDDEN_ESCAPE.test(path)) throw invalidPath('the path contains an encoded slash, backslash, dot or control character', 'a path without %2F, %5C, %2E or control characters');
  if (hasControl(query) || query.includes('#')) throw invalidPath('the query contains control characters', 'a URL-encoded query');
  const segments = path.slice(prefix.length).split('/');
  for (const s of segments) {
    if (s === '.' || s === '..') throw invalidPath('the path contains a dot segment', 'a path without "." or ".." segments');
    if (!SAFE_SEGMENT.test(s.replace(/%[0-9A-Fa-f]{2}/g, ''))) throw invalidPath('the path contains characters that must be percent-encoded', 'RFC 3986 path characters');
    if (/%(?![0-9A-Fa-f]{2})/.test(s)) throw invalidPath('the path contains a malformed percent-encoding', 'valid %XX escapes');
  }
  return { segments, query };
}

/** Parses a service target `PREFIX INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path][?query]`. */
export function parseServiceTarget(rawUrl: string, prefix: '/r1/' | '/oo1/'): ParsedTarget {
  const { segments, query } = splitRaw(rawUrl, prefix);
  if (segments.length < 5) throw new OnceOnlyError('invalid_identifier', 'the path must name a service', { field: 'path', expected: `${prefix}INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path]` });
  const serviceId = segments.slice(0, 5).join('/');
  const service = parseServiceId(serviceId, 'path.service');
  const rest = segments.slice(5);
  if (rest.some((s, i) => s === '' && i < rest.length - 1)) throw invalidPath('the path contains an empty segment', 'no "//" in the path');
  const providerId = segments.slice(0, 4).join('/');
  return { service, serviceId, provider: parseSubsystemId(providerId, 'path.service'), providerId, path: rest.length ? `/${rest.join('/')}` : '', query };
}

/** Parses a client header (`X-Road-Client`), naming the header when it is missing or malformed. */
export function parseClientHeader(value: string | string[] | undefined, header: string): SubsystemId & { id: string } {
  if (value === undefined || value === '') {
    throw new OnceOnlyError('invalid_request', `the ${header} header is required`, { field: `headers.${header}`, expected: 'INSTANCE/CLASS/MEMBER/SUBSYSTEM' });
  }
  if (Array.isArray(value)) throw new OnceOnlyError('invalid_request', `the ${header} header must appear once`, { field: `headers.${header}`, expected: 'one value' });
  const id = parseSubsystemId(value, `headers.${header}`);
  return { ...id, id: value };
}

/** Reads an optional single-valued header, refusing repeats, line breaks and overlong values. */
export function optionalHeader(value: string | string[] | undefined, header: string, max = 256): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) throw new OnceOnlyError('invalid_request', `the ${header} header must appear once`, { field: `headers.${header}`, expected: 'one value' });
  if (value.length > max || hasControl(value)) {
    throw new OnceOnlyError('invalid_request', `the ${header} header is too long or contains control characters`, { field: `headers.${header}`, expected: `at most ${max} printable characters` });
  }
  return value;
}
