/**
 * @module core/note
 * C2SP signed notes (c2sp.org/signed-note@v1.0.0) with Ed25519 signatures, and timestamped
 * Ed25519 cosignatures of checkpoints (c2sp.org/tlog-cosignature, `cosignature/v1`): the text
 * formats transparency logs and witnesses already speak (Go's golang.org/x/mod/sumdb/note,
 * transparency-dev/witness, litewitness), so that their tools read our tree heads unchanged.
 *
 * Written here because no maintained Node package implements signed notes; the byte rules below
 * follow the spec text section by section and are checked against its published test vector.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { OnceOnlyError } from './errors.ts';

/** signed-note §Signatures: the type byte that goes into an Ed25519 key's ID. */
export const ED25519 = 0x01;
/** tlog-cosignature: the type byte of a timestamped Ed25519 checkpoint cosignature. */
export const COSIGNATURE_V1 = 0x04;
export type SignatureType = typeof ED25519 | typeof COSIGNATURE_V1;

/** signed-note: "Verifiers … MUST accept at least up to 16 signatures"; more than this many is refused. */
export const MAX_SIGNATURES = 100;
/** The em dash and space that open every signature line (U+2014 U+0020). */
const LINE_PREFIX = '\u2014 ';
const COSIGNATURE_LENGTH = 8 + 64;
const MAX_TIMESTAMP = 2n ** 63n - 1n;

/** One signature line of a note, decoded. */
export interface NoteSignature {
  name: string;
  /** The 32-bit key ID (big-endian first four bytes of the decoded signature). */
  keyId: number;
  /** The bytes after the key ID. */
  signature: Buffer;
  /** The line as it stands in the note, without its newline. */
  line: string;
}

/** A parsed note: its text (ending in a newline) and its signature lines, in order. */
export interface Note {
  text: string;
  signatures: NoteSignature[];
}

/** A key a verifier trusts: what it is called, its ID, and how to check one of its signatures. */
export interface NoteVerifier {
  name: string;
  keyId: number;
  type: SignatureType;
  /** The raw 32-byte Ed25519 public key. */
  publicKey: Buffer;
  /** For a cosigner, the timestamp it signed; for a log key, 0n. Undefined when it does not verify. */
  verify(text: string, signature: Buffer): bigint | undefined;
}

const invalid = (message: string, field = 'note', expected = 'a C2SP signed note (c2sp.org/signed-note)'): OnceOnlyError => new OnceOnlyError('invalid_value', message, { field, expected });

/** signed-note §Format: "Key names MUST be non-empty and MUST NOT contain any Unicode spaces or plus (U+002B) characters." */
export function isKeyName(name: string): boolean {
  // \p{White_Space} is Go's unicode.IsSpace (JS's \s misses some); control characters are
  // forbidden in the whole note anyway.
  return name.length > 0 && !/[\p{White_Space}+]/u.test(name) && !hasControl(name, false);
}

/** signed-note §Format: no ASCII control character (below U+0020) other than, where allowed, newline. */
function hasControl(s: string, newlineAllowed: boolean): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && !(newlineAllowed && c === 0x0a)) return true;
  }
  return false;
}

/** The raw 32-byte public key of an Ed25519 key object (public or private). */
export function rawEd25519(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw invalid('the key is not an Ed25519 key', 'key', 'an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

function ed25519Key(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** signed-note §Signatures: key ID = SHA-256(name || 0x0A || type || public key)[:4], big-endian. */
export function noteKeyId(name: string, type: SignatureType, publicKey: Buffer): number {
  return createHash('sha256').update(name, 'utf8').update(Buffer.from([0x0a, type])).update(publicKey).digest().readUInt32BE(0);
}

/** A key ID as the eight lower-case hex digits of a verifier key. */
export const keyIdHex = (id: number): string => id.toString(16).padStart(8, '0');

/** signed-note §Verifier keys: `name+hex(key ID)+base64(type || public key)`. */
export function formatVerifierKey(name: string, type: SignatureType, publicKey: Buffer): string {
  if (!isKeyName(name)) throw invalid(`key name ${JSON.stringify(name.slice(0, 80))} has a space or a plus`, 'name', 'a key name without spaces or +');
  return `${name}+${keyIdHex(noteKeyId(name, type, publicKey))}+${Buffer.concat([Buffer.from([type]), publicKey]).toString('base64')}`;
}

// RFC 4648 §4 standard alphabet, padded; Node's decoder alone would accept junk.
function strictBase64(s: string): Buffer | undefined {
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}

/** The verifier of one key of either type. */
export function noteVerifier(name: string, type: SignatureType, publicKey: Buffer): NoteVerifier {
  if (!isKeyName(name)) throw invalid(`key name ${JSON.stringify(name.slice(0, 80))} has a space or a plus`, 'name', 'a key name without spaces or +');
  if (publicKey.length !== 32) throw invalid('an Ed25519 public key is 32 bytes', 'publicKey', '32 bytes');
  const key = ed25519Key(publicKey);
  const keyId = noteKeyId(name, type, publicKey);
  if (type === ED25519) {
    return { name, keyId, type, publicKey, verify: (text, sig) => (sig.length === 64 && verify(null, Buffer.from(text, 'utf8'), key, sig) ? 0n : undefined) };
  }
  return {
    name,
    keyId,
    type,
    publicKey,
    verify: (text, sig) => {
      // tlog-cosignature: 8-byte big-endian timestamp then the 64-byte signature, nothing else.
      if (sig.length !== COSIGNATURE_LENGTH) return undefined;
      const time = sig.readBigUInt64BE(0);
      if (time > MAX_TIMESTAMP) return undefined;
      return verify(null, cosignedMessage(text, time), key, sig.subarray(8)) ? time : undefined;
    },
  };
}

/** Parses a verifier key (`name+hex+base64`), recomputing its ID: a key whose ID does not match is refused. */
export function parseVerifierKey(text: string, field = 'key'): NoteVerifier {
  const expected = 'a verifier key NAME+KEYID+BASE64 (c2sp.org/signed-note)';
  // The name has no '+', standard base64 may: split at the first two only.
  const a = text.indexOf('+');
  const b = a < 0 ? -1 : text.indexOf('+', a + 1);
  if (a <= 0 || b < 0) throw invalid(`${field} is not a verifier key`, field, expected);
  const name = text.slice(0, a);
  const id = text.slice(a + 1, b);
  const material = strictBase64(text.slice(b + 1));
  if (!/^[0-9a-f]{8}$/.test(id) || !material || material.length !== 33) throw invalid(`${field} is not an Ed25519 verifier key`, field, expected);
  const type = material[0];
  if (type !== ED25519 && type !== COSIGNATURE_V1) throw invalid(`${field} has signature type 0x${(type ?? 0).toString(16)}; 0x01 (Ed25519) and 0x04 (cosignature/v1) are supported`, field, expected);
  const v = noteVerifier(name, type, material.subarray(1));
  if (keyIdHex(v.keyId) !== id) throw invalid(`${field}: its key ID ${id} is not the one its name and key give (${keyIdHex(v.keyId)})`, field, expected);
  return v;
}

/**
 * Parses a signed note (signed-note §Format): valid UTF-8 without control characters other than
 * newline, the text up to the last blank line, then one or more well-formed signature lines.
 */
export function parseNote(input: string | Buffer, field = 'note'): Note {
  let msg: string;
  if (typeof input === 'string') msg = input;
  else {
    try {
      // ignoreBOM: a leading BOM is a character of the note, not something to strip silently.
      msg = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw invalid(`${field} is not valid UTF-8`, field);
    }
  }
  if (hasControl(msg, true)) throw invalid(`${field} contains a control character other than newline`, field);
  // In u-mode a surrogate pair is one code point: \p{Cs} matches only a lone surrogate.
  if (/\p{Cs}/u.test(msg)) throw invalid(`${field} is not valid Unicode text`, field);
  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw invalid(`${field} has no blank line before its signatures`, field);
  const text = msg.slice(0, split + 1);
  const sigs = msg.slice(split + 2);
  if (sigs.length === 0 || !sigs.endsWith('\n')) throw invalid(`${field} has no signature lines, or its last line does not end in a newline`, field);
  const lines = sigs.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw invalid(`${field} has ${lines.length} signatures; at most ${MAX_SIGNATURES} are accepted`, field);
  const signatures = lines.map((line, i) => {
    if (!line.startsWith(LINE_PREFIX)) throw invalid(`${field}: signature line ${i + 1} does not start with an em dash and a space`, field);
    const rest = line.slice(LINE_PREFIX.length);
    const sp = rest.indexOf(' ');
    const name = sp < 0 ? '' : rest.slice(0, sp);
    const bytes = sp < 0 ? undefined : strictBase64(rest.slice(sp + 1));
    if (!isKeyName(name)) throw invalid(`${field}: signature line ${i + 1} has no valid key name`, field);
    if (!bytes || bytes.length < 5) throw invalid(`${field}: signature line ${i + 1} is not base64 of a key ID and a signature`, field);
    return { name, keyId: bytes.readUInt32BE(0), signature: bytes.subarray(4), line };
  });
  return { text, signatures };
}

/** The note: text, blank line, signature lines. */
export function formatNote(text: string, lines: readonly string[]): string {
  return `${text}\n${lines.map((l) => `${l}\n`).join('')}`;
}

/** One signature line: `— name base64(keyID || signature)`. */
export function signatureLine(name: string, keyId: number, signature: Buffer): string {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(keyId >>> 0);
  return `${LINE_PREFIX}${name} ${Buffer.concat([id, signature]).toString('base64')}`;
}

/** signed-note §Ed25519: the signature line of `key` under `name` over the note text. */
export function signNoteText(text: string, key: KeyObject, name: string): string {
  if (!text.endsWith('\n')) throw invalid('a note text ends in a newline', 'text', 'text ending in \\n');
  return signatureLine(name, noteKeyId(name, ED25519, rawEd25519(key)), sign(null, Buffer.from(text, 'utf8'), key));
}

/** tlog-cosignature §Ed25519: "cosignature/v1\n", "time T\n", then the checkpoint's note text. */
function cosignedMessage(checkpointText: string, time: bigint): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${time.toString()}\n${checkpointText}`, 'utf8');
}

/** A cosignature line (type 0x04) of `checkpointText` at POSIX second `time`. */
export function cosignatureLine(checkpointText: string, key: KeyObject, name: string, time: number): string {
  if (!(Number.isSafeInteger(time) && time > 0)) throw invalid('a cosignature timestamp is a positive whole number of seconds', 'time', 'seconds since 1970');
  const t = BigInt(time);
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(t);
  return signatureLine(name, noteKeyId(name, COSIGNATURE_V1, rawEd25519(key)), Buffer.concat([ts, sign(null, cosignedMessage(checkpointText, t), key)]));
}

/** A verified signature: the key that made it and, for a cosignature, when. */
export interface VerifiedSignature {
  verifier: NoteVerifier;
  /** Seconds since 1970 for a cosignature; 0 for a plain signature. */
  time: number;
  line: string;
}

/**
 * Checks a note's signatures against the keys trusted (signed-note §Verifying): lines of unknown
 * keys are ignored (a key is its name and ID together); a line of a known key that does not verify
 * rejects the whole note; each key counts once. Returns the verified signatures, possibly none:
 * the caller decides which of them it needs.
 */
export function verifyNote(note: Note, verifiers: readonly NoteVerifier[]): VerifiedSignature[] {
  const out: VerifiedSignature[] = [];
  const seen = new Set<string>();
  for (const s of note.signatures) {
    const v = verifiers.find((k) => k.name === s.name && k.keyId === s.keyId);
    if (!v) continue;
    const id = `${v.name}\n${v.keyId}`;
    if (seen.has(id)) continue;
    const time = v.verify(note.text, s.signature);
    if (time === undefined) throw new OnceOnlyError('invalid_signature', `the signature of ${s.name} (key ${keyIdHex(s.keyId)}) on the note does not verify`, { field: 'note', key: `${s.name}+${keyIdHex(s.keyId)}` });
    seen.add(id);
    out.push({ verifier: v, time: Number(time), line: s.line });
  }
  return out;
}
