/**
 * @module transparency/formats.test
 * The documents anyone can check offline, without a store: canonical JSON, checkpoints (C2SP
 * tlog-checkpoint, byte for byte) with witness cosignatures and a quorum, inclusion and
 * consistency proof documents; every kind of tampering gives a verdict with its reason, every
 * malformed field a typed error naming the file and the field. (The CLI test runs a
 * representative few of these through the command.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateSigningKey, publicJwk } from '../core/crypto.ts';
import { isOnceOnlyError } from '../core/errors.ts';
import { canonicalJson } from '../core/json.ts';
import { consistencyProof, inclusionProof, leafHash, rootFromLeaves } from '../core/merkle.ts';
import { ED25519, cosignatureLine, formatVerifierKey, parseVerifierKey, rawEd25519 } from '../core/note.ts';
import {
  CONSISTENCY_PROOF_FORMAT,
  INCLUSION_PROOF_FORMAT,
  leafInput,
  logFromOrigin,
  logOrigin,
  logVerifier,
  parseCheckpoint,
  parseConsistencyProof,
  parseEntry,
  parseInclusionProof,
  parsePublicJwk,
  signTreeHead,
  verifyExtends,
  verifyInclusionProof,
  verifyTreeHead,
  withSignatures,
  witnessVerifier,
  type ConsistencyProofDocument,
  type InclusionProofDocument,
  type SignedTreeHead,
  type Verdict,
} from './formats.ts';

const KEYS = generateSigningKey();
const PUB = publicJwk(KEYS.publicKey);
const OTHER = generateSigningKey();
const LOG = 'UK/transparency';
const LOGKEY = logVerifier(LOG, PUB);
const OTHERKEY = logVerifier(LOG, publicJwk(OTHER.publicKey));
// Three witnesses, each its own key.
const W = [1, 2, 3].map((i) => ({ name: `witness.example/w${i}`, keys: generateSigningKey() }));
const WITNESSES = W.map((w) => witnessVerifier(w.name, publicJwk(w.keys.publicKey)));
const cosign = (h: SignedTreeHead, i: number, time = 1_800_000_000 + i): string => cosignatureLine(h.checkpoint.slice(0, h.checkpoint.indexOf('\n\n') + 1), W[i]!.keys.privateKey, W[i]!.name, time);

const entries = Array.from({ length: 20 }, (_, i) => leafInput(i, `2026-01-01T00:00:${String(i).padStart(2, '0')}.000Z`, canonicalJson({ subject: `P-${i}`, items: ['person.address'] })));
const leaves = entries.map((e) => leafHash(e));
const hex = (b: Buffer): string => b.toString('hex');
const head = (n: number, key = KEYS.privateKey): SignedTreeHead => signTreeHead(key, LOG, n, rootFromLeaves(leaves.slice(0, n)));
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
  checkpoint: withSignatures(H20, [cosign(H20, 0), cosign(H20, 1)]).checkpoint,
};
const POLICY = { witnesses: WITNESSES, quorum: 2 };
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

test('a tree head is a C2SP checkpoint: three lines, a blank line, the log\'s signature under the origin', () => {
  const root = rootFromLeaves(leaves);
  const [body, sigs] = H20.checkpoint.split('\n\n') as [string, string];
  assert.equal(`${body}\n`, `UK/transparency\n20\n${root.toString('base64')}\n`);
  assert.match(sigs, /^\u2014 UK\/transparency [A-Za-z0-9+/]{91}=\n$/);
  // Any signed-note verifier reads it with the log's verifier key (name+id+base64).
  const vkey = formatVerifierKey('UK/transparency', ED25519, rawEd25519(KEYS.publicKey));
  assert.equal(reason(verifyTreeHead(H20, parseVerifierKey(vkey))), '(valid)');
  assert.deepEqual(parseCheckpoint(H20.checkpoint, 'f'), H20);
  // Origins: '+' may not be in a key name and ids may hold it; '%' is escaped so the mapping is one-to-one.
  assert.equal(logOrigin('UK/A+B%/gw/transparency'), 'UK/A%2BB%25/gw/transparency');
  assert.equal(logFromOrigin('UK/A%2BB%25/gw/transparency'), 'UK/A+B%/gw/transparency');
  for (const bad of ['UK/A+B', 'UK/%41', 'has space', '']) assert.equal(logFromOrigin(bad), undefined, bad);
  const plus = signTreeHead(KEYS.privateKey, 'UK/A+B/transparency', 0, rootFromLeaves([]));
  assert.ok(plus.checkpoint.startsWith('UK/A%2BB/transparency\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\u2014 UK/A%2BB/transparency '));
  assert.equal(reason(verifyTreeHead(plus, logVerifier('UK/A+B/transparency', PUB))), '(valid)');
});

test('genuine documents verify: the log\'s key, a quorum of witnesses, the path, the consistency', () => {
  assert.equal(reason(verifyTreeHead(H20, LOGKEY)), '(valid)');
  const cosigned = withSignatures(H20, [cosign(H20, 0), cosign(H20, 2)]);
  const v = verifyTreeHead(cosigned, LOGKEY, POLICY);
  assert.equal(reason(v), '(valid)');
  assert.match(v.details.join('\n'), /cosigned by witness\.example\/w1 at 2027-01-15T08:00:00\.000Z[\s\S]*w3[\s\S]*2 witness cosignature\(s\), quorum 2/);
  assert.equal(reason(verifyInclusionProof(PROOF, LOGKEY, POLICY)), '(valid)');
  const { entry: _e, ...byHash } = PROOF;
  assert.equal(reason(verifyInclusionProof(byHash, LOGKEY, POLICY)), '(valid)');
  const { leafHash: _h, ...byEntry } = PROOF;
  assert.equal(reason(verifyInclusionProof(byEntry, LOGKEY, POLICY)), '(valid)');
  assert.equal(reason(verifyInclusionProof(PROOF, LOGKEY, { witnesses: WITNESSES, quorum: 0 })), '(valid)', 'quorum 0: the log\'s signature only');
  assert.equal(reason(verifyExtends(H10, H20, C10_20, LOGKEY)), '(valid)');
  assert.equal(reason(verifyExtends(H20, head(20), undefined, LOGKEY)), '(valid)', 'the same size signed again');
  assert.equal(reason(verifyExtends(head(0), H20, undefined, LOGKEY)), '(valid)', 'every tree extends the empty one');
  for (let m = 1; m <= 20; m++) {
    const doc = { ...C10_20, firstSize: m, path: consistencyProof(m, leaves).map(hex) };
    assert.equal(reason(verifyExtends(head(m), H20, doc, LOGKEY)), '(valid)', `from ${m}`);
  }
});

test('a quorum counts distinct trusted witnesses only', () => {
  const one = withSignatures(H20, [cosign(H20, 0)]);
  const twiceByOne = withSignatures(H20, [cosign(H20, 0), cosign(H20, 0, 1_900_000_000)]);
  const stranger = generateSigningKey();
  const unknown = withSignatures(H20, [cosign(H20, 0), cosignatureLine(H20.checkpoint.split('\n\n')[0]! + '\n', stranger.privateKey, 'witness.example/w2', 1_800_000_000)]);
  // The log's own key as a witness: a log cannot vouch for itself.
  const self = withSignatures(H20, [cosign(H20, 0), cosignatureLine(H20.checkpoint.split('\n\n')[0]! + '\n', KEYS.privateKey, 'UK/transparency', 1_800_000_000)]);
  const selfPolicy = { witnesses: [...WITNESSES, witnessVerifier('UK/transparency', PUB)], quorum: 2 };
  for (const [what, h, policy] of [['one witness', one, POLICY], ['one witness twice', twiceByOne, POLICY], ['an unknown key under a witness\'s name', unknown, POLICY], ['the log cosigning itself', self, selfPolicy]] as const) {
    const v = verifyTreeHead(h, LOGKEY, policy);
    assert.equal(v.ok, false, what);
    assert.match(reason(v), /cosigned by 1 of the 3 witnesses trusted[\s\S]*2 are required/, what);
    assert.equal(v.ok ? 0 : v.details.filter((d) => d.startsWith('cosigned by')).length, 1, what);
  }
  // A trusted witness's line that does not verify makes the whole checkpoint invalid (signed-note §Verifying).
  const line = cosign(H20, 1);
  const broken = withSignatures(H20, [cosign(H20, 0), line.slice(0, -6) + (line.endsWith('AAAAA=') ? 'BBBBB=' : 'AAAAA=')]);
  assert.match(reason(verifyTreeHead(broken, LOGKEY, POLICY)), /witness\.example\/w2 .* does not verify/);
  // A cosignature of another checkpoint does not carry over.
  const moved = withSignatures(H20, [cosign(H20, 0), cosign(H10, 1)]);
  assert.match(reason(verifyTreeHead(moved, LOGKEY, POLICY)), /does not verify/);
});

test('every kind of tampering is refused with its reason', () => {
  const text = (h: SignedTreeHead, f: (t: string) => string): SignedTreeHead => ({ ...h, checkpoint: f(h.checkpoint) });
  const cases: [string, Verdict, RegExp][] = [
    ['size in the checkpoint', verifyTreeHead(parseCheckpoint(H20.checkpoint.replace('\n20\n', '\n21\n'), 'x'), LOGKEY), /does not verify/],
    ['root in the checkpoint', verifyTreeHead(parseCheckpoint(H20.checkpoint.replace(/\n[A-Za-z0-9+/]{43}=\n/, `\n${rootFromLeaves(leaves.slice(0, 10)).toString('base64')}\n`), 'x'), LOGKEY), /does not verify/],
    ['the head beside the checkpoint', verifyTreeHead({ ...H20, treeSize: 21 }, LOGKEY), /the head beside it says/],
    ['re-signed by another key', verifyTreeHead(head(20, OTHER.privateKey), LOGKEY), /no signature by the log's key/],
    ['the key of another log', verifyTreeHead(H20, logVerifier('UK/other', PUB)), /the key given is for UK\/other/],
    ['a signature line altered', verifyTreeHead(text(H20, (t) => t.replace(/.{4}=\n$/, 'AAAA=\n')), LOGKEY), /does not verify/],
    ['not a checkpoint', verifyTreeHead(text(H20, (t) => t.replace('\n\n', '\n')), LOGKEY), /checkpoint/],
    ['entry changed', verifyInclusionProof({ ...PROOF, entry: entries[8]!.replace('"index":8', '"index":7'), leafHash: undefined } as unknown as InclusionProofDocument, LOGKEY), /does not lead from entry 7/],
    ['entry and leaf hash disagree', verifyInclusionProof({ ...PROOF, entry: entries[8]! }, LOGKEY), /not to the leafHash given/],
    ['entry of another position', verifyInclusionProof({ ...PROOF, entry: entries[8]!, leafHash: hex(leaves[8]!) }, LOGKEY), /says it is entry 8, but the proof is for position 7/],
    ['leaf hash changed', verifyInclusionProof({ ...PROOF, entry: undefined, leafHash: hex(leaves[8]!) } as unknown as InclusionProofDocument, LOGKEY), /does not lead/],
    ['path changed', verifyInclusionProof({ ...PROOF, path: [hex(leaves[0]!), ...PROOF.path.slice(1)] }, LOGKEY), /does not lead/],
    ['path shortened', verifyInclusionProof({ ...PROOF, path: PROOF.path.slice(1) }, LOGKEY), /does not lead/],
    ['not an entry', verifyInclusionProof({ ...PROOF, entry: 'x', leafHash: undefined } as unknown as InclusionProofDocument, LOGKEY), /not a log entry/],
    ['proof and checkpoint sizes differ', verifyInclusionProof({ ...PROOF, treeSize: 19 }, LOGKEY), /checkpoint is of 20/],
    ['proof of another log', verifyInclusionProof({ ...PROOF, log: 'UK/other' }, LOGKEY), /is of log/],
    ['index outside the tree', verifyInclusionProof({ ...PROOF, leafIndex: 20 }, LOGKEY), /outside a tree of 20/],
    ['proof without the quorum', verifyInclusionProof({ ...PROOF, checkpoint: H20.checkpoint }, LOGKEY, POLICY), /cosigned by 0 of the 3/],
    ['heads the wrong way round', verifyExtends(H20, H10, C10_20, LOGKEY), /fewer entries/],
    ['heads of different logs', verifyExtends(H10, signTreeHead(KEYS.privateKey, 'UK/other', 20, rootFromLeaves(leaves)), C10_20, logVerifier('UK/other', PUB)), /the key given is for UK\/other/],
    ['a fork: one size, two roots', verifyExtends(H20, signTreeHead(KEYS.privateKey, LOG, 20, leaves[0]!), undefined, LOGKEY), /forked or rewritten/],
    ['no consistency proof', verifyExtends(H10, H20, undefined, LOGKEY), /is needed/],
    ['proof between other sizes', verifyExtends(H10, H20, { ...C10_20, firstSize: 9 }, LOGKEY), /from size 9 to 20/],
    ['proof of another log', verifyExtends(H10, H20, { ...C10_20, log: 'UK/other' }, LOGKEY), /for log UK\/other/],
    ['consistency path changed', verifyExtends(H10, H20, { ...C10_20, path: C10_20.path.slice(0, -1) }, LOGKEY), /does not extend/],
    ['newer signed by another key', verifyExtends(H10, head(20, OTHER.privateKey), C10_20, LOGKEY), /newer checkpoint: .*no signature by the log's key/],
    ['older tree rewritten', verifyExtends(signTreeHead(KEYS.privateKey, LOG, 10, rootFromLeaves([leafHash('forged'), ...leaves.slice(1, 10)])), H20, C10_20, LOGKEY), /does not extend the tree of 10/],
  ];
  for (const [what, v, why] of cases) {
    assert.equal(v.ok, false, what);
    assert.match(reason(v), why, what);
  }
  assert.equal(verifyTreeHead(H20, OTHERKEY).ok, false);
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
  expectField(() => parseInclusionProof({ ...PROOF, checkpoint: 42 }, 'f.json'), 'checkpoint', 'checkpoint not a string');
  expectField(() => parseInclusionProof({ ...PROOF, checkpoint: H20.checkpoint.replace('\n20\n', '\n020\n') }, 'f.json'), 'checkpoint.size', 'a leading zero');
  expectField(() => parseInclusionProof([], 'f.json'), '$', 'not an object');
  expectField(() => parseInclusionProof({ ...PROOF, format: 'x' }, 'f.json'), 'format', 'format');
  const cp = (t: string): unknown => parseCheckpoint(t, 'f.json');
  expectField(() => cp(H20.checkpoint.replace('UK/transparency\n', 'UK/a b\n')), 'checkpoint.origin', 'a space in the origin');
  expectField(() => cp(H20.checkpoint.replace('UK/transparency\n', 'UK/a+b\n')), 'checkpoint.origin', 'a plus in the origin');
  expectField(() => cp(H20.checkpoint.replace('\n20\n', '\n-1\n')), 'checkpoint.size', 'negative size');
  expectField(() => cp(H20.checkpoint.replace('\n20\n', '\n99999999999999999\n')), 'checkpoint.size', 'beyond 2^53');
  expectField(() => cp(H20.checkpoint.replace(/\n([A-Za-z0-9+/]{43}=)\n/, (_m, r: string) => `\n${Buffer.from(r, 'base64').toString('hex')}\n`)), 'checkpoint.rootHash', 'hex root');
  expectField(() => cp(H20.checkpoint.replace('\n\n', '\nextension\n\n')), 'checkpoint', 'an extension line');
  expectField(() => cp(H20.checkpoint.replace('\n20\n', '\n\r20\n')), 'checkpoint', 'a carriage return');
  expectField(() => cp('UK/transparency\n20\n\n\u2014 x AAAAAAA=\n'), 'checkpoint', 'two lines');
  expectField(() => parseConsistencyProof({ ...C10_20, firstSize: 0 }, 'f.json'), 'firstSize', 'size 0');
  expectField(() => parsePublicJwk({ kty: 'EC' }, 'f.json'), 'kty', 'kty');
  expectField(() => parsePublicJwk({ kty: 'OKP', crv: 'X25519', x: PUB.x }, 'f.json'), 'crv', 'crv');
  // What parses is what was written.
  assert.deepEqual(parseInclusionProof(JSON.parse(JSON.stringify(PROOF)), 'f.json'), PROOF);
  assert.deepEqual(parseConsistencyProof(JSON.parse(JSON.stringify(C10_20)), 'f.json'), C10_20);
  assert.deepEqual(parsePublicJwk(PUB, 'f.json'), PUB);
});
