/**
 * @module core/crypto
 * The few primitives the exchange is built on, all from node:crypto: SHA-256 digests and Ed25519
 * signatures (RFC 8032), with keys carried as JWK (RFC 7517, OKP keys per RFC 8037) so that they
 * can sit inside the signed global configuration as plain JSON.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, timingSafeEqual, type KeyObject } from 'node:crypto';

/** SHA-256 of `data`, base64url without padding. */
export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('base64url');
}

/** SHA-256 of `data`, lower-case hex (for certificate fingerprints and log hashes). */
export function sha256hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** An Ed25519 public key as JWK (RFC 8037 §2). */
export interface Ed25519PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
}

/** A fresh Ed25519 key pair. */
export function generateSigningKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

/** Exports a public key as JWK. */
export function publicJwk(key: KeyObject): Ed25519PublicJwk {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an Ed25519 key');
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
}

/** Imports an Ed25519 public key from JWK. */
export function importPublicJwk(jwk: Ed25519PublicJwk): KeyObject {
  return createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
}

/** PEM (PKCS#8) of a private key, for files with mode 0600. */
export function privateKeyPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** Loads a private key from PEM. */
export function loadPrivateKey(pem: string): KeyObject {
  return createPrivateKey(pem);
}

/** Ed25519 signature of `data`, base64url. */
export function signEd25519(key: KeyObject, data: string | Uint8Array): string {
  return sign(null, typeof data === 'string' ? Buffer.from(data) : data, key).toString('base64url');
}

/** Verifies an Ed25519 signature; false (never a throw) for any malformed input. */
export function verifyEd25519(key: KeyObject, data: string | Uint8Array, signature: string): boolean {
  try {
    const sig = Buffer.from(signature, 'base64url');
    if (sig.length !== 64) return false;
    return verify(null, typeof data === 'string' ? Buffer.from(data) : data, key, sig);
  } catch {
    return false;
  }
}

/** Constant-time comparison of two strings (for tokens and digests). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
