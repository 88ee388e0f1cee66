/**
 * @module transparency/formats.test
 * The documents anyone can check offline, without a store: canonical JSON, key ids (RFC 7638's
 * known answer from RFC 8037), signed tree heads, inclusion and consistency proof documents; every
 * kind of tampering gives a verdict with its reason, every malformed field a typed error naming
 * the file and the field. (The CLI test runs a representative few of these through the command.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateSigningKey, publicJwk } from '../core/crypto.ts';
import { isOnceOnlyError } from '../core/errors.ts';
import { canonicalJson } from '../core/json.ts';
import { consistencyProof, inclusionProof, leafHash, rootFromLeaves } from '../core/merkle.ts';
import {
  CONSISTENCY_PROOF_FORMAT,
  INCLUSION_PROOF_FORMAT,
  keyId,
  leafInput,
  parseConsistencyProof,
  parseEntry,
  parseInclusionProof,
  parsePublicJwk,
  parseTreeHead,
  signTreeHead,
  treeHeadMessage,
  verifyExtends,
  verifyInclusionProof,
  verifyTreeHead,
  type ConsistencyProofDocument,
  type InclusionProofDocument,
  type SignedTreeHead,
  type Verdict,
} from './formats.ts';

const KEYS = generateSigningKey();
const PUB = publicJwk(KEYS.publicKey);
const OTHER = generateSigningKey();
const LOG = 'UK/transparency';

const entries = Array.from({ length: 20 }, (_, i) => leafInput(i, `2026-01-01T00:00:${String(i).padStart(2, '0')}.000Z`, canonicalJson({ subject: `P-${i}`, items: ['person.address'] })));
const leaves = entries.map((e) => leafHash(e));
const hex = (b: Buffer): string => b.toString('hex');
const head = (n: number, at = `2026-01-02T00:00:${String(n).padStart(2, '0')}.000Z`, key = KEYS.privateKey): SignedTreeHead => signTreeHead(key, LOG, n, rootFromLeaves(leaves.slice(0, n)), at);
const H10 = head(10);
const H20 = head(20);
const PROOF: InclusionProofDocument = {
  format: INCLUSION_PROOF_FORMAT,
  log: LOG,
  leafIndex: 7,
  treeSize: 20,
  entry: entries[7]!,
  leafHash: hex(leaves[7]!),
  path: inclusionProof(7, leaves).map(hex),
  treeHead: H20,
};
const C10_20: ConsistencyProofDocument = { format: CONSISTENCY_PROOF_FORMAT, log: LOG, firstSize: 10, secondSize: 20, path: consistencyProof(10, leaves).map(hex) };

const reason = (v: Verdict): string => (v.ok ? '(valid)' : v.reason);

test('canonical JSON sorts members, drops nothing it can carry, and refuses what it cannot', () => {
  assert.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1.5, y: -0 } }), '{"a":[true,null,"x"],"b":1,"c":{"y":0,"z":1.5}}');
  assert.equal(canonicalJson({ '\u00e9': 1, e: 2, E: 3 }), '{"E":3,"e":2,"\u00e9":1}');
  assert.equal(canonicalJson('line\nbreak \u0000'), '"line\\nbreak \\u0000"');
  assert.equal(canonicalJson({ skipped: undefined, kept: 1 }), '{"kept":1}');
  for (const [bad, field] of [
    [{ n: Number.NaN }, '$.n'],
    [{ n: [1, Infinity] }, '$.n[1]'],
    [{ d: new Date(0) }, '$.d'],
    [{ b: 1n }, '$.b'],
    [[undefined], '$[0]'],
  ] as const) {
    assert.throws(() => canonicalJson(bad), (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_value' && e.detail.field === field, field);
  }
});

test('leaf inputs are the canonical JSON of {format, index, record, time}, and parse back', () => {
  const text = leafInput(3, '2026-01-01T00:00:00.000Z', canonicalJson({ b: 2, a: 1 }));
  assert.equal(text, canonicalJson({ time: '2026-01-01T00:00:00.000Z', record: { a: 1, b: 2 }, index: 3, format: 'onceonly-tlog-entry-1' }));
  assert.deepEqual(parseEntry(text), { format: 'onceonly-tlog-entry-1', index: 3, record: { a: 1, b: 2 }, time: '2026-01-01T00:00:00.000Z' });
  assert.equal(parseEntry('{"format":"other","index":3,"record":1,"time":"x"}'), undefined);
  assert.equal(parseEntry('not json'), undefined);
});

test('key ids are RFC 7638 thumbprints (RFC 8037 A.3 known answer), and the signed message is fixed', () => {
  assert.equal(keyId({ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' }), 'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k');
  assert.equal(treeHeadMessage(LOG, 20, H20.rootHash, H20.timestamp), `onceonly-tree-head-1\nUK/transparency\n20\n${H20.rootHash}\n${H20.timestamp}\n`);
  assert.equal(H20.keyId, keyId(PUB));
  assert.deepEqual(H20.publicKey, PUB);
});

test('genuine documents verify, with the trusted key or the head\'s own', () => {
  assert.equal(reason(verifyTreeHead(H20, PUB)), '(valid)');
  assert.equal(reason(verifyInclusionProof(PROOF, PUB)), '(valid)');
  const { entry: _e, ...byHash } = PROOF;
  assert.equal(reason(verifyInclusionProof(byHash, PUB)), '(valid)');
  const { leafHash: _h, ...byEntry } = PROOF;
  assert.equal(reason(verifyInclusionProof(byEntry, PUB)), '(valid)');
  assert.equal(reason(verifyExtends(H10, H20, C10_20, PUB)), '(valid)');
  assert.equal(reason(verifyExtends(H20, head(20, '2026-01-03T00:00:00.000Z'), undefined, PUB)), '(valid)', 'the same size signed again');
  assert.equal(reason(verifyExtends(head(0), H20, undefined, PUB)), '(valid)', 'every tree extends the empty one');
  for (let m = 1; m <= 20; m++) {
    const doc = { ...C10_20, firstSize: m, path: consistencyProof(m, leaves).map(hex) };
    assert.equal(reason(verifyExtends(head(m), H20, doc, PUB)), '(valid)', `from ${m}`);
  }
  const own = verifyTreeHead(H20);
  assert.ok(own.ok);
  assert.match(own.details.join('\n'), /taken from the head itself/);
});

test('every kind of tampering is refused with its reason', () => {
  const otherHead = head(20, H20.timestamp, OTHER.privateKey);
  const cases: [string, Verdict, RegExp][] = [
    ['head size', verifyTreeHead({ ...H20, treeSize: 21 }, PUB), /does not verify/],
    ['head root', verifyTreeHead({ ...H20, rootHash: H10.rootHash }, PUB), /does not verify/],
    ['head time', verifyTreeHead({ ...H20, timestamp: '2030-01-01T00:00:00.000Z' }, PUB), /does not verify/],
    ['head log', verifyTreeHead({ ...H20, log: 'UK/other' }, PUB), /does not verify/],
    ['re-signed by another key', verifyTreeHead(otherHead, PUB), /names key/],
    ['another key under the log\'s key id', verifyTreeHead({ ...otherHead, keyId: H20.keyId, publicKey: PUB }, PUB), /does not verify/],
    ['another key carried in the head', verifyTreeHead({ ...H20, publicKey: publicJwk(OTHER.publicKey) }, PUB), /carries a public key/],
    ['no key at all', verifyTreeHead({ ...H20, publicKey: undefined } as unknown as SignedTreeHead), /no public key/],
    ['entry changed', verifyInclusionProof({ ...PROOF, entry: entries[8]!.replace('"index":8', '"index":7'), leafHash: undefined } as unknown as InclusionProofDocument, PUB), /does not lead from entry 7/],
    ['entry and leaf hash disagree', verifyInclusionProof({ ...PROOF, entry: entries[8]! }, PUB), /not to the leafHash given/],
    ['entry of another position', verifyInclusionProof({ ...PROOF, entry: entries[8]!, leafHash: hex(leaves[8]!) }, PUB), /says it is entry 8, but the proof is for position 7/],
    ['leaf hash changed', verifyInclusionProof({ ...PROOF, entry: undefined, leafHash: hex(leaves[8]!) } as unknown as InclusionProofDocument, PUB), /does not lead/],
    ['path changed', verifyInclusionProof({ ...PROOF, path: [hex(leaves[0]!), ...PROOF.path.slice(1)] }, PUB), /does not lead/],
    ['path shortened', verifyInclusionProof({ ...PROOF, path: PROOF.path.slice(1) }, PUB), /does not lead/],
    ['not an entry', verifyInclusionProof({ ...PROOF, entry: 'x', leafHash: undefined } as unknown as InclusionProofDocument, PUB), /not a log entry/],
    ['proof and head sizes differ', verifyInclusionProof({ ...PROOF, treeSize: 19 }, PUB), /signed head is of 20/],
    ['proof of another log', verifyInclusionProof({ ...PROOF, log: 'UK/other' }, PUB), /different|is of log/],
    ['index outside the tree', verifyInclusionProof({ ...PROOF, leafIndex: 20 }, PUB), /outside a tree of 20/],
    ['heads the wrong way round', verifyExtends(H20, H10, C10_20, PUB), /fewer entries/],
    ['time going backwards', verifyExtends(H10, head(20, '2026-01-01T00:00:00.000Z'), C10_20, PUB), /signed earlier/],
    ['heads of different logs', verifyExtends(H10, signTreeHead(KEYS.privateKey, 'UK/other', 20, rootFromLeaves(leaves), H20.timestamp), C10_20, PUB), /different logs/],
    ['a fork: one size, two roots', verifyExtends(H20, signTreeHead(KEYS.privateKey, LOG, 20, leaves[0]!, '2026-02-01T00:00:00.000Z'), undefined, PUB), /forked or rewritten/],
    ['no consistency proof', verifyExtends(H10, H20, undefined, PUB), /is needed/],
    ['proof between other sizes', verifyExtends(H10, H20, { ...C10_20, firstSize: 9 }, PUB), /from size 9 to 20/],
    ['proof of another log', verifyExtends(H10, H20, { ...C10_20, log: 'UK/other' }, PUB), /for log UK\/other/],
    ['consistency path changed', verifyExtends(H10, H20, { ...C10_20, path: C10_20.path.slice(0, -1) }, PUB), /does not extend/],
    ['keys differ without a pinned key', verifyExtends(H10, head(20, H20.timestamp, OTHER.privateKey), C10_20), /different keys/],
    ['older tree rewritten', verifyExtends(signTreeHead(KEYS.privateKey, LOG, 10, rootFromLeaves([leafHash('forged'), ...leaves.slice(1, 10)]), H10.timestamp), H20, C10_20, PUB), /does not extend the tree of 10/],
  ];
  for (const [what, v, why] of cases) {
    assert.equal(v.ok, false, what);
    assert.match(reason(v), why, what);
  }
});

test('malformed documents are refused with typed errors naming the file and the field', () => {
  const expectField = (fn: () => unknown, field: string, what: string): void => {
    assert.throws(fn, (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_file' && e.detail.file === 'f.json' && e.detail.field === field && e.message.startsWith(`f.json: ${field} `), what);
  };
  const { path: _p, ...noPath } = PROOF;
  expectField(() => parseInclusionProof(noPath, 'f.json'), 'path', 'no path');
  expectField(() => parseInclusionProof({ ...PROOF, path: ['zz'] }, 'f.json'), 'path[0]', 'bad hash');
  expectField(() => parseInclusionProof({ ...PROOF, path: Array.from({ length: 65 }, () => PROOF.path[0]) }, 'f.json'), 'path', 'a path longer than any tree');
  expectField(() => parseInclusionProof({ ...PROOF, leafIndex: 1.5 }, 'f.json'), 'leafIndex', 'fractional index');
  expectField(() => parseInclusionProof({ ...PROOF, entry: undefined, leafHash: undefined }, 'f.json'), 'leafHash', 'neither leaf nor hash');
  expectField(() => parseInclusionProof({ ...PROOF, treeHead: { ...H20, treeSize: -1 } }, 'f.json'), 'treeHead.treeSize', 'bad head inside');
  expectField(() => parseInclusionProof({ ...PROOF, treeHead: { ...H20, publicKey: { ...PUB, x: 'short' } } }, 'f.json'), 'treeHead.publicKey.x', 'bad key inside');
  expectField(() => parseInclusionProof([], 'f.json'), '$', 'not an object');
  expectField(() => parseInclusionProof({ ...PROOF, format: 'x' }, 'f.json'), 'format', 'format');
  expectField(() => parseTreeHead({ ...H20, timestamp: '2026-01-01' }, 'f.json'), 'timestamp', 'timestamp');
  expectField(() => parseTreeHead({ ...H20, signature: 'abc' }, 'f.json'), 'signature', 'signature');
  expectField(() => parseTreeHead({ ...H20, log: 'has space' }, 'f.json'), 'log', 'log name');
  expectField(() => parseTreeHead({ ...H20, rootHash: H20.rootHash.toUpperCase() }, 'f.json'), 'rootHash', 'upper-case hex');
  expectField(() => parseConsistencyProof({ ...C10_20, firstSize: 0 }, 'f.json'), 'firstSize', 'size 0');
  expectField(() => parsePublicJwk({ kty: 'EC' }, 'f.json'), 'kty', 'kty');
  expectField(() => parsePublicJwk({ kty: 'OKP', crv: 'X25519', x: PUB.x }, 'f.json'), 'crv', 'crv');
  // What parses is what was written.
  assert.deepEqual(parseInclusionProof(JSON.parse(JSON.stringify(PROOF)), 'f.json'), PROOF);
  assert.deepEqual(parseConsistencyProof(JSON.parse(JSON.stringify(C10_20)), 'f.json'), C10_20);
  assert.deepEqual(parsePublicJwk(PUB, 'f.json'), PUB);
});
