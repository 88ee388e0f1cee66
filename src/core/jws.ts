/**
 * @module core/jws
 * The one way onceonly signs and checks its JSON Web Signatures (the global configuration, consent
 * receipts, preview links): JWS Compact Serialization (RFC 7515 §7.1) with Ed25519 (`alg: EdDSA`,
 * RFC 8037 §3.1), on jose.
 *
 * Checking pins the algorithm (never taken from the header's say-so, RFC 8725 §3.1: no `none`, no
 * HMAC), requires the expected `typ` (RFC 7515 §4.1.9; RFC 8725 §3.11: so that no other signed
 * object of the same key can be replayed as this one), and refuses `crit` and `b64` (RFC 7515
 * §4.1.11, RFC 7797: extensions we do not implement). Failures are typed results naming the reason,
 * not exceptions, so each caller maps them to its own error type.
 */
import { CompactSign, compactVerify, calculateJwkThumbprint, decodeProtectedHeader, errors } from 'jose';
import type { KeyObject } from 'node:crypto';
import { importPublicJwk, publicJwk, type Ed25519PublicJwk } from './crypto.ts';

/** The outcome of {@link verifyJws}. */
export type JwsVerdict = { ok: true; payload: Uint8Array; header: Record<string, unknown> } | { ok: false; reason: string };

// The signature part may be empty here so that `alg: none` is refused by name below.
const B64URL_PARTS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Signs `payload` (bytes or text) as a compact JWS with `alg: EdDSA`, `typ`, and optionally `kid`. */
export function signJws(payload: Uint8Array | string, key: KeyObject, typ: string, kid?: string): Promise<string> {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  return new CompactSign(bytes).setProtectedHeader({ alg: 'EdDSA', typ, ...(kid !== undefined ? { kid } : {}) }).sign(key);
}

/** Checks a compact JWS made by {@link signJws} with `key` and `typ`. Never throws. */
export async function verifyJws(jws: unknown, key: KeyObject | Ed25519PublicJwk, typ: string): Promise<JwsVerdict> {
  // base64url without padding only (RFC 7515 §2), checked before jose decodes anything.
  if (typeof jws !== 'string' || !B64URL_PARTS.test(jws.trim())) return { ok: false, reason: 'not a JWS compact serialization (three base64url parts)' };
  let publicKey: KeyObject;
  try {
    publicKey = 'kty' in key ? importPublicJwk(key) : key;
  } catch {
    return { ok: false, reason: 'the key is not an Ed25519 public key' };
  }
  // The header is judged before the signature, so that a token of another type or algorithm is
  // refused as such (and no key is spent on it).
  let claimed: Record<string, unknown>;
  try {
    claimed = decodeProtectedHeader(jws.trim());
  } catch {
    return { ok: false, reason: 'malformed: the protected header is not a JSON object' };
  }
  if (claimed['alg'] !== 'EdDSA') return { ok: false, reason: 'alg must be EdDSA' };
  if (claimed['typ'] !== typ) return { ok: false, reason: `typ must be ${typ}` };
  if ('crit' in claimed || 'b64' in claimed) return { ok: false, reason: 'unsupported header parameters (crit, b64)' };
  try {
    const r = await compactVerify(jws.trim(), publicKey, { algorithms: ['EdDSA'] });
    return { ok: true, payload: r.payload, header: r.protectedHeader };
  } catch (e) {
    if (e instanceof errors.JOSEAlgNotAllowed) return { ok: false, reason: 'alg must be EdDSA' };
    if (e instanceof errors.JWSSignatureVerificationFailed) return { ok: false, reason: 'the signature does not verify with this key' };
    if (e instanceof errors.JOSENotSupported) return { ok: false, reason: 'unsupported header parameters (crit, b64)' };
    return { ok: false, reason: e instanceof errors.JOSEError ? `malformed: ${e.message}` : 'malformed' };
  }
}

/** Decodes a JWS payload as JSON; undefined when it is not JSON. */
export function jsonPayload(payload: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload)) as unknown;
  } catch {
    return undefined;
  }
}

/** The RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 public key. */
export function thumbprint(key: KeyObject | Ed25519PublicJwk): Promise<string> {
  const jwk = 'kty' in key ? key : publicJwk(key);
  return calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }, 'sha256');
}
