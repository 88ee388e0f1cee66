/**
 * @module gateway/protocol
 * onceonly's gateway-to-gateway protocol, version 1 ("oo1"). Documented in docs/exchange.md.
 *
 * The client gateway re-issues the information system's request to the provider gateway over
 * mutual TLS as `METHOD /oo1/{serviceId}[/path][?query]`, adding `oo-*` headers and an Ed25519
 * signature over a canonical string of everything that decides what the request means (in the
 * spirit of RFC 9421 HTTP Message Signatures, whose full generality we do not need), the headers
 * passed on to the service included. The provider answers with a signature over the hash of that
 * request, its status, the headers passed back and the digest of its body, which binds each
 * response to exactly one request. Signatures are batch signatures (core/batchsign): messages
 * signed in the same instant share one Ed25519 signature over a Merkle root, each with its
 * inclusion proof, as X-Road does.
 */
import type { KeyObject } from 'node:crypto';
import { sha256 } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import type { BatchSignature, BatchSigner, BatchVerifier } from '../core/batchsign.ts';
import { requestHashOf } from './xroad.ts';

/** Header names of the protocol (lower case, as Node presents them). */
export const H = {
  client: 'oo-client',
  id: 'oo-id',
  requestId: 'oo-request-id',
  purpose: 'oo-purpose',
  agreement: 'oo-agreement',
  timestamp: 'oo-timestamp',
  sender: 'oo-sender',
  audience: 'oo-audience',
  headers: 'oo-headers',
  bodyDigest: 'oo-body-sha256',
  signature: 'oo-signature',
  signatureBatch: 'oo-signature-batch',
  requestHash: 'oo-request-hash',
  responder: 'oo-responder',
  errorType: 'oo-error',
} as const;

/** The fields of a request that its signature covers. */
export interface SignedRequestFields {
  method: string;
  /** Path and query exactly as sent, starting `/oo1/`. */
  target: string;
  /** X-Road-Client: `INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`. */
  client: string;
  /** X-Road-Id, as the information system gave it or as the client gateway made it. */
  id: string;
  /** X-Road-Request-Id: a fresh UUID per request, made by the client gateway (the replay guard's key). */
  requestId: string;
  purpose: string;
  agreement: string;
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp: string;
  /** Client gateway id. */
  sender: string;
  /** Provider gateway id: a message addressed to another gateway is refused. */
  audience: string;
  /** The headers passed on to the service, packed ({@link packHeaders}). */
  headers: string;
  bodyDigest: string;
}

const REQUEST_ORDER: (keyof SignedRequestFields)[] = ['method', 'target', 'client', 'id', 'requestId', 'purpose', 'agreement', 'timestamp', 'sender', 'audience', 'headers', 'bodyDigest'];

/**
 * The canonical request string: a fixed label and the fields in fixed order, one per line. No
 * field may contain a line break (the gateways refuse such values before signing or checking), so
 * the encoding is unambiguous.
 */
export function canonicalRequest(f: SignedRequestFields): string {
  return ['oo1-request', ...REQUEST_ORDER.map((k) => f[k])].join('\n');
}

/** Signs a request; returns the signature and the request hash both sides log. */
export async function signRequest(signer: BatchSigner, f: SignedRequestFields, body: Uint8Array): Promise<BatchSignature & { requestHash: string }> {
  const canonical = canonicalRequest(f);
  const sig = await signer.sign(canonical);
  return { ...sig, requestHash: requestHash(canonical, sig, body) };
}

/**
 * The request hash, what X-Road-Request-Hash carries (PR-REST §4.3: base64 SHA-512 of the header
 * part, then with the SHA-512 of the body when there is one); the header part is the canonical
 * request with its signature and batch proof.
 */
export function requestHash(canonical: string, sig: BatchSignature, body: Uint8Array): string {
  return requestHashOf(`${canonical}\n${sig.signature}\n${sig.batch}`, body);
}

/** Verifies a request signature by gateway `signerId`; true when valid. */
export function verifyRequest(verifier: BatchVerifier, key: KeyObject, signerId: string, f: SignedRequestFields, sig: BatchSignature): boolean {
  return verifier.verify(key, signerId, canonicalRequest(f), sig);
}

/** The fields of a response that its signature covers. */
export interface SignedResponseFields {
  requestHash: string;
  status: string;
  timestamp: string;
  /** Provider gateway id. */
  responder: string;
  /** The headers passed back to the information system, packed (content type included). */
  headers: string;
  bodyDigest: string;
  /** The refusal's onceonly error type (`oo-error`), or empty: signed so the logged type is provable. */
  errorType: string;
}

const RESPONSE_ORDER: (keyof SignedResponseFields)[] = ['requestHash', 'status', 'timestamp', 'responder', 'headers', 'bodyDigest', 'errorType'];

/** Canonical response string, as for requests. */
export function canonicalResponse(f: SignedResponseFields): string {
  return ['oo1-response', ...RESPONSE_ORDER.map((k) => f[k])].join('\n');
}

export function signResponse(signer: BatchSigner, f: SignedResponseFields): Promise<BatchSignature> {
  return signer.sign(canonicalResponse(f));
}

export function verifyResponse(verifier: BatchVerifier, key: KeyObject, f: SignedResponseFields, sig: BatchSignature): boolean {
  return verifier.verify(key, f.responder, canonicalResponse(f), sig);
}

/** Digest of a body (empty body included), base64url SHA-256. */
export function bodyDigest(body: Uint8Array | string): string {
  return sha256(body);
}

/** Most headers one message may pass on, and their largest packed size. */
export const MAX_PASSED_HEADERS = 100;
export const MAX_PACKED_HEADERS = 48 * 1024;

/**
 * Headers passed from one end to the other, packed into one protocol header: base64url of the JSON
 * array of `[name, value]` pairs, in order. Packed, they cannot be confused with the transport's
 * own headers, and the packed text is what the signature covers.
 */
export function packHeaders(headers: readonly (readonly [string, string])[]): string {
  return Buffer.from(JSON.stringify(headers)).toString('base64url');
}

/** Unpacks {@link packHeaders}; a malformed value is a typed refusal. */
export function unpackHeaders(packed: string, field: string): [string, string][] {
  const fail = (): OnceOnlyError => new OnceOnlyError('invalid_request', 'the passed headers are malformed', { field, expected: 'base64url of a JSON array of [name, value] pairs' });
  if (packed.length > MAX_PACKED_HEADERS || !/^[A-Za-z0-9_-]*$/.test(packed)) throw fail();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(packed, 'base64url').toString('utf8'));
  } catch {
    throw fail();
  }
  // RFC 9110 §5.1 field names are tokens; values must not carry line breaks or NUL (§5.5).
  if (!Array.isArray(v) || v.length > MAX_PASSED_HEADERS) throw fail();
  for (const p of v) {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(p[0]) || /[\r\n\0]/.test(p[1])) throw fail();
  }
  return v as [string, string][];
}
