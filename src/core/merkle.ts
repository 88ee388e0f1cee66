/**
 * @module core/merkle
 * Merkle tree hashing, inclusion and consistency proofs and their verification exactly as RFC 9162
 * (Certificate Transparency 2.0) §2.1 defines them: leaf hash SHA-256(0x00 || entry), node hash
 * SHA-256(0x01 || left || right), and the tree of n leaves split at the largest power of two
 * smaller than n. Written here rather than taken from a package because it is small, must match
 * the RFC bit for bit, and is checked against published test vectors (transparency-dev/merkle's).
 *
 * The second half names proofs by *index ranges* instead of hashes ({@link inclusionRanges},
 * {@link consistencyRanges}, {@link subtreeNodes}): a log that stores the hash of every complete
 * subtree (the Trillian / CT storage layout) turns a proof into O(log n) node lookups with them,
 * without ever holding the leaves.
 */
import { createHash, hash } from 'node:crypto';

const LEAF = Buffer.from([0]);
// 0x01 || left || right, reused: one-shot hashing of one buffer costs about two thirds of a
// streaming Hash object, and proofs, appends and verification are all made of these.
const NODE_INPUT = Buffer.alloc(65, 1);

/** RFC 9162 §2.1.1: the hash of a leaf entry. */
export function leafHash(entry: Uint8Array | string): Buffer {
  return createHash('sha256').update(LEAF).update(entry).digest();
}

/** RFC 9162 §2.1.1: the hash of an interior node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== 32 || right.length !== 32) return createHash('sha256').update(NODE_INPUT.subarray(0, 1)).update(left).update(right).digest();
  NODE_INPUT.set(left, 1);
  NODE_INPUT.set(right, 33);
  return hash('sha256', NODE_INPUT, 'buffer');
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

function isHash(h: Uint8Array): boolean {
  return h.length === 32;
}

/**
 * RFC 9162 §2.1.3.2: does `proof` show that the leaf with hash `leafHash` is at `leafIndex` of the
 * tree of `treeSize` leaves whose root is `root`? False for any malformed input, never a throw.
 */
export function verifyInclusion(leafIndex: number, treeSize: number, leafHash: Buffer, proof: readonly Buffer[], root: Buffer): boolean {
  // A leaf hash is a SHA-256 output; anything else cannot have come from this hashing.
  if (!isHash(leafHash)) return false;
  const r = rootFromInclusionProof(leafIndex, treeSize, leafHash, proof);
  return r !== undefined && r.equals(root);
}

/**
 * RFC 9162 §2.1.4.1: the consistency proof PROOF(m, D[n]) between the tree of the first `m`
 * leaves and the tree of all `leaves` (0 < m <= n; empty when m = n).
 */
export function consistencyProof(m: number, leaves: readonly Buffer[]): Buffer[] {
  const n = leaves.length;
  if (!(Number.isSafeInteger(m) && m > 0 && m <= n)) throw new RangeError(`consistency proof from size ${m} to ${n}: need 0 < m <= n`);
  return consistencyRanges(m, n).map(([a, b]) => rootFromLeaves(leaves.slice(a, b)));
}

/**
 * RFC 9162 §2.1.4.2: does `proof` show that the tree of `second` leaves with root `secondHash`
 * extends the tree of `first` leaves with root `firstHash`? Equal sizes need an empty proof and
 * equal roots; a proof from the empty tree says nothing and is refused (as transparency-dev/merkle
 * does). False for any malformed input, never a throw.
 */
export function verifyConsistency(first: number, second: number, firstHash: Buffer, secondHash: Buffer, proof: readonly Buffer[]): boolean {
  if (!(Number.isSafeInteger(first) && Number.isSafeInteger(second)) || first <= 0 || first > second) return false;
  if (first === second) return proof.length === 0 && firstHash.equals(secondHash);
  // Step 1: an empty path cannot prove anything between different sizes.
  if (proof.length === 0) return false;
  // Step 2: when the old tree is a complete subtree, its root is the proof's implicit first node.
  const path = isPowerOfTwo(first) ? [firstHash, ...proof] : proof;
  // Step 3.
  let fn = first - 1;
  let sn = second - 1;
  // Step 4: skip the levels where the old tree's last leaf is a right child already complete.
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // Step 5.
  let fr = path[0]!;
  let sr = fr;
  // Step 6.
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // Step 7.
  return sn === 0 && fr.equals(firstHash) && sr.equals(secondHash);
}

function isPowerOfTwo(n: number): boolean {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}

/** A complete subtree in the storage layout: `2^level` leaves starting at leaf `index * 2^level`. */
export interface NodeId {
  level: number;
  index: number;
}

/** A half-open range `[begin, end)` of leaf indices. */
export type LeafRange = readonly [begin: number, end: number];

/**
 * The complete subtrees that cover `[begin, end)`, left to right, largest first: for a range the
 * RFC 9162 recursion produces (and for `[0, n)`), folding their hashes from the right with
 * {@link foldSubtrees} gives MTH of the range, so only complete subtrees ever need storing.
 */
export function subtreeNodes(begin: number, end: number): NodeId[] {
  const out: NodeId[] = [];
  let a = begin;
  while (a < end) {
    let size = 1;
    let level = 0;
    while (a % (size * 2) === 0 && a + size * 2 <= end) {
      size *= 2;
      level += 1;
    }
    out.push({ level, index: a / size });
    a += size;
  }
  return out;
}

/** MTH of a range from the hashes of its {@link subtreeNodes}, in the same order. */
export function foldSubtrees(hashes: readonly Buffer[]): Buffer {
  if (hashes.length === 0) return rootFromLeaves([]);
  let r = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) r = nodeHash(hashes[i]!, r);
  return r;
}

/**
 * The leaf ranges whose MTH make up the inclusion proof of leaf `m` in a tree of `n` leaves, in
 * proof order (RFC 9162 §2.1.3.1, PATH(m, D[n]), leaf end first).
 */
export function inclusionRanges(m: number, n: number): LeafRange[] {
  if (!(Number.isSafeInteger(m) && Number.isSafeInteger(n) && m >= 0 && m < n)) throw new RangeError(`leaf index ${m} outside a tree of ${n}`);
  const topDown: LeafRange[] = [];
  let lo = 0;
  let hi = n;
  while (hi - lo > 1) {
    const k = split(hi - lo);
    if (m < lo + k) {
      topDown.push([lo + k, hi]);
      hi = lo + k;
    } else {
      topDown.push([lo, lo + k]);
      lo += k;
    }
  }
  return topDown.reverse();
}

/**
 * The leaf ranges whose MTH make up the consistency proof between sizes `m` and `n`, in proof
 * order (RFC 9162 §2.1.4.1, SUBPROOF(m, D[n], true)); empty when m = n.
 */
export function consistencyRanges(m: number, n: number): LeafRange[] {
  if (!(Number.isSafeInteger(m) && Number.isSafeInteger(n) && m > 0 && m <= n)) throw new RangeError(`consistency proof from size ${m} to ${n}: need 0 < m <= n`);
  const topDown: LeafRange[] = [];
  let lo = 0;
  let hi = n;
  // b of the RFC: true while the old tree's root is still a node the verifier already knows.
  let known = true;
  for (;;) {
    const size = hi - lo;
    const mm = m - lo;
    if (mm === size) {
      if (!known) topDown.push([lo, hi]);
      break;
    }
    const k = split(size);
    if (mm <= k) {
      topDown.push([lo + k, hi]);
      hi = lo + k;
    } else {
      topDown.push([lo, lo + k]);
      lo += k;
      known = false;
    }
  }
  return topDown.reverse();
}
