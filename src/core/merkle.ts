/**
 * @module core/merkle
 * Merkle tree hashing, inclusion proofs and their verification exactly as RFC 9162 (Certificate
 * Transparency 2.0) §2.1 defines them: leaf hash SHA-256(0x00 || entry), node hash
 * SHA-256(0x01 || left || right), and the tree of n leaves split at the largest power of two
 * smaller than n. Written here rather than taken from a package because it is small, must match
 * the RFC bit for bit, and is checked against published test vectors.
 */
import { createHash } from 'node:crypto';

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** RFC 9162 §2.1.1: the hash of a leaf entry. */
export function leafHash(entry: Uint8Array | string): Buffer {
  return createHash('sha256').update(LEAF).update(entry).digest();
}

/** RFC 9162 §2.1.1: the hash of an interior node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE).update(left).update(right).digest();
}

/** The largest power of two strictly smaller than n (n >= 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** RFC 9162 §2.1.1 MTH over leaf hashes (the empty tree hashes to SHA-256 of nothing). */
export function rootFromLeaves(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest();
  if (leaves.length === 1) return leaves[0]!;
  const k = split(leaves.length);
  return nodeHash(rootFromLeaves(leaves.slice(0, k)), rootFromLeaves(leaves.slice(k)));
}

/** RFC 9162 §2.1.3.1: the inclusion proof (audit path) of leaf `m` in a tree of these leaves. */
export function inclusionProof(m: number, leaves: readonly Buffer[]): Buffer[] {
  const n = leaves.length;
  if (!(m >= 0 && m < n)) throw new RangeError(`leaf index ${m} outside a tree of ${n}`);
  if (n === 1) return [];
  const k = split(n);
  if (m < k) return [...inclusionProof(m, leaves.slice(0, k)), rootFromLeaves(leaves.slice(k))];
  return [...inclusionProof(m - k, leaves.slice(k)), rootFromLeaves(leaves.slice(0, k))];
}

/**
 * The root and every leaf's inclusion proof at once, in O(n log n): each subtree root is computed
 * once and appended to the proofs of the leaves on the other side of it. Same results as calling
 * {@link inclusionProof} for each leaf, which would cost O(n²).
 */
export function rootAndProofs(leaves: readonly Buffer[]): { root: Buffer; proofs: Buffer[][] } {
  if (leaves.length === 0) return { root: rootFromLeaves(leaves), proofs: [] };
  if (leaves.length === 1) return { root: leaves[0]!, proofs: [[]] };
  const k = split(leaves.length);
  const left = rootAndProofs(leaves.slice(0, k));
  const right = rootAndProofs(leaves.slice(k));
  for (const p of left.proofs) p.push(right.root);
  for (const p of right.proofs) p.push(left.root);
  return { root: nodeHash(left.root, right.root), proofs: [...left.proofs, ...right.proofs] };
}

/** The length of the inclusion proof of leaf `m` in a tree of `n` leaves (RFC 9162 §2.1.3.1). */
export function proofLength(m: number, n: number): number {
  let len = 0;
  while (n > 1) {
    const k = split(n);
    if (m < k) n = k;
    else {
      m -= k;
      n -= k;
    }
    len++;
  }
  return len;
}

/**
 * RFC 9162 §2.1.3.2: recomputes the root from a leaf hash, its index, the tree size and the
 * proof; returns undefined when the proof has the wrong length for that position.
 */
export function rootFromInclusionProof(leafIndex: number, treeSize: number, leaf: Buffer, proof: readonly Buffer[]): Buffer | undefined {
  if (!(Number.isSafeInteger(leafIndex) && Number.isSafeInteger(treeSize) && leafIndex >= 0 && leafIndex < treeSize)) return undefined;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        do {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        } while (fn % 2 === 0 && fn !== 0);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}
