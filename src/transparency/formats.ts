/**
 * @module transparency/formats
 * What a transparency log hands out and what anyone can check offline with nothing but the log's
 * public key: signed tree heads, inclusion proofs and consistency proofs as JSON documents, the
 * exact bytes a tree head signature covers, and the checks themselves. No store is needed here;
 * `onceonly transparency verify` and any third party run exactly these functions. The formats are
 * documented in docs/transparency.md.
 *
 * Hashes are lower-case hex of 32 bytes; the hashing is RFC 9162 §2.1 (core/merkle).
 */
import { createHash, type KeyObject } from 'node:crypto';
import { importPublicJwk, publicJwk, signEd25519, verifyEd25519, type Ed25519PublicJwk } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { leafHash, rootFromLeaves, verifyConsistency, verifyInclusion } from '../core/merkle.ts';

/** `format` of a signed tree head document, and the first line of the message it signs. */
export const TREE_HEAD_FORMAT = 'onceonly-tree-head-1';
/** `format` of an inclusion proof document. */
export const INCLUSION_PROOF_FORMAT = 'onceonly-inclusion-proof-1';
/** `format` of a consistency proof document. */
export const CONSISTENCY_PROOF_FORMAT = 'onceonly-consistency-proof-1';
/** `format` member of every leaf input (log entry). */
export const ENTRY_FORMAT = 'onceonly-tlog-entry-1';

/** A signed tree head (RFC 9162 §4.10's tree head, signed with Ed25519 instead of inside a TLS structure). */
export interface SignedTreeHead {
  format: typeof TREE_HEAD_FORMAT;
  /** The log's name (its origin): a head of one log can never pass for another's. */
  log: string;
  treeSize: number;
  /** MTH of the first `treeSize` entries, hex. */
  rootHash: string;
  /** When it was signed, UTC ISO 8601 with milliseconds. */
  timestamp: string;
  /** RFC 7638 JWK thumbprint (SHA-256, base64url) of the signing key. */
  keyId: string;
  /** Ed25519 over {@link treeHeadMessage}, base64url. */
  signature: string;
  /** The log's public key, for convenience: a verifier should pin the key it trusts (`--key`). */
  publicKey?: Ed25519PublicJwk;
}

/** RFC 9162 §2.1.3: that entry `leafIndex` is in the tree a signed head commits to. */
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
  treeHead: SignedTreeHead;
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

// Log names go into a line-based signed message: printable ASCII without spaces, so that no name
// can smuggle in a line break and make one message read as another.
const LOG_NAME = /^[\x21-\x7e]{1,200}$/;

/** Throws unless `name` is a valid log name. */
export function checkLogName(name: string, field = 'log'): void {
  if (!LOG_NAME.test(name)) throw new OnceOnlyError('invalid_value', `${field} must be 1-200 printable ASCII characters without spaces`, { field, expected: 'e.g. UK/transparency' });
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

/** The exact bytes a tree head signature covers: one field per line, after a context line. */
export function treeHeadMessage(log: string, treeSize: number, rootHash: string, timestamp: string): string {
  return `${TREE_HEAD_FORMAT}\n${log}\n${treeSize}\n${rootHash}\n${timestamp}\n`;
}

/** RFC 7638 thumbprint of an Ed25519 public JWK: SHA-256 of its required members in order, base64url. */
export function keyId(jwk: Ed25519PublicJwk): string {
  return createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${jwk.x}"}`).digest('base64url');
}

/** Signs a tree head with the log's Ed25519 private key. */
export function signTreeHead(key: KeyObject, log: string, treeSize: number, rootHash: Buffer, timestamp: string): SignedTreeHead {
  const pub = publicJwk(key);
  const root = rootHash.toString('hex');
  return {
    format: TREE_HEAD_FORMAT,
    log,
    treeSize,
    rootHash: root,
    timestamp,
    keyId: keyId(pub),
    signature: signEd25519(key, treeHeadMessage(log, treeSize, root, timestamp)),
    publicKey: pub,
  };
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

/** Reads a signed tree head document (or the `treeHead` member of a proof, with `field`). */
export function parseTreeHead(v: unknown, file: string, field = '$'): SignedTreeHead {
  const o = obj(v, file, field);
  const p = field === '$' ? '' : `${field}.`;
  format(o, TREE_HEAD_FORMAT, file, p);
  const log = str(o, 'log', file, p);
  if (!LOG_NAME.test(log)) throw bad(file, `${p}log`, '1-200 printable ASCII characters without spaces', log);
  const timestamp = str(o, 'timestamp', file, p);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(timestamp) || Number.isNaN(Date.parse(timestamp))) throw bad(file, `${p}timestamp`, 'a UTC instant like 2026-01-31T12:00:00.000Z', timestamp);
  const signature = str(o, 'signature', file, p);
  if (!/^[A-Za-z0-9_-]{86}$/.test(signature)) throw bad(file, `${p}signature`, 'an Ed25519 signature, base64url without padding', signature);
  const head: SignedTreeHead = {
    format: TREE_HEAD_FORMAT,
    log,
    treeSize: size(o, 'treeSize', file, p, 0),
    rootHash: hash(o['rootHash'], file, `${p}rootHash`),
    timestamp,
    keyId: str(o, 'keyId', file, p),
    signature,
  };
  if (o['publicKey'] !== undefined) head.publicKey = parsePublicJwk(o['publicKey'], file, `${p}publicKey`);
  return head;
}

/** Reads an inclusion proof document. */
export function parseInclusionProof(v: unknown, file: string): InclusionProofDocument {
  const o = obj(v, file, '$');
  format(o, INCLUSION_PROOF_FORMAT, file, '');
  const doc: InclusionProofDocument = {
    format: INCLUSION_PROOF_FORMAT,
    log: str(o, 'log', file, ''),
    leafIndex: size(o, 'leafIndex', file, '', 0),
    treeSize: size(o, 'treeSize', file, '', 1),
    path: hashes(o['path'], file, 'path'),
    treeHead: parseTreeHead(o['treeHead'], file, 'treeHead'),
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

/**
 * Checks a tree head's signature with `key` (the key the verifier trusts) or, when none is given,
 * with the key the head carries, which only shows the head is self-consistent; the details say so.
 */
export function verifyTreeHead(head: SignedTreeHead, key?: Ed25519PublicJwk): Verdict {
  const jwk = key ?? head.publicKey;
  const details: string[] = [];
  if (!jwk) return fail('no public key to check the signature with: give the log\'s key (--key), or a head that carries publicKey');
  if (!key) details.push('the key was taken from the head itself: compare its keyId with the log\'s published key id');
  const id = keyId(jwk);
  if (head.keyId !== id) return fail(`the head names key ${head.keyId}, but the key given is ${id}`, details);
  if (head.publicKey && key && keyId(head.publicKey) !== id) return fail(`the head carries a public key (${keyId(head.publicKey)}) other than the one trusted (${id})`, details);
  if (!verifyEd25519(importPublicJwk(jwk), treeHeadMessage(head.log, head.treeSize, head.rootHash, head.timestamp), head.signature)) {
    return fail(`the signature of the tree head of ${head.log} at size ${head.treeSize} (signed at ${head.timestamp}) does not verify with key ${id}`, details);
  }
  details.push(`signed tree head of ${head.log}: size ${head.treeSize}, root ${head.rootHash}, signed at ${head.timestamp} by key ${id}`);
  return { ok: true, details };
}

/** Checks an inclusion proof: the head's signature, the leaf, and the path to the signed root. */
export function verifyInclusionProof(doc: InclusionProofDocument, key?: Ed25519PublicJwk): Verdict {
  const head = verifyTreeHead(doc.treeHead, key);
  if (!head.ok) return head;
  const details = [...head.details];
  if (doc.log !== doc.treeHead.log) return fail(`the proof is for log ${doc.log} but its tree head is of log ${doc.treeHead.log}`, details);
  if (doc.treeSize !== doc.treeHead.treeSize) return fail(`the proof is for a tree of ${doc.treeSize} entries but the signed head is of ${doc.treeHead.treeSize}`, details);
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
  if (!verifyInclusion(doc.leafIndex, doc.treeSize, leaf, doc.path.map(hex), hex(doc.treeHead.rootHash))) {
    return fail(`the audit path does not lead from entry ${doc.leafIndex} to the signed root of size ${doc.treeSize}`, details);
  }
  details.push(`entry ${doc.leafIndex} is included in the tree of ${doc.treeSize} entries (${doc.path.length} hashes)`);
  return { ok: true, details };
}

/**
 * Checks that `newer` extends `older`: both signatures, the same log, no shrinking, time not going
 * backwards, and (sizes differing) the consistency proof between them (RFC 9162 §2.1.4.2).
 */
export function verifyExtends(older: SignedTreeHead, newer: SignedTreeHead, proof: ConsistencyProofDocument | undefined, key?: Ed25519PublicJwk): Verdict {
  const a = verifyTreeHead(older, key);
  if (!a.ok) return fail(`older head: ${a.reason}`, a.details);
  const b = verifyTreeHead(newer, key);
  if (!b.ok) return fail(`newer head: ${b.reason}`, [...a.details, ...b.details]);
  const details = [...new Set([...a.details, ...b.details])];
  if (older.log !== newer.log) return fail(`the heads are of different logs (${older.log}, ${newer.log})`, details);
  if (!key && older.keyId !== newer.keyId) return fail(`the heads are signed by different keys (${older.keyId}, ${newer.keyId}): give the trusted key with --key`, details);
  if (newer.treeSize < older.treeSize) return fail(`the newer head has fewer entries (${newer.treeSize}) than the older (${older.treeSize})`, details);
  if (newer.timestamp < older.timestamp) return fail(`the head of more entries was signed earlier (${newer.timestamp}) than the head of fewer (${older.timestamp})`, details);
  if (older.treeSize === newer.treeSize) {
    if (older.rootHash !== newer.rootHash) return fail(`two signed heads of size ${older.treeSize} have different roots: the log has been forked or rewritten`, details);
    details.push(`both heads are of size ${older.treeSize} with the same root`);
    return { ok: true, details };
  }
  if (older.treeSize === 0) {
    if (older.rootHash !== EMPTY_ROOT) return fail(`the older head is of the empty tree but its root is not the empty tree's hash`, details);
    details.push('the older head is of the empty tree, which every tree extends');
    return { ok: true, details };
  }
  if (!proof) return fail(`a consistency proof from size ${older.treeSize} to ${newer.treeSize} is needed`, details);
  if (proof.log !== older.log) return fail(`the consistency proof is for log ${proof.log}, not ${older.log}`, details);
  if (proof.firstSize !== older.treeSize || proof.secondSize !== newer.treeSize) {
    return fail(`the consistency proof is from size ${proof.firstSize} to ${proof.secondSize}, the heads are of sizes ${older.treeSize} and ${newer.treeSize}`, details);
  }
  if (!verifyConsistency(older.treeSize, newer.treeSize, hex(older.rootHash), hex(newer.rootHash), proof.path.map(hex))) {
    return fail(`the tree of ${newer.treeSize} entries does not extend the tree of ${older.treeSize} that was signed: the older entries were rewritten, or the proof is wrong`, details);
  }
  details.push(`the tree of ${newer.treeSize} entries extends the tree of ${older.treeSize} (${proof.path.length} hashes)`);
  return { ok: true, details };
}
