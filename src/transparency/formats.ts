/**
 * @module transparency/formats
 * What a transparency log hands out and what anyone can check offline with nothing but the log's
 * public key and the keys of the witnesses they trust: tree heads as C2SP checkpoints
 * (c2sp.org/tlog-checkpoint, a signed note: origin, size, root, then the log's signature and the
 * witnesses' cosignatures), inclusion and consistency proofs as JSON documents, and the checks
 * themselves. No store is needed here; `onceonly transparency verify`, the tracker and any third
 * party run exactly these functions. The formats are documented in docs/transparency.md.
 *
 * Hashes in the JSON documents are lower-case hex of 32 bytes (in a checkpoint, base64 as the spec
 * says); the hashing is RFC 9162 §2.1 (core/merkle).
 */
import type { KeyObject } from 'node:crypto';
import { importPublicJwk, type Ed25519PublicJwk } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { leafHash, rootFromLeaves, verifyConsistency, verifyInclusion } from '../core/merkle.ts';
import { COSIGNATURE_V1, ED25519, formatNote, noteVerifier, parseNote, signNoteText, verifyNote, type NoteVerifier, type VerifiedSignature } from '../core/note.ts';

/** `format` of an inclusion proof document (2: the tree head is a C2SP checkpoint). */
export const INCLUSION_PROOF_FORMAT = 'onceonly-inclusion-proof-2';
/** `format` of a consistency proof document. */
export const CONSISTENCY_PROOF_FORMAT = 'onceonly-consistency-proof-1';
/** `format` member of every leaf input (log entry). */
export const ENTRY_FORMAT = 'onceonly-tlog-entry-1';

/** A tree head: a checkpoint with its signature lines, and what its text says. */
export interface SignedTreeHead {
  /** The log's name; the checkpoint's origin line is {@link logOrigin}(log). */
  log: string;
  treeSize: number;
  /** MTH of the first `treeSize` entries, hex. */
  rootHash: string;
  /**
   * The checkpoint as a signed note (c2sp.org/signed-note): origin, size and base64 root lines, a
   * blank line, the log's signature line, then any witnesses' cosignature lines.
   */
  checkpoint: string;
}

/** RFC 9162 §2.1.3: that entry `leafIndex` is in the tree a checkpoint commits to. */
export interface InclusionProofDocument {
  format: typeof INCLUSION_PROOF_FORMAT;
  log: string;
  leafIndex: number;
  treeSize: number;
  /** The exact leaf input (canonical JSON text of the log entry); optional when `leafHash` is given. */
  entry?: string;
  /** SHA-256(0x00 || entry), hex; optional when `entry` is given. */
  leafHash?: string;
  /** The audit path, leaf end first, hex. */
  path: string[];
  /** The checkpoint the path leads to, with its cosignatures (the note's text). */
  checkpoint: string;
}

/** RFC 9162 §2.1.4: that the tree of `secondSize` entries extends the tree of `firstSize`. */
export interface ConsistencyProofDocument {
  format: typeof CONSISTENCY_PROOF_FORMAT;
  log: string;
  firstSize: number;
  secondSize: number;
  path: string[];
}

/** A log entry (the leaf input) as parsed back from its text. */
export interface LogEntry {
  format: typeof ENTRY_FORMAT;
  index: number;
  record: unknown;
  time: string;
}

/** The outcome of a check: valid, or why not (in words for a person, naming no personal data). */
export type Verdict = { ok: true; details: string[] } | { ok: false; reason: string; details: string[] };

/** Which witnesses a verifier trusts, and how many of them must have cosigned (tlog-cosignature §Introduction). */
export interface WitnessPolicy {
  witnesses: readonly NoteVerifier[];
  quorum: number;
}

// Log names go into the line-based checkpoint: printable ASCII without spaces, so that no name
// can smuggle in a line break and make one checkpoint read as another.
const LOG_NAME = /^[\x21-\x7e]{1,200}$/;

/** Throws unless `name` is a valid log name. */
export function checkLogName(name: string, field = 'log'): void {
  if (!LOG_NAME.test(name)) throw new OnceOnlyError('invalid_value', `${field} must be 1-200 printable ASCII characters without spaces`, { field, expected: 'e.g. UK/transparency' });
}

/**
 * The checkpoint origin of a log: its name with `%` and `+` percent-encoded, because a key name
 * (which must match the origin, c2sp.org/tlog-checkpoint §Signatures) may not contain `+`, and
 * identifiers may (PR-REST §4.8).
 */
export function logOrigin(log: string): string {
  checkLogName(log);
  return log.replace(/[%+]/g, (c) => (c === '%' ? '%25' : '%2B'));
}

/** The log name of an origin; undefined when it is not one {@link logOrigin} makes. */
export function logFromOrigin(origin: string): string | undefined {
  if (!/^[\x21-\x2a\x2c-\x7e]{1,600}$/.test(origin) || /%(?!25|2B)/.test(origin)) return undefined;
  const log = origin.replace(/%25|%2B/g, (c) => (c === '%25' ? '%' : '+'));
  return LOG_NAME.test(log) ? log : undefined;
}

/** The checkpoint body (c2sp.org/tlog-checkpoint): origin, decimal size, base64 root, each line ending in a newline. */
export function checkpointText(log: string, treeSize: number, rootHash: Buffer): string {
  return `${logOrigin(log)}\n${treeSize}\n${rootHash.toString('base64')}\n`;
}

/** The verifier of a log's checkpoint signatures: key name = origin, type Ed25519 (0x01). */
export function logVerifier(log: string, key: Ed25519PublicJwk): NoteVerifier {
  return noteVerifier(logOrigin(log), ED25519, Buffer.from(key.x, 'base64url'));
}

/** The verifier of a witness's cosignatures (type 0x04, c2sp.org/tlog-cosignature). */
export function witnessVerifier(name: string, key: Ed25519PublicJwk): NoteVerifier {
  return noteVerifier(name, COSIGNATURE_V1, Buffer.from(key.x, 'base64url'));
}

/**
 * The leaf input of entry `index`: canonical JSON (RFC 8785) of `{format, index, record, time}`.
 * The index and the time are inside what is hashed, so an entry moved to another position, or
 * given another time, no longer matches its leaf hash. `recordJson` must already be canonical JSON.
 */
export function leafInput(index: number, time: string, recordJson: string): string {
  // Members in sorted order, so this is the canonical form of the whole object.
  return `{"format":"${ENTRY_FORMAT}","index":${index},"record":${recordJson},"time":${JSON.stringify(time)}}`;
}

/** Parses a leaf input; undefined when it is not a log entry of this format. */
export function parseEntry(text: string): LogEntry | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (o['format'] !== ENTRY_FORMAT || !Number.isSafeInteger(o['index']) || typeof o['time'] !== 'string' || !('record' in o)) return undefined;
  return { format: ENTRY_FORMAT, index: o['index'] as number, record: o['record'], time: o['time'] };
}

/** Signs a checkpoint with the log's Ed25519 private key (the log's key name is the origin). */
export function signTreeHead(key: KeyObject, log: string, treeSize: number, rootHash: Buffer): SignedTreeHead {
  const text = checkpointText(log, treeSize, rootHash);
  return { log, treeSize, rootHash: rootHash.toString('hex'), checkpoint: formatNote(text, [signNoteText(text, key, logOrigin(log))]) };
}

/** The head with these signature lines added after its own (lines it already has are not repeated). */
export function withSignatures(head: SignedTreeHead, lines: readonly string[]): SignedTreeHead {
  const note = parseNote(head.checkpoint);
  const have = note.signatures.map((s) => s.line);
  return { ...head, checkpoint: formatNote(note.text, [...have, ...lines.filter((l) => !have.includes(l))]) };
}

// ---- parsing (typed errors naming the file and the field) ----

function bad(file: string, field: string, expected: string, got?: unknown): OnceOnlyError {
  const shown = got === undefined ? 'missing' : `got ${JSON.stringify(got)?.slice(0, 80) ?? typeof got}`;
  return new OnceOnlyError('invalid_file', `${file}: ${field} must be ${expected} (${shown})`, { file, field, expected });
}

function obj(v: unknown, file: string, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(file, field, 'a JSON object', v);
  return v as Record<string, unknown>;
}

function str(o: Record<string, unknown>, k: string, file: string, prefix: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw bad(file, `${prefix}${k}`, 'a string', v);
  return v;
}

function size(o: Record<string, unknown>, k: string, file: string, prefix: string, min: number): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw bad(file, `${prefix}${k}`, `a whole number >= ${min}`, v);
  return v;
}

const HEX32 = /^[0-9a-f]{64}$/;
function hash(v: unknown, file: string, field: string): string {
  if (typeof v !== 'string' || !HEX32.test(v)) throw bad(file, field, '64 lower-case hex digits (a SHA-256 hash)', v);
  return v;
}

function hashes(v: unknown, file: string, field: string): string[] {
  if (!Array.isArray(v)) throw bad(file, field, 'an array of hashes', v);
  if (v.length > 64) throw bad(file, field, 'at most 64 hashes (a proof has one per tree level)', `${v.length} hashes`);
  return v.map((h, i) => hash(h, file, `${field}[${i}]`));
}

function format(o: Record<string, unknown>, want: string, file: string, prefix: string): void {
  if (o['format'] !== want) throw bad(file, `${prefix}format`, JSON.stringify(want), o['format']);
}

/** Reads an Ed25519 public JWK; a typed error naming `file` and `field` otherwise. */
export function parsePublicJwk(v: unknown, file: string, field = '$'): Ed25519PublicJwk {
  const o = obj(v, file, field);
  const p = field === '$' ? '' : `${field}.`;
  if (o['kty'] !== 'OKP') throw bad(file, `${p}kty`, '"OKP"', o['kty']);
  if (o['crv'] !== 'Ed25519') throw bad(file, `${p}crv`, '"Ed25519"', o['crv']);
  const x = str(o, 'x', file, p);
  if (!/^[A-Za-z0-9_-]{43}$/.test(x)) throw bad(file, `${p}x`, 'a 32-byte Ed25519 public key, base64url without padding', x);
  const jwk: Ed25519PublicJwk = { kty: 'OKP', crv: 'Ed25519', x };
  try {
    importPublicJwk(jwk);
  } catch {
    throw bad(file, `${p}x`, 'a valid Ed25519 public key', x);
  }
  return jwk;
}

/**
 * Reads a checkpoint (c2sp.org/tlog-checkpoint): a signed note whose text has at least three
 * non-empty lines, origin, size without leading zeroes, base64 of a 32-byte root. Signatures are
 * checked by {@link verifyTreeHead}, not here.
 */
export function parseCheckpoint(text: string | Buffer, file: string, field = 'checkpoint'): SignedTreeHead {
  const expected = 'a C2SP checkpoint: origin, size and root hash lines, a blank line, signature lines';
  let note;
  try {
    note = parseNote(text, field);
  } catch (e) {
    throw bad(file, field, expected, e instanceof Error ? e.message : String(e));
  }
  const lines = note.text.slice(0, -1).split('\n');
  if (lines.length < 3 || lines.some((l) => l.length === 0)) throw bad(file, field, expected, 'fewer than three non-empty lines');
  const [origin, sizeLine, rootLine] = lines as [string, string, string];
  const log = logFromOrigin(origin);
  if (log === undefined) throw bad(file, `${field}.origin`, 'the origin of an onceonly log (printable ASCII, % and + percent-encoded)', origin);
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeLine) || !Number.isSafeInteger(Number(sizeLine))) throw bad(file, `${field}.size`, 'a decimal tree size without leading zeroes', sizeLine);
  const root = Buffer.from(rootLine, 'base64');
  if (root.length !== 32 || root.toString('base64') !== rootLine) throw bad(file, `${field}.rootHash`, 'the base64 of a 32-byte SHA-256 root hash', rootLine);
  if (lines.length > 3) throw bad(file, field, 'a checkpoint without extension lines (onceonly logs write none, and they are not auditable)', `${lines.length - 3} extension line(s)`);
  return { log, treeSize: Number(sizeLine), rootHash: root.toString('hex'), checkpoint: typeof text === 'string' ? text : text.toString('utf8') };
}

/** Reads an inclusion proof document. */
export function parseInclusionProof(v: unknown, file: string): InclusionProofDocument {
  const o = obj(v, file, '$');
  format(o, INCLUSION_PROOF_FORMAT, file, '');
  const checkpoint = str(o, 'checkpoint', file, '');
  parseCheckpoint(checkpoint, file);
  const doc: InclusionProofDocument = {
    format: INCLUSION_PROOF_FORMAT,
    log: str(o, 'log', file, ''),
    leafIndex: size(o, 'leafIndex', file, '', 0),
    treeSize: size(o, 'treeSize', file, '', 1),
    path: hashes(o['path'], file, 'path'),
    checkpoint,
  };
  if (o['entry'] !== undefined) doc.entry = str(o, 'entry', file, '');
  if (o['leafHash'] !== undefined) doc.leafHash = hash(o['leafHash'], file, 'leafHash');
  if (doc.entry === undefined && doc.leafHash === undefined) throw bad(file, 'leafHash', 'given (or entry): the proof must say which leaf it proves');
  return doc;
}

/** Reads a consistency proof document. */
export function parseConsistencyProof(v: unknown, file: string): ConsistencyProofDocument {
  const o = obj(v, file, '$');
  format(o, CONSISTENCY_PROOF_FORMAT, file, '');
  return {
    format: CONSISTENCY_PROOF_FORMAT,
    log: str(o, 'log', file, ''),
    firstSize: size(o, 'firstSize', file, '', 1),
    secondSize: size(o, 'secondSize', file, '', 1),
    path: hashes(o['path'], file, 'path'),
  };
}

// ---- verification ----

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const EMPTY_ROOT = rootFromLeaves([]).toString('hex');
const fail = (reason: string, details: string[] = []): Verdict => ({ ok: false, reason, details });
const keyName = (v: NoteVerifier): string => v.name;

/**
 * Checks a checkpoint: its text is the head's, the log's own key signed it, and (with a policy) at
 * least `quorum` of the trusted witnesses cosigned it. Signature lines of keys not trusted are
 * ignored; a line of a trusted key that does not verify makes the checkpoint invalid
 * (c2sp.org/signed-note §Verifying). A quorum is what makes a split view (one log shown to one
 * person, another to the rest) visible: each witness cosigns only a tree consistent with the
 * last one it cosigned.
 */
export function verifyTreeHead(head: SignedTreeHead, logKey: NoteVerifier, policy?: WitnessPolicy): Verdict {
  let parsed: SignedTreeHead;
  try {
    parsed = parseCheckpoint(head.checkpoint, 'checkpoint');
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  if (parsed.log !== head.log || parsed.treeSize !== head.treeSize || parsed.rootHash !== head.rootHash) {
    return fail(`the checkpoint says ${parsed.log} at size ${parsed.treeSize}, root ${parsed.rootHash}; the head beside it says ${head.log} at size ${head.treeSize}, root ${head.rootHash}`);
  }
  if (logKey.name !== logOrigin(head.log)) return fail(`the key given is for ${logKey.name}, the checkpoint is of ${logOrigin(head.log)}`);
  // The log's own key cannot vouch for the log, under whatever name or type it cosigns.
  const witnesses = policy?.witnesses.filter((w) => !w.publicKey.equals(logKey.publicKey)) ?? [];
  let verified: VerifiedSignature[];
  try {
    verified = verifyNote(parseNote(head.checkpoint), [logKey, ...witnesses]);
  } catch (e) {
    return fail(`${e instanceof Error ? e.message : String(e)}: the checkpoint was altered, or a key changed`);
  }
  if (!verified.some((s) => s.verifier === logKey)) return fail(`the checkpoint of ${head.log} at size ${head.treeSize} carries no signature by the log's key ${logKey.name}+${logKey.keyId.toString(16).padStart(8, '0')}`);
  const details = [`checkpoint of ${head.log}: size ${head.treeSize}, root ${head.rootHash}, signed by the log's key`];
  if (!policy) return { ok: true, details };
  const cosigners = verified.filter((s) => s.verifier !== logKey);
  for (const c of cosigners) details.push(`cosigned by ${c.verifier.name} at ${new Date(c.time * 1000).toISOString()}`);
  if (cosigners.length < policy.quorum) {
    return fail(
      `the checkpoint of ${head.log} at size ${head.treeSize} is cosigned by ${cosigners.length} of the ${witnesses.length} witnesses trusted (${witnesses.map(keyName).join(', ') || 'none'}); ${policy.quorum} are required: without them nothing shows that others were shown the same log`,
      details,
    );
  }
  details.push(`${cosigners.length} witness cosignature(s), quorum ${policy.quorum}`);
  return { ok: true, details };
}

/** Checks an inclusion proof: the checkpoint (and its quorum), the leaf, and the path to the signed root. */
export function verifyInclusionProof(doc: InclusionProofDocument, logKey: NoteVerifier, policy?: WitnessPolicy): Verdict {
  let head: SignedTreeHead;
  try {
    head = parseCheckpoint(doc.checkpoint, 'proof');
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  const v = verifyTreeHead(head, logKey, policy);
  if (!v.ok) return v;
  const details = [...v.details];
  if (doc.log !== head.log) return fail(`the proof is for log ${doc.log} but its checkpoint is of log ${head.log}`, details);
  if (doc.treeSize !== head.treeSize) return fail(`the proof is for a tree of ${doc.treeSize} entries but the checkpoint is of ${head.treeSize}`, details);
  if (doc.leafIndex >= doc.treeSize) return fail(`entry ${doc.leafIndex} is outside a tree of ${doc.treeSize} entries`, details);
  let leaf: Buffer;
  if (doc.entry !== undefined) {
    leaf = leafHash(doc.entry);
    if (doc.leafHash !== undefined && doc.leafHash !== leaf.toString('hex')) return fail(`the entry hashes to ${leaf.toString('hex')}, not to the leafHash given (${doc.leafHash})`, details);
    const e = parseEntry(doc.entry);
    if (!e) return fail(`the entry is not a log entry (${ENTRY_FORMAT})`, details);
    // The index inside the hashed entry pins its position: the same entry cannot be shown elsewhere.
    if (e.index !== doc.leafIndex) return fail(`the entry says it is entry ${e.index}, but the proof is for position ${doc.leafIndex}`, details);
    details.push(`entry ${doc.leafIndex}, appended at ${e.time}`);
  } else {
    leaf = hex(doc.leafHash!);
    details.push(`leaf hash ${doc.leafHash} (the entry itself was not given)`);
  }
  if (!verifyInclusion(doc.leafIndex, doc.treeSize, leaf, doc.path.map(hex), hex(head.rootHash))) {
    return fail(`the audit path does not lead from entry ${doc.leafIndex} to the signed root of size ${doc.treeSize}`, details);
  }
  details.push(`entry ${doc.leafIndex} is included in the tree of ${doc.treeSize} entries (${doc.path.length} hashes)`);
  return { ok: true, details };
}

/**
 * Checks that `newer` extends `older`: both signed by the log's key, the same log, no shrinking,
 * and (sizes differing) the consistency proof between them (RFC 9162 §2.1.4.2). This is the check
 * each witness makes before it cosigns; anyone holding two checkpoints can make it too.
 */
export function verifyExtends(older: SignedTreeHead, newer: SignedTreeHead, proof: ConsistencyProofDocument | undefined, logKey: NoteVerifier): Verdict {
  const a = verifyTreeHead(older, logKey);
  if (!a.ok) return fail(`older checkpoint: ${a.reason}`, a.details);
  const b = verifyTreeHead(newer, logKey);
  if (!b.ok) return fail(`newer checkpoint: ${b.reason}`, [...a.details, ...b.details]);
  const details = [...new Set([...a.details, ...b.details])];
  if (older.log !== newer.log) return fail(`the checkpoints are of different logs (${older.log}, ${newer.log})`, details);
  if (newer.treeSize < older.treeSize) return fail(`the newer checkpoint has fewer entries (${newer.treeSize}) than the older (${older.treeSize})`, details);
  if (older.treeSize === newer.treeSize) {
    if (older.rootHash !== newer.rootHash) return fail(`two signed checkpoints of size ${older.treeSize} have different roots: the log has been forked or rewritten`, details);
    details.push(`both checkpoints are of size ${older.treeSize} with the same root`);
    return { ok: true, details };
  }
  if (older.treeSize === 0) {
    if (older.rootHash !== EMPTY_ROOT) return fail(`the older checkpoint is of the empty tree but its root is not the empty tree's hash`, details);
    details.push('the older checkpoint is of the empty tree, which every tree extends');
    return { ok: true, details };
  }
  if (!proof) return fail(`a consistency proof from size ${older.treeSize} to ${newer.treeSize} is needed`, details);
  if (proof.log !== older.log) return fail(`the consistency proof is for log ${proof.log}, not ${older.log}`, details);
  if (proof.firstSize !== older.treeSize || proof.secondSize !== newer.treeSize) {
    return fail(`the consistency proof is from size ${proof.firstSize} to ${proof.secondSize}, the checkpoints are of sizes ${older.treeSize} and ${newer.treeSize}`, details);
  }
  if (!verifyConsistency(older.treeSize, newer.treeSize, hex(older.rootHash), hex(newer.rootHash), proof.path.map(hex))) {
    return fail(`the tree of ${newer.treeSize} entries does not extend the tree of ${older.treeSize} that was signed: the older entries were rewritten, or the proof is wrong`, details);
  }
  details.push(`the tree of ${newer.treeSize} entries extends the tree of ${older.treeSize} (${proof.path.length} hashes)`);
  return { ok: true, details };
}
