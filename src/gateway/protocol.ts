/**
 * @module gateway/protocol
 * onceonly's gateway-to-gateway protocol, version 1 ("oo1"). Documented in docs/exchange.md.
 *
 * The client gateway re-issues the client system's request to the provider gateway over mutual
 * TLS as `METHOD /oo1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE/path?query`, adding `oo-*` headers
 * and an Ed25519 signature over a canonical string of everything that decides what the request
 * means (in the spirit of RFC 9421 HTTP Message Signatures, whose full generality we do not
 * need). The provider answers with a signature over the hash of that request, its status and the
 * digest of its body, which binds each response to exactly one request. Signatures are batch
 * signatures (core/batchsign): messages signed in the same instant share one Ed25519 signature
 * over a Merkle root, each with its inclusion proof, as X-Road does.
 */
import type { KeyObject } from 'node:crypto';
import { sha256 } from '../core/crypto.ts';
import type { BatchSignature, BatchSigner, BatchVerifier } from '../core/batchsign.ts';

/** Header names of the protocol (lower case, as Node presents them). */
export const H = {
  client: 'oo-client',
  id: 'oo-id',
  userId: 'oo-user-id',
  issue: 'oo-issue',
  purpose: 'oo-purpose',
  agreement: 'oo-agreement',
  timestamp: 'oo-timestamp',
  sender: 'oo-sender',
  audience: 'oo-audience',
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
  client: string;
  id: string;
  userId: string;
  issue: string;
  purpose: string;
  agreement: string;
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp: string;
  /** Client gateway id. */
  sender: string;
  /** Provider gateway id: a message addressed to another gateway is refused. */
  audience: string;
  bodyDigest: string;
}

const REQUEST_ORDER: (keyof SignedRequestFields)[] = ['method', 'target', 'client', 'id', 'userId', 'issue', 'purpose', 'agreement', 'timestamp', 'sender', 'audience', 'bodyDigest'];

/**
 * The canonical request string: a fixed label and the fields in fixed order, one per line. No
 * field may contain a line break (the gateways refuse such headers before signing or checking),
 * so the encoding is unambiguous.
 */
export function canonicalRequest(f: SignedRequestFields): string {
  return ['oo1-request', ...REQUEST_ORDER.map((k) => f[k])].join('\n');
}

/** Signs a request; returns the signature and the request hash both sides log. */
export async function signRequest(signer: BatchSigner, f: SignedRequestFields): Promise<BatchSignature & { requestHash: string }> {
  const canonical = canonicalRequest(f);
  const sig = await signer.sign(canonical);
  return { ...sig, requestHash: requestHash(canonical, sig) };
}

/** The request hash: SHA-256 over the canonical request and its signature (what X-Road-Request-Hash carries). */
export function requestHash(canonical: string, sig: BatchSignature): string {
  return sha256(`${canonical}\n${sig.signature}\n${sig.batch}`);
}

/** Verifies a request signature by gateway `signerId`; true when valid. */
export function verifyRequest(verifier: BatchVerifier, key: KeyObject, signerId: string, f: SignedRequestFields, sig: BatchSignature): boolean {
  return verifier.verify(key, signerId, canonicalRequest(f), sig);
}

/** The fields of a response that its signature covers. */
export interface SignedResponseFields {
  requestHash: string;
  status: string;
  contentType: string;
  timestamp: string;
  /** Provider gateway id. */
  responder: string;
  bodyDigest: string;
  /** The refusal's error type (`oo-error`), or empty: signed so the logged type is provable. */
  errorType: string;
}

const RESPONSE_ORDER: (keyof SignedResponseFields)[] = ['requestHash', 'status', 'contentType', 'timestamp', 'responder', 'bodyDigest', 'errorType'];

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

/**
 * Headers never passed from one hop to the next (RFC 9110 §7.6.1 connection-specific fields,
 * plus Host, User-Agent and Server as X-Road drops them).
 */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'user-agent', 'server', 'content-length']);
