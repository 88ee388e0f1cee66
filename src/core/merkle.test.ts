/**
 * RFC 9162 Merkle hashing against the published known answers (the Certificate Transparency
 * reference implementation's, as kept in transparency-dev/merkle's test data), and inclusion
 * proofs for every leaf of every tree up to 40 leaves.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { inclusionProof, leafHash, nodeHash, proofLength, rootAndProofs, rootFromInclusionProof, rootFromLeaves } from './merkle.ts';

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
