/**
 * RFC 9162 Merkle hashing against the published known answers (the Certificate Transparency
 * reference implementation's, as kept in transparency-dev/merkle's test data: roots, complete
 * subtree hashes, and every inclusion and consistency probe of its testdata/), inclusion proofs
 * for every leaf of every tree up to 40 leaves, and consistency proofs between every pair of sizes
 * up to 40.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  consistencyProof,
  consistencyRanges,
  foldSubtrees,
  inclusionProof,
  inclusionRanges,
  leafHash,
  nodeHash,
  proofLength,
  rootAndProofs,
  rootFromInclusionProof,
  rootFromLeaves,
  subtreeNodes,
  verifyConsistency,
  verifyInclusion,
} from './merkle.ts';

const INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'));
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

test('roots of the reference inputs match the published known answers', () => {
  const leaves = INPUTS.map((b) => leafHash(b));
  for (let n = 0; n <= 8; n++) assert.equal(rootFromLeaves(leaves.slice(0, n)).toString('hex'), ROOTS[n], `tree of ${n}`);
});

test('the inclusion proof of leaf 0 in the tree of 8 is the published one', () => {
  const leaves = INPUTS.map((b) => leafHash(b));
  assert.deepEqual(inclusionProof(0, leaves).map((h) => h.toString('hex')), [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ]);
});

test('every leaf of every tree up to 40 proves its inclusion; a wrong leaf, index or path does not', () => {
  for (let n = 1; n <= 40; n++) {
    const leaves = Array.from({ length: n }, (_, i) => leafHash(`entry ${i}`));
    const root = rootFromLeaves(leaves);
    for (let m = 0; m < n; m++) {
      const proof = inclusionProof(m, leaves);
      assert.ok(rootFromInclusionProof(m, n, leaves[m]!, proof)?.equals(root), `n=${n} m=${m}`);
      assert.ok(!rootFromInclusionProof(m, n, leafHash('other'), proof)?.equals(root));
      if (n > 1) assert.ok(!rootFromInclusionProof((m + 1) % n, n, leaves[m]!, proof)?.equals(root));
      // (The same path can fit another tree size: a root is only meaningful with its signed size.)
      assert.equal(rootFromInclusionProof(n, n, leaves[m]!, proof), undefined, 'an index outside the tree');
      if (proof.length > 0) assert.ok(!rootFromInclusionProof(m, n, leaves[m]!, proof.slice(1))?.equals(root));
    }
  }
});

test('rootAndProofs gives the same root and proofs as the one-leaf-at-a-time algorithm, and proofLength their lengths', () => {
  for (let n = 1; n <= 70; n++) {
    const leaves = Array.from({ length: n }, (_, i) => leafHash(`e${i}`));
    const all = rootAndProofs(leaves);
    assert.ok(all.root.equals(rootFromLeaves(leaves)));
    for (let m = 0; m < n; m++) {
      assert.deepEqual(all.proofs[m]!.map((h) => h.toString('hex')), inclusionProof(m, leaves).map((h) => h.toString('hex')), `n=${n} m=${m}`);
      assert.equal(proofLength(m, n), all.proofs[m]!.length);
    }
  }
});

test('property: any proof verifies only its own leaf', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 8 }), { minLength: 1, maxLength: 64 }), fc.nat(), (entries, k) => {
      const leaves = entries.map((e) => leafHash(e));
      const m = k % leaves.length;
      const root = rootFromLeaves(leaves);
      const proof = inclusionProof(m, leaves);
      return rootFromInclusionProof(m, leaves.length, leaves[m]!, proof)?.equals(root) === true;
    }),
  );
  assert.equal(nodeHash(leafHash(''), leafHash('')).length, 32);
});

// testonly/constants.go NodeHashes(): the hash of every complete subtree of the tree of INPUTS,
// by level (0 = leaves) and index within the level.
const NODE_HASHES = [
  [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
    '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
  ],
  [
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
  ],
  ['d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'],
  ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'],
];

test('every complete subtree of the reference tree hashes to the published node hash', () => {
  const leaves = INPUTS.map((b) => leafHash(b));
  NODE_HASHES.forEach((level, l) =>
    level.forEach((hex, i) => {
      assert.equal(rootFromLeaves(leaves.slice(i * 2 ** l, (i + 1) * 2 ** l)).toString('hex'), hex, `node (${l}, ${i})`);
      // The storage layout names the same node for that range.
      assert.deepEqual(subtreeNodes(i * 2 ** l, (i + 1) * 2 ** l), [{ level: l, index: i }]);
    }),
  );
});

interface Vectors {
  inclusion: { file: string; leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; wantErr: boolean }[];
  consistency: { file: string; size1: number; size2: number; root1: string; root2: string; proof: string[] | null; wantErr: boolean }[];
}
const VECTORS = JSON.parse(readFileSync(new URL('../../test/vectors/transparency-dev-merkle.json', import.meta.url), 'utf8')) as Vectors;
const b64 = (s: string): Buffer => Buffer.from(s, 'base64');

test('every published inclusion probe is accepted or refused as transparency-dev/merkle says', () => {
  assert.ok(VECTORS.inclusion.length >= 90);
  for (const p of VECTORS.inclusion) {
    const ok = verifyInclusion(p.leafIdx, p.treeSize, b64(p.leafHash), (p.proof ?? []).map(b64), b64(p.root));
    assert.equal(ok, !p.wantErr, p.file);
  }
});

test('every published consistency probe is accepted or refused as transparency-dev/merkle says', () => {
  assert.ok(VECTORS.consistency.length >= 90);
  for (const p of VECTORS.consistency) {
    const ok = verifyConsistency(p.size1, p.size2, b64(p.root1), b64(p.root2), (p.proof ?? []).map(b64));
    assert.equal(ok, !p.wantErr, p.file);
  }
});

test('the proofs we generate for the reference tree are the published ones', () => {
  const leaves = INPUTS.map((b) => leafHash(b));
  const happy = (p: { file: string }): boolean => p.file.endsWith('/happy-path.json');
  let checked = 0;
  for (const p of VECTORS.inclusion.filter(happy)) {
    // Proofs in the probes are over the reference inputs: the published leaf hash is the leaf's.
    assert.equal(leaves[p.leafIdx]!.toString('base64'), p.leafHash, p.file);
    assert.equal(rootFromLeaves(leaves.slice(0, p.treeSize)).toString('base64'), p.root, p.file);
    assert.deepEqual(inclusionProof(p.leafIdx, leaves.slice(0, p.treeSize)).map((h) => h.toString('base64')), p.proof ?? [], p.file);
    checked++;
  }
  for (const p of VECTORS.consistency.filter(happy)) {
    assert.equal(rootFromLeaves(leaves.slice(0, p.size1)).toString('base64'), p.root1, p.file);
    assert.equal(rootFromLeaves(leaves.slice(0, p.size2)).toString('base64'), p.root2, p.file);
    assert.deepEqual(consistencyProof(p.size1, leaves.slice(0, p.size2)).map((h) => h.toString('base64')), p.proof ?? [], p.file);
    checked++;
  }
  assert.ok(checked >= 10);
  // The reference implementation's older tables (1-based leaf numbers there): leaf 6 of 8, the
  // consistency proof from 6 to 7 and from 2 to 5.
  assert.deepEqual(inclusionProof(5, leaves).map((h) => h.toString('hex')), [
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  ]);
  assert.deepEqual(consistencyProof(6, leaves.slice(0, 7)).map((h) => h.toString('hex')), [
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  ]);
  assert.deepEqual(consistencyProof(2, leaves.slice(0, 5)).map((h) => h.toString('hex')), [
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  ]);
});

test('consistency proofs between every pair of sizes up to 40 verify; wrong roots, sizes or paths do not', () => {
  const leaves = Array.from({ length: 40 }, (_, i) => leafHash(`entry ${i}`));
  const roots = Array.from({ length: 41 }, (_, n) => rootFromLeaves(leaves.slice(0, n)));
  for (let n = 1; n <= 40; n++) {
    for (let m = 1; m <= n; m++) {
      const proof = consistencyProof(m, leaves.slice(0, n));
      const at = `m=${m} n=${n}`;
      assert.ok(verifyConsistency(m, n, roots[m]!, roots[n]!, proof), at);
      if (m === n) {
        assert.equal(proof.length, 0, at);
        continue;
      }
      assert.ok(!verifyConsistency(m, n, leafHash('rewritten'), roots[n]!, proof), `old root rewritten ${at}`);
      assert.ok(!verifyConsistency(m, n, roots[m]!, leafHash('other'), proof), `new root ${at}`);
      assert.ok(!verifyConsistency(m, n, roots[m]!, roots[n]!, proof.slice(1)), `shortened ${at}`);
      assert.ok(!verifyConsistency(m, n, roots[m]!, roots[n]!, [...proof, roots[0]!]), `lengthened ${at}`);
      for (let i = 0; i < proof.length; i++) {
        const bad = proof.map((h, j) => (j === i ? nodeHash(h, h) : h));
        assert.ok(!verifyConsistency(m, n, roots[m]!, roots[n]!, bad), `component ${i} changed ${at}`);
      }
      if (m > 1) assert.ok(!verifyConsistency(m - 1, n, roots[m]!, roots[n]!, proof), `wrong old size ${at}`);
      // (A path can fit another new size too: roots mean something only with their signed sizes.)
      // A tree that rewrote one of the first m leaves has a different old root: the proof from it
      // no longer ends at the honest old root.
      const forged = leaves.slice(0, n).map((h, j) => (j === m - 1 ? leafHash('forged') : h));
      assert.ok(!verifyConsistency(m, n, roots[m]!, rootFromLeaves(forged), consistencyProof(m, forged)), `old tree rewritten ${at}`);
    }
  }
  assert.ok(!verifyConsistency(0, 3, roots[0]!, roots[3]!, []), 'from the empty tree proves nothing');
  assert.ok(!verifyConsistency(3, 2, roots[3]!, roots[2]!, []), 'shrinking');
  assert.throws(() => consistencyProof(0, leaves), RangeError);
  assert.throws(() => consistencyProof(41, leaves), RangeError);
});

test('proof ranges over stored complete subtrees give the same proofs and roots as the leaves', () => {
  for (let n = 1; n <= 70; n++) {
    const leaves = Array.from({ length: n }, (_, i) => leafHash(`s${i}`));
    const stored = (id: { level: number; index: number }): Buffer => rootFromLeaves(leaves.slice(id.index * 2 ** id.level, (id.index + 1) * 2 ** id.level));
    const mth = ([a, b]: readonly [number, number]): Buffer => {
      const ids = subtreeNodes(a, b);
      // Every node named is complete inside the tree.
      for (const id of ids) assert.ok((id.index + 1) * 2 ** id.level <= n);
      return foldSubtrees(ids.map(stored));
    };
    assert.ok(mth([0, n]).equals(rootFromLeaves(leaves)), `root n=${n}`);
    assert.ok(subtreeNodes(0, n).length <= Math.ceil(Math.log2(n + 1)));
    for (let m = 0; m < n; m++) {
      const want = inclusionProof(m, leaves).map((h) => h.toString('hex'));
      assert.deepEqual(inclusionRanges(m, n).map((r) => mth(r).toString('hex')), want, `inclusion m=${m} n=${n}`);
    }
    for (let m = 1; m <= n; m++) {
      const want = consistencyProof(m, leaves).map((h) => h.toString('hex'));
      assert.deepEqual(consistencyRanges(m, n).map((r) => mth(r).toString('hex')), want, `consistency m=${m} n=${n}`);
    }
  }
  assert.ok(foldSubtrees([]).equals(rootFromLeaves([])));
});

test('property: any consistency proof verifies, and not against another old tree', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 8 }), { minLength: 1, maxLength: 100 }), fc.nat(), (entries, k) => {
      const leaves = entries.map((e) => leafHash(e));
      const m = 1 + (k % leaves.length);
      const proof = consistencyProof(m, leaves);
      const ok = verifyConsistency(m, leaves.length, rootFromLeaves(leaves.slice(0, m)), rootFromLeaves(leaves), proof);
      const other = m < leaves.length && verifyConsistency(m, leaves.length, leafHash('x'), rootFromLeaves(leaves), proof);
      return ok && !other;
    }),
  );
});

test('verifyInclusion refuses malformed input without throwing', () => {
  const leaves = INPUTS.map((b) => leafHash(b));
  const root = rootFromLeaves(leaves);
  const proof = inclusionProof(3, leaves);
  assert.ok(verifyInclusion(3, 8, leaves[3]!, proof, root));
  assert.ok(!verifyInclusion(3, 8, leaves[3]!.subarray(1), proof, root), 'a leaf hash of the wrong length');
  assert.ok(!verifyInclusion(-1, 8, leaves[3]!, proof, root));
  assert.ok(!verifyInclusion(3, Number.NaN, leaves[3]!, proof, root));
  assert.ok(!verifyInclusion(8, 8, leaves[3]!, proof, root));
});
