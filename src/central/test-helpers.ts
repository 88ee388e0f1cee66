/**
 * @module central/test-helpers
 * Synthetic inputs shared by the central's tests.
 */
import { generateKeyPairSync } from 'node:crypto';
import { generateSigningKey, publicJwk } from '../core/crypto.ts';
import type { GatewayInput } from './central.ts';

/** A gateway's public keys, freshly made: an ECDSA P-256 TLS key (SPKI PEM) and an Ed25519 JWK. */
export function gatewayKeys(): Pick<GatewayInput, 'tlsPublicKey' | 'signingKey'> {
  return {
    tlsPublicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    signingKey: publicJwk(generateSigningKey().publicKey),
  };
}
