/**
 * @module transparency/log
 * An append-only Merkle tree log over the store, hashed as RFC 9162 (Certificate Transparency 2.0)
 * §2.1 defines, for the records a person may later want proven: access records and consent events.
 *
 * Storage is the Trillian / CT layout (migration 0005): each entry with its leaf hash, the hash of
 * every complete subtree above the leaves by (level, index), and the signed tree heads. So:
 * - an append computes only the subtrees it completes, from the right edge of the tree (the
 *   "compact range": one complete subtree per set bit of the size), O(log n) and amortised O(1)
 *   writes, in one transaction with the entry;
 * - the root of any size and every proof are folds of O(log n) stored subtrees (core/merkle's
 *   {@link subtreeNodes}, {@link inclusionRanges}, {@link consistencyRanges}), fetched in one query.
 *
 * A Merkle log is written here rather than taken from a package because the Node packages for it
 * keep the tree in memory, or hash differently from RFC 9162, or both; the hashing itself is
 * core/merkle's, checked against transparency-dev/merkle's published vectors.
 *
 * Each leaf input is canonical JSON `{format, index, record, time}` (formats.ts): the position and
 * the time are inside the hash, so a moved or re-dated entry no longer matches its leaf hash.
 * Tree heads are signed with the owner's Ed25519 key on demand and on a timer.
 * transparency/verify re-derives everything from the entries and names where the store disagrees.
 */
import type { KeyObject } from 'node:crypto';
import { sql, type CompiledQuery, type Kysely, type Transaction } from 'kysely';
import { publicJwk, type Ed25519PublicJwk } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { GroupCommit } from '../core/batch.ts';
import { canonicalJson } from '../core/json.ts';
import { consistencyRanges, foldSubtrees, inclusionRanges, leafHash, nodeHash, rootFromLeaves, subtreeNodes, type LeafRange, type NodeId } from '../core/merkle.ts';
import type { Database, TransparencyEntryTable, TransparencyHeadTable, TransparencyNodeTable } from '../store/schema.ts';
import { keyIdHex, parseNote } from '../core/note.ts';
import {
  CONSISTENCY_PROOF_FORMAT,
  INCLUSION_PROOF_FORMAT,
  checkLogName,
  checkpointText,
  logOrigin,
  leafInput,
  signTreeHead,
  type ConsistencyProofDocument,
  type InclusionProofDocument,
  type SignedTreeHead,
} from './formats.ts';

/** Most entries one group-committed transaction writes. */
const MAX_BATCH = 1000;
/** Largest record accepted (canonical JSON, UTF-16 code units): access records are small. */
const MAX_RECORD = 64 * 1024;
// Subtree rows per INSERT statement on SQLite (4 parameters each).
const NODE_CHUNK = 64;
// Rows per multi-row INSERT on PostgreSQL: 5 parameters an entry row keeps far below its 65535.
const PG_CHUNK = 2000;

/** Where an appended entry landed. */
export interface AppendedEntry {
  /** 0-based leaf index. */
  index: number;
  leafHash: Buffer;
  time: string;
}

/** A stored entry. */
export interface StoredEntry extends AppendedEntry {
  /** The exact leaf input text. */
  entry: string;
}

/** Options of {@link TransparencyLog}. */
export interface TransparencyLogOptions {
  db: Kysely<Database>;
  dialect: 'sqlite' | 'postgres';
  /** The log's name, signed into every tree head (printable ASCII, no spaces), e.g. `UK/transparency`. */
  logId: string;
  /** The owner's Ed25519 private key; without it the log appends and proves but does not sign. */
  signingKey?: KeyObject;
  /** Interval of {@link TransparencyLog.start}'s signing, in ms (default 60 s). */
  signEveryMs?: number;
  now?: () => Date;
  /** Told about failed background signings (appends never fail because a signing did). */
  onError?: (e: unknown) => void;
  /**
   * Has witnesses cosign a newly signed checkpoint (transparency/witness's {@link collectCosignatures});
   * called one at a time, in signing order. Its failures go to `onError`: a checkpoint is valid
   * without cosignatures, it is only not yet trusted by those who require a quorum.
   */
  cosign?: (head: SignedTreeHead) => Promise<void>;
}

/** The right edge of the tree after `size` leaves: one complete subtree hash per set bit of `size`, largest first. */
interface Edge {
  size: number;
  peaks: Buffer[];
}

type Reader = Kysely<Database> | Transaction<Database>;

/** The map key of a stored subtree node. */
export const key = (level: number, index: number): string => `${level}:${index}`;

/** Checks and canonicalises a record before any transaction starts. */
function recordText(record: unknown): string {
  const text = canonicalJson(record, 'record');
  if (text.length > MAX_RECORD) throw new OnceOnlyError('payload_too_large', `a transparency log record is limited to ${MAX_RECORD} characters of canonical JSON`, { field: 'record' });
  return text;
}

/** Compiled node lookups by shape (how many leaves, how many inner nodes), per log object. */
type QueryCache = Map<string, CompiledQuery>;

interface NodeRow {
  level: number;
  idx: number;
  hash: Buffer;
}

/** The parameters the node lookup binds, in the order {@link nodeQuery}'s SQL takes them. */
function nodeParams(log: string, leaves: readonly number[], inner: readonly NodeId[]): unknown[] {
  const out: unknown[] = leaves.length === 0 ? [] : [log, ...leaves];
  for (const i of inner) out.push(log, i.level, i.index);
  return out;
}

/** One query for the leaf hashes `leaves` and the stored subtree hashes `inner` (at least one of them non-empty). */
function nodeQuery(db: Reader, log: string, leaves: readonly number[], inner: readonly NodeId[]): CompiledQuery {
  const leafQuery = db.selectFrom('transparency_entry').select([sql<number>`0`.as('level'), 'seq as idx', 'leaf_hash as hash']).where('log', '=', log).where('seq', 'in', [...leaves]);
  const innerQuery = db
    .selectFrom('transparency_node')
    .select(['level', 'idx', 'hash'])
    // Each term names the whole primary key, so both engines look each node up by key.
    .where((eb) => eb.or(inner.map((i) => eb.and([eb('log', '=', log), eb('level', '=', i.level), eb('idx', '=', i.index)]))));
  if (leaves.length === 0) return innerQuery.compile();
  if (inner.length === 0) return leafQuery.compile();
  return leafQuery.unionAll(innerQuery).compile();
}

/**
 * Fetches the hashes of `ids` (level 0 from the entries' leaf hashes, the others from the stored
 * nodes) in one query; undefined if any is missing (a size the log never had, or a damaged store).
 */
async function fetchNodes(db: Reader, log: string, ids: readonly NodeId[], cache?: QueryCache): Promise<Map<string, Buffer> | undefined> {
  const out = new Map<string, Buffer>();
  if (ids.length === 0) return out;
  const leaves = ids.filter((i) => i.level === 0).map((i) => i.index);
  const inner = ids.filter((i) => i.level > 0);
  const shape = `${leaves.length}:${inner.length}`;
  const parameters = nodeParams(log, leaves, inner);
  // Building and compiling the query costs more than running it, and its shape repeats (a proof
  // has about one node per tree level), so a compiled text is reused with new parameters.
  let compiled = cache?.get(shape);
  if (!compiled) {
    compiled = nodeQuery(db, log, leaves, inner);
    // Cached only when the builder bound exactly these parameters in this order.
    if (cache && compiled.parameters.length === parameters.length && compiled.parameters.every((p, i) => p === parameters[i])) cache.set(shape, compiled);
  }
  const { rows } = await db.executeQuery<NodeRow>({ ...compiled, parameters });
  for (const r of rows) out.set(key(Number(r.level), Number(r.idx)), r.hash);
  for (const i of ids) if (!out.has(key(i.level, i.index))) return undefined;
  return out;
}

/** The head of a stored checkpoint row, with the cosignature lines collected for it. */
function toHead(log: string, r: Pick<TransparencyHeadTable, 'tree_size' | 'root_hash' | 'signature'>, cosignatures: readonly string[]): SignedTreeHead {
  const size = Number(r.tree_size);
  const root = Buffer.from(r.root_hash);
  const text = checkpointText(log, size, root);
  const own = `\u2014 ${logOrigin(log)} ${r.signature}`;
  return { log, treeSize: size, rootHash: root.toString('hex'), checkpoint: `${text}\n${[own, ...cosignatures].map((l) => `${l}\n`).join('')}` };
}

/** A cosignature a witness returned for one of the log's checkpoints, already verified by the caller. */
export interface Cosignature {
  /** The witness's key name. */
  witness: string;
  keyId: number;
  /** POSIX seconds, from the cosignature. */
  time: number;
  /** The signature line, without its newline. */
  line: string;
}

// Heads written before checkpoints (migration 0009) have a 43-character JWK thumbprint as key id.
const isCheckpointRow = sql<boolean>`length(key_id) = 8`;

/**
 * One transparency log. Appends made in one process are serialised and group-committed (appends
 * arriving while a transaction is in flight are written together by the next one); across
 * processes sharing one PostgreSQL each append transaction locks the log's tree row first, so the
 * tree never forks. Reads (roots, proofs, entries) run concurrently with appends and see only
 * committed trees: a size and the nodes it needs are written in the same transaction.
 */
export class TransparencyLog {
  /** The log's name. */
  readonly logId: string;
  readonly #db: Kysely<Database>;
  readonly #dialect: 'sqlite' | 'postgres';
  readonly #key: KeyObject | undefined;
  readonly #pub: Ed25519PublicJwk | undefined;
  readonly #every: number;
  readonly #now: () => Date;
  readonly #onError: (e: unknown) => void;
  readonly #cosign: ((head: SignedTreeHead) => Promise<void>) | undefined;
  #cosignChain: Promise<void> = Promise.resolve();
  // The committed right edge, when known; checked against the locked size before every use.
  #edge: Edge | undefined;
  // Appends arriving together are committed together, one at a time with the log's other writes.
  readonly #appends = new GroupCommit<string, AppendedEntry>((texts) => this.#serial(() => this.#commit(texts)), { max: MAX_BATCH });
  #exclusive: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #insertEntry: CompiledQuery | undefined;
  readonly #insertNodes = new Map<number, CompiledQuery>();
  #lockQuery: CompiledQuery | undefined;
  readonly #queries: QueryCache = new Map();

  constructor(opts: TransparencyLogOptions) {
    checkLogName(opts.logId, 'logId');
    const every = opts.signEveryMs ?? 60_000;
    if (!(Number.isFinite(every) && every >= 1)) throw new OnceOnlyError('invalid_value', 'signEveryMs must be a positive number of milliseconds', { field: 'signEveryMs' });
    this.logId = opts.logId;
    this.#db = opts.db;
    this.#dialect = opts.dialect;
    this.#key = opts.signingKey;
    this.#pub = opts.signingKey ? publicJwk(opts.signingKey) : undefined;
    this.#every = every;
    this.#now = opts.now ?? (() => new Date());
    this.#onError = opts.onError ?? (() => undefined);
    this.#cosign = opts.cosign;
  }

  /** The log's public key as JWK, when it was given a signing key. */
  get publicKey(): Ed25519PublicJwk | undefined {
    return this.#pub;
  }

  /** Appends one record (any JSON value; canonicalised) in a transaction shared with appends arriving together. */
  append(record: unknown): Promise<AppendedEntry> {
    let text: string;
    try {
      text = recordText(record);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return this.#appends.submit(text);
  }

  /** Appends many records in one transaction: all of them or none. */
  async appendMany(records: readonly unknown[]): Promise<AppendedEntry[]> {
    const texts = records.map((r, i) => {
      try {
        return recordText(r);
      } catch (e) {
        if (e instanceof OnceOnlyError) throw new OnceOnlyError(e.type, `record ${i}: ${e.message}`, { ...e.detail, field: `records[${i}]` });
        throw e;
      }
    });
    if (texts.length === 0) return [];
    return this.#serial(() => this.#commit(texts));
  }

  /**
   * Appends records inside the caller's transaction, so that they commit or roll back with the
   * caller's other writes (an access record with the release it records). The tree row stays
   * locked until that transaction ends: keep it short.
   */
  async appendIn(trx: Transaction<Database>, records: readonly unknown[]): Promise<AppendedEntry[]> {
    const texts = records.map((r) => recordText(r));
    // Whether this transaction commits is the caller's business: forget the edge, so that the
    // next append re-reads it (O(log n)) instead of trusting a tree that may have rolled back.
    this.#edge = undefined;
    const { appended } = await this.#write(trx, texts);
    return appended;
  }

  async #commit(texts: string[]): Promise<AppendedEntry[]> {
    const { appended, edge } = await this.#db.transaction().execute((trx) => this.#write(trx, texts));
    // Only now is the edge the committed tree's.
    this.#edge = edge;
    return appended;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#exclusive.then(fn);
    this.#exclusive = run.catch(() => undefined);
    return run;
  }

  /** Extends the tree by `texts` inside `trx`: lock, hash, insert entries and completed subtrees. */
  async #write(trx: Transaction<Database>, texts: readonly string[]): Promise<{ appended: AppendedEntry[]; edge: Edge }> {
    const size = await this.#lock(trx, texts.length);
    const peaks = this.#edge?.size === size ? [...this.#edge.peaks] : await this.#readPeaks(trx, size);
    const entries: TransparencyEntryTable[] = [];
    const nodes: TransparencyNodeTable[] = [];
    const appended: AppendedEntry[] = [];
    // Entries committed together are appended at one instant.
    const time = this.#now().toISOString();
    for (let i = 0; i < texts.length; i++) {
      const index = size + i;
      const entry = leafInput(index, time, texts[i]!);
      const lh = leafHash(entry);
      entries.push({ log: this.logId, seq: index, entry, leaf_hash: lh, appended_at: time });
      appended.push({ index, leafHash: lh, time });
      // Each set low bit of the index is a complete subtree on the left that this leaf completes
      // a sibling of: merge them upwards (the binary-counter carry of the compact range).
      let h = lh;
      let level = 0;
      let idx = index;
      while (idx % 2 === 1) {
        h = nodeHash(peaks.pop()!, h);
        level += 1;
        idx = (idx - 1) / 2;
        nodes.push({ log: this.logId, level, idx, hash: h });
      }
      peaks.push(h);
    }
    await this.#insert(trx, entries, nodes);
    if (this.#dialect === 'postgres') await trx.updateTable('transparency_tree').set({ size: size + texts.length }).where('log', '=', this.logId).execute();
    return { appended, edge: { size: size + texts.length, peaks } };
  }

  async #insert(trx: Transaction<Database>, entries: TransparencyEntryTable[], nodes: TransparencyNodeTable[]): Promise<void> {
    if (this.#dialect === 'sqlite') {
      // On SQLite a statement compiled once and run per row is much cheaper than building a new
      // multi-row INSERT for every batch (the rows go to the same local file either way).
      const e0 = entries[0];
      if (e0) {
        this.#insertEntry ??= trx.insertInto('transparency_entry').values(e0).compile();
        for (const e of entries) await trx.executeQuery({ ...this.#insertEntry, parameters: [e.log, e.seq, e.entry, e.leaf_hash, e.appended_at] });
      }
      // Subtree rows are small and come about one per entry: written NODE_CHUNK to a statement,
      // each statement compiled once per row count.
      for (let i = 0; i < nodes.length; i += NODE_CHUNK) {
        const chunk = nodes.slice(i, i + NODE_CHUNK);
        let q = this.#insertNodes.get(chunk.length);
        if (!q) {
          q = trx.insertInto('transparency_node').values(chunk).compile();
          this.#insertNodes.set(chunk.length, q);
        }
        await trx.executeQuery({ ...q, parameters: chunk.flatMap((n) => [n.log, n.level, n.idx, n.hash]) });
      }
      return;
    }
    for (let i = 0; i < entries.length; i += PG_CHUNK) await trx.insertInto('transparency_entry').values(entries.slice(i, i + PG_CHUNK)).execute();
    for (let i = 0; i < nodes.length; i += PG_CHUNK) await trx.insertInto('transparency_node').values(nodes.slice(i, i + PG_CHUNK)).execute();
  }

  /**
   * Locks the tree row and returns the size before this append. PostgreSQL: SELECT … FOR UPDATE,
   * so a second process waits here. SQLite: an UPDATE first, because a deferred transaction that
   * reads before writing fails (SQLITE_BUSY_SNAPSHOT) when another connection wrote in between,
   * whereas a write first takes the database's write lock and waits for it (busy_timeout).
   */
  async #lock(trx: Transaction<Database>, count: number): Promise<number> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.#dialect === 'postgres') {
        const r = await trx.selectFrom('transparency_tree').select('size').where('log', '=', this.logId).forUpdate().executeTakeFirst();
        if (r) return Number(r.size);
      } else {
        // Compiled once: on single appends building it cost as much as running it.
        this.#lockQuery ??= trx
          .updateTable('transparency_tree')
          .set((eb) => ({ size: eb('size', '+', count) }))
          .where('log', '=', this.logId)
          .returning('size')
          .compile();
        const { rows } = await trx.executeQuery<{ size: number }>({ ...this.#lockQuery, parameters: [count, this.logId] });
        const r = rows[0];
        if (r) return Number(r.size) - count;
      }
      // First append (or the row was lost): start after the last stored entry.
      const last = await trx.selectFrom('transparency_entry').select('seq').where('log', '=', this.logId).orderBy('seq', 'desc').limit(1).executeTakeFirst();
      await trx
        .insertInto('transparency_tree')
        .values({ log: this.logId, size: last ? Number(last.seq) + 1 : 0 })
        .onConflict((oc) => oc.column('log').doNothing())
        .execute();
    }
    throw new OnceOnlyError('internal_error', `transparency log ${this.logId}: its tree row could not be created`);
  }

  async #readPeaks(db: Reader, size: number): Promise<Buffer[]> {
    if (size === 0) return [];
    const [peaks] = await this.#subtrees(db, [[0, size]], size, 'treeSize');
    return peaks!;
  }

  /**
   * The stored complete subtrees of each range, in one query. A missing one means the size asked
   * for is beyond the log (a typed refusal) or the store is damaged (verify-log says where).
   * Sizes are checked only then: on the hot path it would cost a query per proof.
   */
  async #subtrees(db: Reader, ranges: readonly LeafRange[], treeSize: number, field: string): Promise<Buffer[][]> {
    const perRange = ranges.map(([a, b]) => subtreeNodes(a, b));
    const all = new Map<string, NodeId>();
    for (const ids of perRange) for (const i of ids) all.set(key(i.level, i.index), i);
    const got = await fetchNodes(db, this.logId, [...all.values()], this.#queries);
    if (!got) {
      const current = await this.size();
      if (treeSize > current) throw new OnceOnlyError('invalid_request', `${field} ${treeSize} is not a size the log ${this.logId} has had (0..${current})`, { field, expected: `0..${current}` });
      throw new OnceOnlyError('internal_error', `transparency log ${this.logId}: stored subtree hashes of the tree of ${treeSize} entries are missing; run onceonly transparency verify-log`);
    }
    return perRange.map((ids) => ids.map((i) => got.get(key(i.level, i.index))!));
  }

  /** MTH of each range from its stored complete subtrees. */
  async #ranges(ranges: readonly LeafRange[], treeSize: number, field: string): Promise<Buffer[]> {
    return (await this.#subtrees(this.#db, ranges, treeSize, field)).map(foldSubtrees);
  }

  /** The number of entries committed. */
  async size(): Promise<number> {
    const r = await this.#db.selectFrom('transparency_tree').select('size').where('log', '=', this.logId).executeTakeFirst();
    return r ? Number(r.size) : 0;
  }

  /** RFC 9162 §2.1.1 MTH of the first `treeSize` entries (default: all), from O(log n) stored subtrees. */
  async root(treeSize?: number): Promise<Buffer> {
    const n = treeSize ?? (await this.size());
    if (!(Number.isSafeInteger(n) && n >= 0)) throw new OnceOnlyError('invalid_request', `treeSize ${n} is not a tree size`, { field: 'treeSize', expected: 'a whole number >= 0' });
    if (n === 0) return rootFromLeaves([]);
    const [r] = await this.#ranges([[0, n]], n, 'treeSize');
    return r!;
  }

  /** The stored entry at `index`. */
  async entry(index: number): Promise<StoredEntry | undefined> {
    const r = await this.#db.selectFrom('transparency_entry').select(['seq', 'entry', 'leaf_hash', 'appended_at']).where('log', '=', this.logId).where('seq', '=', index).executeTakeFirst();
    return r && { index: Number(r.seq), entry: r.entry, leafHash: r.leaf_hash, time: r.appended_at };
  }

  /** RFC 9162 §2.1.3.1 audit path of entry `index` in the tree of `treeSize` entries, O(log n) lookups. */
  async inclusionProof(index: number, treeSize: number): Promise<Buffer[]> {
    if (!(Number.isSafeInteger(treeSize) && treeSize > 0 && Number.isSafeInteger(index) && index >= 0 && index < treeSize)) {
      throw new OnceOnlyError('invalid_request', `entry ${index} is outside a tree of ${treeSize} entries`, { field: 'leafIndex', expected: `0..${treeSize - 1}` });
    }
    return this.#ranges(inclusionRanges(index, treeSize), treeSize, 'treeSize');
  }

  /** RFC 9162 §2.1.4.1 consistency proof between sizes `first` and `second` (0 < first <= second), O(log n) lookups. */
  async consistencyProof(first: number, second: number): Promise<Buffer[]> {
    if (!(Number.isSafeInteger(first) && Number.isSafeInteger(second) && first > 0 && first <= second)) {
      throw new OnceOnlyError('invalid_request', `a consistency proof needs 0 < firstSize <= secondSize (got ${first}, ${second})`, { field: 'firstSize', expected: `1..${second}` });
    }
    if (first === second) {
      // Empty, but only between sizes the log has had.
      await this.root(second);
      return [];
    }
    return this.#ranges(consistencyRanges(first, second), second, 'secondSize');
  }

  /**
   * Signs the current tree head now as a checkpoint, stores it and has the witnesses cosign it
   * (the `cosign` option). With `onlyIfChanged`, returns null instead when the latest checkpoint
   * already has this size (what the timer does).
   */
  async signTreeHead(opts: { onlyIfChanged?: boolean } = {}): Promise<SignedTreeHead | null> {
    const head = await this.#serial(() => this.#signNow(opts.onlyIfChanged === true));
    if (!head || !this.#cosign) return head;
    await this.#cosignRound(head);
    return (await this.#headAt(head.treeSize, Buffer.from(head.rootHash, 'hex'))) ?? head;
  }

  /** Asks the witnesses for cosignatures of `head`, one round at a time, so they see the checkpoints in order. */
  #cosignRound(head: SignedTreeHead): Promise<void> {
    const cosign = this.#cosign;
    if (!cosign) return Promise.resolve();
    const run = this.#cosignChain.then(() => cosign(head)).catch((e: unknown) => this.#onError(e));
    this.#cosignChain = run;
    return run;
  }

  async #signNow(onlyIfChanged: boolean): Promise<SignedTreeHead | null> {
    const signingKey = this.#key;
    if (!signingKey) throw new OnceOnlyError('invalid_request', `transparency log ${this.logId} was opened without a signing key`, { field: 'signingKey' });
    // A size and the subtrees it needs commit together, so this pair is consistent without a
    // transaction even while other processes append.
    const size = await this.size();
    const latest = await this.latestTreeHead();
    if (onlyIfChanged && latest && latest.treeSize === size) return null;
    const root = this.#edge?.size === size ? foldSubtrees(this.#edge.peaks) : await this.root(size);
    // Ed25519 is deterministic: the checkpoint of a size already signed is the same bytes; it is
    // stored once.
    if (latest && latest.treeSize === size && latest.rootHash === root.toString('hex')) return latest;
    const head = signTreeHead(signingKey, this.logId, size, root);
    const own = parseNote(head.checkpoint).signatures[0]!;
    await this.#db
      .insertInto('transparency_head')
      .values({ log: this.logId, tree_size: size, root_hash: root, signed_at: this.#now().toISOString(), key_id: keyIdHex(own.keyId), signature: own.line.slice(own.line.lastIndexOf(' ') + 1) })
      .onConflict((oc) => oc.columns(['log', 'tree_size', 'signed_at']).doNothing())
      .execute();
    return head;
  }

  /** The cosignature lines stored for a checkpoint. */
  async #cosignatureLines(treeSize: number, root: Buffer): Promise<string[]> {
    const rows = await this.#db.selectFrom('transparency_cosignature').select('line').where('log', '=', this.logId).where('tree_size', '=', treeSize).where('root_hash', '=', root).orderBy('witness').orderBy('key_id').execute();
    return rows.map((r) => r.line);
  }

  async #headAt(treeSize: number, root: Buffer): Promise<SignedTreeHead | undefined> {
    const r = await this.#db.selectFrom('transparency_head').select(['tree_size', 'root_hash', 'signature']).where('log', '=', this.logId).where('tree_size', '=', treeSize).where('root_hash', '=', root).where(isCheckpointRow).limit(1).executeTakeFirst();
    return r && toHead(this.logId, r, await this.#cosignatureLines(treeSize, root));
  }

  /** The checkpoint of the largest size, with the cosignatures collected for it. */
  async latestTreeHead(): Promise<SignedTreeHead | undefined> {
    const r = await this.#db.selectFrom('transparency_head').select(['tree_size', 'root_hash', 'signature']).where('log', '=', this.logId).where(isCheckpointRow).orderBy('tree_size', 'desc').orderBy('signed_at', 'desc').limit(1).executeTakeFirst();
    return r && toHead(this.logId, r, await this.#cosignatureLines(Number(r.tree_size), Buffer.from(r.root_hash)));
  }

  /** Every checkpoint signed, oldest size first, each with its cosignatures. */
  async treeHeads(): Promise<SignedTreeHead[]> {
    const rows = await this.#db.selectFrom('transparency_head').select(['tree_size', 'root_hash', 'signature']).where('log', '=', this.logId).where(isCheckpointRow).orderBy('tree_size').orderBy('signed_at').execute();
    const out: SignedTreeHead[] = [];
    for (const r of rows) out.push(toHead(this.logId, r, await this.#cosignatureLines(Number(r.tree_size), Buffer.from(r.root_hash))));
    return out;
  }

  /** Stores cosignatures of `head` (verified by the caller against the witness's key); a line already held is kept once. */
  async addCosignatures(head: SignedTreeHead, cosignatures: readonly Cosignature[]): Promise<void> {
    if (cosignatures.length === 0) return;
    const received = this.#now().toISOString();
    await this.#db
      .insertInto('transparency_cosignature')
      .values(cosignatures.map((c) => ({ log: this.logId, tree_size: head.treeSize, root_hash: Buffer.from(head.rootHash, 'hex'), witness: c.witness, key_id: keyIdHex(c.keyId), line: c.line, cosigned_at: c.time, received_at: received })))
      .onConflict((oc) => oc.columns(['log', 'tree_size', 'root_hash', 'witness', 'key_id']).doNothing())
      .execute();
  }

  /** The largest size a witness key has cosigned (what it will compare the next checkpoint with), 0 if none. */
  async witnessedSize(witness: string, keyId: number): Promise<number> {
    const r = await this.#db.selectFrom('transparency_cosignature').select((eb) => eb.fn.max('tree_size').as('m')).where('log', '=', this.logId).where('witness', '=', witness).where('key_id', '=', keyIdHex(keyId)).executeTakeFirst();
    return r?.m === null || r?.m === undefined ? 0 : Number(r.m);
  }

  /**
   * The inclusion proof of entry `index` against the latest signed tree head (or `head`), as the
   * document a person is given with their record. When no signed head covers the entry yet and the
   * log has its key, a head is signed now.
   */
  async proveInclusion(index: number, head?: SignedTreeHead): Promise<InclusionProofDocument> {
    let h = head ?? (await this.latestTreeHead());
    if ((!h || h.treeSize <= index) && !head && this.#key && index < (await this.size())) h = (await this.signTreeHead()) ?? undefined;
    if (!h || h.treeSize <= index) {
      throw new OnceOnlyError('not_found', `no signed tree head of ${this.logId} covers entry ${index} yet`, { field: 'leafIndex' });
    }
    const e = await this.entry(index);
    if (!e) throw new OnceOnlyError('not_found', `transparency log ${this.logId} has no entry ${index}`, { field: 'leafIndex' });
    const path = await this.inclusionProof(index, h.treeSize);
    return {
      format: INCLUSION_PROOF_FORMAT,
      log: this.logId,
      leafIndex: index,
      treeSize: h.treeSize,
      entry: e.entry,
      leafHash: e.leafHash.toString('hex'),
      path: path.map((p) => p.toString('hex')),
      checkpoint: h.checkpoint,
    };
  }

  /** The consistency proof document between two sizes (typically of two signed heads). */
  async proveConsistency(firstSize: number, secondSize: number): Promise<ConsistencyProofDocument> {
    const path = await this.consistencyProof(firstSize, secondSize);
    return { format: CONSISTENCY_PROOF_FORMAT, log: this.logId, firstSize, secondSize, path: path.map((p) => p.toString('hex')) };
  }

  /** Starts signing the tree head every `signEveryMs` when the size changed (the timer does not keep the process alive). */
  start(): void {
    if (this.#timer) return;
    if (!this.#key) throw new OnceOnlyError('invalid_request', `transparency log ${this.logId} was opened without a signing key`, { field: 'signingKey' });
    this.#timer = setInterval(() => {
      // Unchanged: ask again the witnesses that have not cosigned the latest checkpoint yet (one
      // may have been down when it was signed).
      this.signTreeHead({ onlyIfChanged: true })
        .then(async (signed) => {
          if (signed) return;
          const latest = await this.latestTreeHead();
          if (latest) await this.#cosignRound(latest);
        })
        .catch((e: unknown) => this.#onError(e));
    }, this.#every);
    this.#timer.unref();
  }

  /** Stops the timer, waits for pending appends and signs a last head if the size changed. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#serial(() => Promise.resolve());
    // The last checkpoint is signed but not sent: the witnesses may be stopping too. The next
    // start's timer asks them.
    if (this.#key) await this.#serial(() => this.#signNow(true));
    await this.#cosignChain;
  }
}

// ---- offline verification of a whole log ----
