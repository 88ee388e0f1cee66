/**
 * @module core/batchsign
 * Batch signatures, as X-Road's security servers make them: messages signed together share one
 * Ed25519 signature over the root of a Merkle tree of their hashes (RFC 9162 §2.1 hashing), and
 * each message carries its inclusion proof. A verifier checks the proof, then the root's signature
 * once and remembers it, so signing and verifying cost one operation per batch instead of one per
 * message. The proof binds each message to the root exactly as a signature over the message would.
 *
 * Wire form of a batch (`oo-signature-batch`): `INDEX/SIZE;ROOT;P1,P2,…` with hashes base64url.
 * The signature is over `oo1-batch`, the signer's id, the root and the batch size, one per line.
 */
import { GroupCommit } from './batch.ts';
import type { KeyObject } from 'node:crypto';
import { signEd25519, verifyEd25519 } from './crypto.ts';
import { leafHash, proofLength, rootAndProofs, rootFromInclusionProof } from './merkle.ts';

/** A message's signature: the batch root's signature and the message's place in the batch. */
export interface BatchSignature {
  signature: string;
  batch: string;
}

/** Most messages one signature covers (the proofs grow with log2 of it). */
const MAX_BATCH = 256;

// The batch size is signed with the root: RFC 9162 paths can fit a tree of another size with the
// same root (a node of the bigger tree), and a message must have exactly one accepted position.
function signedText(signerId: string, root: string, size: number): string {
  return `oo1-batch\n${signerId}\n${root}\n${size}`;
}

/** Collects messages signed in the same turn of the event loop and signs them together. */
export class BatchSigner {
  private readonly key: KeyObject;
  private readonly signerId: string;
  private readonly batcher: GroupCommit<string, BatchSignature>;

  constructor(key: KeyObject, signerId: string) {
    this.key = key;
    this.signerId = signerId;
    this.batcher = new GroupCommit((messages) => this.signBatch(messages), { max: MAX_BATCH });
  }

  /** Signs `message`; resolves once its batch is signed (the messages of one event-loop turn together). */
  sign(message: string): Promise<BatchSignature> {
    return this.batcher.submit(message);
  }

  private signBatch(messages: string[]): BatchSignature[] {
    const leaves = messages.map((m) => leafHash(m));
    const tree = rootAndProofs(leaves);
    const root = tree.root.toString('base64url');
    const signature = signEd25519(this.key, signedText(this.signerId, root, leaves.length));
    return leaves.map((_, k) => ({ signature, batch: `${k}/${leaves.length};${root};${tree.proofs[k]!.map((h) => h.toString('base64url')).join(',')}` }));
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

/** True when `text` is the one base64url encoding of the bytes it decodes to. */
function canonical(text: string): boolean {
  return Buffer.from(text, 'base64url').toString('base64url') === text;
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
    // Exactly one encoding per signed message: no leading zeros, canonical base64url (no padding,
    // no stray bits in the last character), and a proof of exactly the length the position needs,
    // so that the request hash, which covers these strings, is unique for a signed request.
    const m = /^(0|[1-9]\d{0,2})\/([1-9]\d{0,2});([A-Za-z0-9_-]{43});((?:[A-Za-z0-9_-]{43})(?:,[A-Za-z0-9_-]{43}){0,15})?$/.exec(s.batch);
    if (!m || !/^[A-Za-z0-9_-]{86}$/.test(s.signature)) return false;
    const index = Number(m[1]);
    const size = Number(m[2]);
    const root = m[3]!;
    if (size > MAX_BATCH || index >= size) return false;
    const proof = m[4] ? m[4].split(',').map((h) => Buffer.from(h, 'base64url')) : [];
    if (proof.length !== proofLength(index, size)) return false;
    if (!canonical(root) || !canonical(s.signature) || (m[4] ?? '').split(',').some((h) => h !== '' && !canonical(h))) return false;
    const computed = rootFromInclusionProof(index, size, leafHash(message), proof);
    if (!computed || computed.toString('base64url') !== root) return false;
    const cacheKey = `${keyId(key)}\n${signerId}\n${root}\n${size}\n${s.signature}`;
    if (this.verified.has(cacheKey)) return true;
    if (!verifyEd25519(key, signedText(signerId, root, size), s.signature)) return false;
    if (this.verified.size >= this.capacity) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(cacheKey, true);
    return true;
  }
}
