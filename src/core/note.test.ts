import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { isOnceOnlyError } from './errors.ts';
import {
  COSIGNATURE_V1,
  ED25519,
  cosignatureLine,
  formatNote,
  formatVerifierKey,
  keyIdHex,
  noteVerifier,
  parseNote,
  parseVerifierKey,
  rawEd25519,
  signNoteText,
  verifyNote,
} from './note.ts';

// c2sp.org/signed-note@v1.0.0 §Test vectors, copied byte for byte.
const VKEY = 'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k';
const SIGNED = 'This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n';
// c2sp.org/tlog-cosignature: the example cosigned checkpoint (its keys are not published, so it
// is used for parsing and for the timestamp layout only).
const COSIGNED = [
  'example.com/behind-the-sofa',
  '20852163',
  'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=',
  '',
  '\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=',
  '\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==',
  '',
].join('\n');

const invalidNote = (e: unknown): boolean => isOnceOnlyError(e) && e.type === 'invalid_value';

test('the signed-note test vector: the verifier key parses, its ID is recomputed, the note verifies', () => {
  const v = parseVerifierKey(VKEY);
  assert.equal(v.name, 'example.com/foo');
  assert.equal(keyIdHex(v.keyId), '530d903a');
  assert.equal(v.type, ED25519);
  assert.equal(formatVerifierKey(v.name, ED25519, v.publicKey), VKEY, 'and formats back to the same text');
  const note = parseNote(Buffer.from(SIGNED, 'utf8'));
  assert.equal(note.text, 'This is an example message.\n');
  const ok = verifyNote(note, [v]);
  assert.equal(ok.length, 1);
  assert.equal(ok[0]!.verifier, v);
  // The signed message includes the final newline of the text: any other text fails.
  assert.equal(v.verify('This is an example message.', note.signatures[0]!.signature), undefined);
  assert.throws(() => verifyNote({ ...note, text: 'This is an example message!\n' }, [v]), (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_signature');
});

test('verifier keys: a changed key ID, an unknown type, a plus or a space in the name are refused', () => {
  assert.throws(() => parseVerifierKey(VKEY.replace('530d903a', '530d903b')), /key ID 530d903b/);
  assert.throws(() => parseVerifierKey(VKEY.replace('+Aek', '+Agk')), invalidNote, 'type 0x02');
  assert.throws(() => parseVerifierKey('example.com/foo'), invalidNote);
  assert.throws(() => parseVerifierKey(`${VKEY}=`), invalidNote, 'not strict base64');
  const { publicKey } = generateKeyPairSync('ed25519');
  assert.throws(() => formatVerifierKey('a b', ED25519, rawEd25519(publicKey)), invalidNote);
  assert.throws(() => formatVerifierKey('a+b', ED25519, rawEd25519(publicKey)), invalidNote);
  assert.throws(() => formatVerifierKey('a\u00a0b', ED25519, rawEd25519(publicKey)), invalidNote, 'a Unicode space');
});

test('note parsing follows the byte rules: control characters, BOM, base64, blank line, signature count', () => {
  const bad = [
    ['a tab', SIGNED.replace('This is', 'This\tis')],
    ['a carriage return', SIGNED.replace('message.\n', 'message.\r\n')],
    ['no blank line', SIGNED.replace('\n\n', '\n')],
    ['no signature', 'text\n\n'],
    ['no final newline', SIGNED.slice(0, -1)],
    ['a hyphen for the em dash', SIGNED.replace('\u2014', '-')],
    ['URL-safe base64', SIGNED.replace('Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=', 'Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM')],
    ['a short signature', SIGNED.replace(/foo \S+/, 'foo AAAA')],
    ['too many signatures', `text\n\n${'\u2014 a AAAAAAA=\n'.repeat(101)}`],
  ] as const;
  for (const [what, text] of bad) assert.throws(() => parseNote(text), invalidNote, what);
  assert.throws(() => parseNote(Buffer.from([0x74, 0xff, 0x0a, 0x0a])), /UTF-8/);
  // A BOM is kept as part of the text (TextDecoder would strip it by default), so the signature no longer verifies.
  const withBom = parseNote(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(SIGNED)]));
  assert.throws(() => verifyNote(withBom, [parseVerifierKey(VKEY)]), /does not verify/);
  // The text may contain blank lines: the last one separates the signatures.
  const multi = parseNote('a\n\nb\n\n\u2014 n AAAAAAA=\n');
  assert.equal(multi.text, 'a\n\nb\n');
});

test('unknown keys are ignored, a known key that fails rejects the note, each key counts once', () => {
  const k = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const text = 'log.example/1\n3\nAAAA\n';
  const mine = signNoteText(text, k.privateKey, 'log.example/1');
  const v = noteVerifier('log.example/1', ED25519, rawEd25519(k.publicKey));
  // Same name, other key: another key ID, so an unknown signature.
  const impostor = signNoteText(text, other.privateKey, 'log.example/1');
  assert.equal(verifyNote(parseNote(formatNote(text, [impostor])), [v]).length, 0);
  assert.equal(verifyNote(parseNote(formatNote(text, [impostor, mine, mine])), [v]).length, 1);
  // The known key ID with a signature that does not verify.
  const broken = mine.replace(/.{6}$/, 'AAAAAA');
  assert.throws(() => verifyNote(parseNote(formatNote(text, [broken])), [v]), /does not verify/);
});

test('cosignature/v1: timestamp layout of the spec example; our cosignatures verify and bind the time', () => {
  const note = parseNote(COSIGNED);
  const w = note.signatures[1]!;
  assert.equal(keyIdHex(w.keyId), '8d66cf3f');
  assert.equal(w.signature.length, 72, '8-byte timestamp and a 64-byte signature');
  assert.equal(w.signature.readBigUInt64BE(0), 1679315147n);

  const k = generateKeyPairSync('ed25519');
  const text = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
  const line = cosignatureLine(text, k.privateKey, 'witness.example/w1', 1679315147);
  const v = parseVerifierKey(formatVerifierKey('witness.example/w1', COSIGNATURE_V1, rawEd25519(k.publicKey)));
  assert.equal(v.type, COSIGNATURE_V1);
  const got = verifyNote(parseNote(formatNote(text, [line])), [v]);
  assert.equal(got[0]?.time, 1679315147);
  // The timestamp is signed: another time in the line fails.
  const parsed = parseNote(formatNote(text, [line])).signatures[0]!;
  const moved = Buffer.from(parsed.signature);
  moved.writeBigUInt64BE(1679315148n, 0);
  assert.equal(v.verify(text, moved), undefined);
  // A plain Ed25519 signature by the same key is not a cosignature (another type byte, another key ID).
  const plain = signNoteText(text, k.privateKey, 'witness.example/w1');
  assert.equal(verifyNote(parseNote(formatNote(text, [plain])), [v]).length, 0);
  assert.throws(() => cosignatureLine(text, k.privateKey, 'w', 0), invalidNote);
});
