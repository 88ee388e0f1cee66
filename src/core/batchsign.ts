/**
 * @module core/batchsign
 * Batch signatures, as X-Road's security servers make them: messages signed together share one
 * Ed25519 signature over the root of a Merkle tree of their hashes (RFC 9162 §2.1 hashing), and
 * each message carries its inclusion proof. A verifier checks the proof, then the root's signature
 * once and remembers it, so signing and verifying cost one operation per batch instead of one per
 * message. The proof binds each message to the root exactly as a signature over the message would.
 *
 * Wire form of a batch (`oo-signature-batch`): `INDEX/SIZE;ROOT;P1,P2,…` with hashes base64url.
 * The signature is over `oo1-batch`, the signer's id and the root, one per line.
 */
import type { KeyObject } from 'node:crypto';
import { signEd25519, verifyEd25519 } from './crypto.ts';
import { inclusionProof, leafHash, rootFromInclusionProof, rootFromLeaves } from './merkle.ts';

/** A message's signature: the batch root's signature and the message's place in the batch. */
export interface BatchSignature {
  signature: string;
  batch: string;
}

/** Most messages one signature covers (the proofs grow with log2 of it). */
const MAX_BATCH = 256;

function signedText(signerId: string, root: string): string {
  return `oo1-batch\n${signerId}\n${root}`;
}

/** Collects messages signed in the same turn of the event loop and signs them together. */
export class BatchSigner {
  private readonly key: KeyObject;
  private readonly signerId: string;
  private pending: { message: string; resolve: (s: BatchSignature) => void; reject: (e: unknown) => void }[] = [];

  constructor(key: KeyObject, signerId: string) {
    this.key = key;
    this.signerId = signerId;
  }

  /** Signs `message`; resolves once its batch is signed (within the current event-loop turn). */
  sign(message: string): Promise<BatchSignature> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => this.flush());
      this.pending.push({ message, resolve, reject });
    });
  }

  private flush(): void {
    const all = this.pending;
    this.pending = [];
    for (let i = 0; i < all.length; i += MAX_BATCH) {
      const batch = all.slice(i, i + MAX_BATCH);
      try {
        const leaves = batch.map((p) => leafHash(p.message));
        const root = rootFromLeaves(leaves).toString('base64url');
        const signature = signEd25519(this.key, signedText(this.signerId, root));
        batch.forEach((p, k) => {
          const path = inclusionProof(k, leaves).map((h) => h.toString('base64url')).join(',');
          p.resolve({ signature, batch: `${k}/${leaves.length};${root};${path}` });
        });
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
    }
  }
}

// Cached verifications are keyed by the key object too, so a new key never inherits them.
const keyIds = new WeakMap<KeyObject, number>();
let nextKeyId = 0;
function keyId(key: KeyObject): number {
  let id = keyIds.get(key);
  if (id === undefined) keyIds.set(key, (id = nextKeyId++));
  return id;
}

/** Verifies batch signatures, remembering roots whose signature has been checked. */
export class BatchVerifier {
  private readonly verified = new Map<string, true>();
  private readonly capacity: number;

  constructor(capacity = 8192) {
    this.capacity = capacity;
  }

  /** True when `message` is in the batch described by `batch` and its root is signed by `key`. */
  verify(key: KeyObject, signerId: string, message: string, s: BatchSignature): boolean {
    const m = /^(\d{1,3})\/(\d{1,3});([A-Za-z0-9_-]{43});((?:[A-Za-z0-9_-]{43})(?:,[A-Za-z0-9_-]{43}){0,15})?$/.exec(s.batch);
    if (!m) return false;
    const index = Number(m[1]);
    const size = Number(m[2]);
    const root = m[3]!;
    if (size < 1 || size > MAX_BATCH) return false;
    const proof = m[4] ? m[4].split(',').map((h) => Buffer.from(h, 'base64url')) : [];
    const computed = rootFromInclusionProof(index, size, leafHash(message), proof);
    if (!computed || computed.toString('base64url') !== root) return false;
    const cacheKey = `${keyId(key)}\n${signerId}\n${root}\n${s.signature}`;
    if (this.verified.has(cacheKey)) return true;
    if (!verifyEd25519(key, signedText(signerId, root), s.signature)) return false;
    if (this.verified.size >= this.capacity) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(cacheKey, true);
    return true;
  }
}
