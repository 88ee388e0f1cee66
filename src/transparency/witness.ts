/**
 * @module transparency/witness
 * Witnessing transparency logs, as c2sp.org/tlog-witness specifies it (v1.0.0, with the status
 * codes of its current text), so that a log cannot show one history to one person and another to
 * the rest, nor roll back or rewrite its tail, without the witnesses refusing to cosign:
 *
 * - {@link Witness}: the witness's side. For each log origin it trusts it keeps the last
 *   checkpoint it cosigned; `add-checkpoint` cosigns a new one only when it is signed by the log's
 *   key and a consistency proof shows it extends that one (RFC 9162 §2.1.4.2). Checking the old
 *   size and storing the new checkpoint are one compare-and-swap, so two submissions racing can
 *   never roll the witness back.
 * - {@link collectCosignatures}: the log owner's side. It sends a checkpoint to each witness with
 *   the proof from the size that witness last cosigned, learns that size from a 409 when it did
 *   not know it, checks each cosignature against the witness's key and stores it.
 *
 * The transport is the caller's (the gateways post over their mutual-TLS connections); this
 * module is plain text in, plain text out.
 */
import { createHash, type KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import { OnceOnlyError } from '../core/errors.ts';
import { rootFromLeaves, verifyConsistency } from '../core/merkle.ts';
import { cosignatureLine, parseNote, verifyNote, type Note, type NoteVerifier } from '../core/note.ts';
import type { Database } from '../store/schema.ts';
import { logOrigin, parseCheckpoint, withSignatures, type SignedTreeHead } from './formats.ts';
import type { TransparencyLog } from './log.ts';

/** tlog-witness §add-checkpoint: "The client MUST NOT send more than 63 consistency proof lines." */
const MAX_PROOF_LINES = 63;
/** Largest request accepted: 63 proof lines and a checkpoint with some signatures fit well within. */
export const MAX_ADD_CHECKPOINT_BYTES = 64 * 1024;
/** tlog-witness §add-checkpoint: the media type of a 409's body. */
export const TLOG_SIZE_TYPE = 'text/x.tlog.size';
const EMPTY_ROOT = rootFromLeaves([]);

/** An answer of the witness: status, media type, body. */
export interface WitnessAnswer {
  status: number;
  contentType: string;
  body: string;
}

const answer = (status: number, body: string, contentType = 'text/plain; charset=utf-8'): WitnessAnswer => ({ status, contentType, body: body.endsWith('\n') ? body : `${body}\n` });

/** Options of {@link Witness}. */
export interface WitnessOptions {
  db: Kysely<Database>;
  /** The witness's key name (c2sp.org/tlog-cosignature: a schema-less URL is recommended). */
  name: string;
  /** Its Ed25519 private key. */
  key: KeyObject;
  /** The log keys trusted for an origin (read at each request: the global configuration changes); undefined for an origin not witnessed. */
  logKeys: (origin: string) => readonly NoteVerifier[] | undefined;
  now?: () => Date;
}

/** A parsed add-checkpoint request body. */
interface AddCheckpoint {
  old: number;
  proof: Buffer[];
  note: Note;
  head: SignedTreeHead;
  origin: string;
}

/**
 * Parses `old N\n`, 0..63 base64 hash lines, a blank line, then the checkpoint (tlog-witness
 * §add-checkpoint). The header ends at the first blank line; the checkpoint has its own.
 */
function parseRequest(body: Buffer): AddCheckpoint | string {
  if (body.length > MAX_ADD_CHECKPOINT_BYTES) return `the request is larger than ${MAX_ADD_CHECKPOINT_BYTES} bytes`;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    return 'the request is not UTF-8';
  }
  const split = text.indexOf('\n\n');
  if (split < 0) return 'the request has no blank line between its header and the checkpoint';
  const header = text.slice(0, split).split('\n');
  const oldLine = /^old (0|[1-9][0-9]{0,15})$/.exec(header[0] ?? '');
  if (!oldLine || !Number.isSafeInteger(Number(oldLine[1]))) return 'the first line must be "old" and the previous size in decimal, without leading zeroes';
  const proofLines = header.slice(1);
  if (proofLines.length > MAX_PROOF_LINES) return `at most ${MAX_PROOF_LINES} consistency proof lines`;
  const proof: Buffer[] = [];
  for (const [i, l] of proofLines.entries()) {
    const h = Buffer.from(l, 'base64');
    if (h.length !== 32 || h.toString('base64') !== l) return `proof line ${i + 1} is not the base64 of a 32-byte hash`;
    proof.push(h);
  }
  const checkpoint = text.slice(split + 2);
  let head: SignedTreeHead;
  let note: Note;
  try {
    head = parseCheckpoint(checkpoint, 'request');
    note = parseNote(checkpoint);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return { old: Number(oldLine[1]), proof, note, head, origin: note.text.slice(0, note.text.indexOf('\n')) };
}

/** The witness side of c2sp.org/tlog-witness, over the store's `transparency_witness` table. */
export class Witness {
  readonly name: string;
  readonly #db: Kysely<Database>;
  readonly #key: KeyObject;
  readonly #logKeys: WitnessOptions['logKeys'];
  readonly #now: () => Date;

  constructor(o: WitnessOptions) {
    this.name = o.name;
    this.#db = o.db;
    this.#key = o.key;
    this.#logKeys = o.logKeys;
    this.#now = o.now ?? (() => new Date());
  }

  /**
   * `POST <prefix>/add-checkpoint`. Statuses as tlog-witness specifies: 404 origin not witnessed,
   * 403 no valid signature of the log's key (or one of its lines fails), 400 malformed or old size
   * beyond the checkpoint, 409 old size not the one last cosigned (its body that size, type
   * text/x.tlog.size), 422 the proof or the empty-tree root does not hold, 200 the cosignature.
   */
  async addCheckpoint(body: Buffer): Promise<WitnessAnswer> {
    const req = parseRequest(body);
    if (typeof req === 'string') return answer(400, req);
    const keys = this.#logKeys(req.origin);
    if (!keys || keys.length === 0) return answer(404, `this witness does not witness the log ${req.origin}`);
    try {
      if (verifyNote(req.note, keys).length === 0) return answer(403, 'the checkpoint carries no signature of the log\'s key');
    } catch {
      return answer(403, 'a signature of the log\'s key on the checkpoint does not verify');
    }
    const { head } = req;
    if (req.old > head.treeSize) return answer(400, `old size ${req.old} is larger than the checkpoint's size ${head.treeSize}`);
    const state = await this.#db.selectFrom('transparency_witness').select(['tree_size', 'root_hash']).where('origin', '=', req.origin).executeTakeFirst();
    const known = state ? Number(state.tree_size) : 0;
    if (req.old !== known) return answer(409, `${known}`, TLOG_SIZE_TYPE);
    const root = Buffer.from(head.rootHash, 'hex');
    if (head.treeSize === 0 && !root.equals(EMPTY_ROOT)) return answer(422, 'a checkpoint of size 0 must have the empty tree\'s root');
    // Every tree extends the empty one: from size 0 there is nothing to prove.
    if (req.old === 0 && req.proof.length > 0) return answer(422, 'no consistency proof is sent from size 0');
    if (state && req.old === head.treeSize) {
      if (!Buffer.from(state.root_hash).equals(root)) return answer(422, `the witness cosigned a different root at size ${head.treeSize}: the log has forked`);
      if (req.proof.length > 0) return answer(422, 'no consistency proof is sent between equal sizes');
    } else if (state && req.old > 0 && !verifyConsistency(req.old, head.treeSize, Buffer.from(state.root_hash), root, req.proof)) {
      return answer(422, `the checkpoint of size ${head.treeSize} does not extend the one of size ${req.old} this witness cosigned: the log was rewritten or rolled back`);
    }
    const time = Math.floor(this.#now().getTime() / 1000);
    const line = cosignatureLine(req.note.text, this.#key, this.name, time);
    const stored = withSignatures(head, [line]).checkpoint;
    const at = this.#now().toISOString();
    // tlog-witness: "The witness MUST persist the new checkpoint before responding", and the
    // check of the old size and the write are one step: a compare-and-swap on the stored size.
    let swapped: bigint | number;
    if (state) {
      const r = await this.#db
        .updateTable('transparency_witness')
        .set({ tree_size: head.treeSize, root_hash: root, checkpoint: stored, updated_at: at })
        .where('origin', '=', req.origin)
        .where('tree_size', '=', known)
        .where('root_hash', '=', Buffer.from(state.root_hash))
        .executeTakeFirst();
      swapped = r.numUpdatedRows;
    } else {
      const r = await this.#db.insertInto('transparency_witness').values({ origin: req.origin, tree_size: head.treeSize, root_hash: root, checkpoint: stored, updated_at: at }).onConflict((oc) => oc.column('origin').doNothing()).executeTakeFirst();
      swapped = r.numInsertedOrUpdatedRows ?? 0n;
    }
    if (Number(swapped) !== 1) {
      const now = await this.#db.selectFrom('transparency_witness').select('tree_size').where('origin', '=', req.origin).executeTakeFirst();
      return answer(409, `${now ? Number(now.tree_size) : 0}`, TLOG_SIZE_TYPE);
    }
    return answer(200, `${line}\n`);
  }

  /**
   * `GET <prefix>/<hex SHA-256 of the origin>/checkpoint` (tlog-witness §Monitoring): the last
   * checkpoint cosigned for that log, with the log's signature and this witness's cosignature.
   */
  async latest(originHash: string): Promise<WitnessAnswer> {
    if (!/^[0-9a-f]{64}$/.test(originHash)) return answer(400, 'the path names a log by the lower-case hex SHA-256 of its origin');
    const rows = await this.#db.selectFrom('transparency_witness').select(['origin', 'checkpoint']).execute();
    const r = rows.find((x) => createHash('sha256').update(x.origin, 'utf8').digest('hex') === originHash);
    return r ? { status: 200, contentType: 'text/plain; charset=utf-8', body: r.checkpoint } : answer(404, 'this witness has cosigned no checkpoint of that log');
  }
}

/** A witness as the log owner knows it: its cosigner key, and how to post to its submission prefix. */
export interface WitnessPeer {
  verifier: NoteVerifier;
  /** POSTs `body` to `<submission prefix>/add-checkpoint`. */
  post: (body: string) => Promise<{ status: number; body: string }>;
}

/** The outcome for one witness. */
export interface CosignOutcome {
  witness: string;
  ok: boolean;
  /** Why not, in words (no personal data: only sizes and statuses). */
  reason?: string;
}

/** The add-checkpoint request body: old size, proof lines, blank line, checkpoint. */
export function addCheckpointBody(old: number, proof: readonly Buffer[], checkpoint: string): string {
  return `old ${old}\n${proof.map((p) => `${p.toString('base64')}\n`).join('')}\n${checkpoint}`;
}

async function cosignOne(log: TransparencyLog, head: SignedTreeHead, peer: WitnessPeer): Promise<CosignOutcome> {
  const witness = peer.verifier.name;
  // Only the log's own signature goes out: the witness need not see the others' cosignatures.
  const note = parseNote(head.checkpoint);
  const own = note.signatures.find((s) => s.name === logOrigin(head.log));
  if (!own) return { witness, ok: false, reason: 'the checkpoint has no signature of the log' };
  const checkpoint = `${note.text}\n${own.line}\n`;
  let old = await log.witnessedSize(witness, peer.verifier.keyId);
  for (let attempt = 0; attempt < 2; attempt++) {
    if (old > head.treeSize) return { witness, ok: false, reason: `the witness has cosigned size ${old}, larger than this checkpoint's ${head.treeSize}` };
    const proof = old > 0 && old < head.treeSize ? await log.consistencyProof(old, head.treeSize) : [];
    const res = await peer.post(addCheckpointBody(old, proof, checkpoint));
    if (res.status === 409 && attempt === 0) {
      // tlog-witness: a client that does not know the witness's size learns it from the 409.
      const m = /^(0|[1-9][0-9]{0,15})\n$/.exec(res.body);
      if (!m) return { witness, ok: false, reason: 'the witness answered 409 without its size' };
      old = Number(m[1]);
      continue;
    }
    if (res.status !== 200) return { witness, ok: false, reason: `the witness answered ${res.status}: ${res.body.trim().slice(0, 200)}` };
    let lines;
    try {
      // tlog-witness: the client "MAY concatenate it to the checkpoint, and use a note verification
      // function configured with the witness keys it trusts".
      lines = verifyNote(parseNote(`${note.text}\n${res.body}`), [peer.verifier]);
    } catch (e) {
      return { witness, ok: false, reason: `its cosignature does not verify: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (lines.length === 0) return { witness, ok: false, reason: 'the witness answered no cosignature of its key' };
    await log.addCosignatures(head, lines.map((l) => ({ witness, keyId: l.verifier.keyId, time: l.time, line: l.line })));
    return { witness, ok: true };
  }
  return { witness, ok: false, reason: 'the witness\'s size changed while it was asked' };
}

/**
 * Sends `head` to each witness that has not cosigned it yet, in parallel, and stores the
 * cosignatures that verify. Never throws for one witness's failure: each outcome says what
 * happened (the caller logs it; a refusal by an honest witness is evidence of a rewritten log).
 */
export async function collectCosignatures(log: TransparencyLog, head: SignedTreeHead, peers: readonly WitnessPeer[]): Promise<CosignOutcome[]> {
  const have = new Set(parseNote(head.checkpoint).signatures.map((s) => `${s.name}\n${s.keyId}`));
  const notYetSigned = peers.filter((p) => !have.has(`${p.verifier.name}\n${p.verifier.keyId}`));
  return Promise.all(
    notYetSigned.map((p) =>
      cosignOne(log, head, p).catch((e: unknown): CosignOutcome => ({ witness: p.verifier.name, ok: false, reason: e instanceof OnceOnlyError ? e.message : `the witness could not be reached (${(e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : 'error')})` })),
    ),
  );
}
