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
 * {@link verifyLog} re-derives everything from the entries and names where the store disagrees.
 */
import type { KeyObject } from 'node:crypto';
import { sql, type CompiledQuery, type Kysely, type Transaction } from 'kysely';
import { importPublicJwk, publicJwk, verifyEd25519, type Ed25519PublicJwk } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { canonicalJson } from '../core/json.ts';
import { consistencyRanges, foldSubtrees, inclusionRanges, leafHash, nodeHash, rootFromLeaves, subtreeNodes, type LeafRange, type NodeId } from '../core/merkle.ts';
import type { Database, TransparencyEntryTable, TransparencyHeadTable, TransparencyNodeTable } from '../store/schema.ts';
import {
  CONSISTENCY_PROOF_FORMAT,
  INCLUSION_PROOF_FORMAT,
  TREE_HEAD_FORMAT,
  checkLogName,
  keyId,
  leafInput,
  parseEntry,
  signTreeHead,
  treeHeadMessage,
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
// Entries read per query by the verifier: bounds its memory whatever the log's size.
const VERIFY_PAGE = 5000;
// Recent entries whose claimed index the verifier remembers, to spot two entries claiming one index.
const CLAIM_WINDOW = 4096;
// Problems listed in a report; the count goes on.
const MAX_PROBLEMS = 200;

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
}

interface Pending {
  record: string;
  resolve: (a: AppendedEntry) => void;
  reject: (e: unknown) => void;
}

/** The right edge of the tree after `size` leaves: one complete subtree hash per set bit of `size`, largest first. */
interface Edge {
  size: number;
  peaks: Buffer[];
}

type Reader = Kysely<Database> | Transaction<Database>;

const key = (level: number, index: number): string => `${level}:${index}`;

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

function toHead(log: string, r: Pick<TransparencyHeadTable, 'tree_size' | 'root_hash' | 'signed_at' | 'key_id' | 'signature'>, pub?: Ed25519PublicJwk): SignedTreeHead {
  const head: SignedTreeHead = {
    format: TREE_HEAD_FORMAT,
    log,
    treeSize: Number(r.tree_size),
    rootHash: Buffer.from(r.root_hash).toString('hex'),
    timestamp: r.signed_at,
    keyId: r.key_id,
    signature: r.signature,
  };
  if (pub && keyId(pub) === r.key_id) head.publicKey = pub;
  return head;
}

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
  // The committed right edge, when known; checked against the locked size before every use.
  #edge: Edge | undefined;
  #queue: Pending[] = [];
  #scheduled = false;
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
    return new Promise<AppendedEntry>((resolve, reject) => {
      this.#queue.push({ record: text, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        void this.#serial(() => this.#drain());
      }
    });
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

  async #drain(): Promise<void> {
    for (;;) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      if (batch.length === 0) {
        // Cleared in the same synchronous step as the emptiness check, so an append arriving
        // afterwards always schedules a new drain.
        this.#scheduled = false;
        return;
      }
      try {
        const written = await this.#commit(batch.map((p) => p.record));
        batch.forEach((p, i) => p.resolve(written[i]!));
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
    }
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
   * Signs the current tree head now and stores it. With `onlyIfChanged`, returns null instead
   * when the latest signed head already has this size (what the timer does).
   */
  signTreeHead(opts: { onlyIfChanged?: boolean } = {}): Promise<SignedTreeHead | null> {
    return this.#serial(() => this.#signNow(opts.onlyIfChanged === true));
  }

  async #signNow(onlyIfChanged: boolean): Promise<SignedTreeHead | null> {
    const signingKey = this.#key;
    if (!signingKey) throw new OnceOnlyError('invalid_request', `transparency log ${this.logId} was opened without a signing key`, { field: 'signingKey' });
    // A size and the subtrees it needs commit together, so this pair is consistent without a
    // transaction even while other processes append.
    const size = await this.size();
    if (onlyIfChanged) {
      const latest = await this.latestTreeHead();
      if (latest && latest.treeSize === size) return null;
    }
    const root = this.#edge?.size === size ? foldSubtrees(this.#edge.peaks) : await this.root(size);
    const head = signTreeHead(signingKey, this.logId, size, root, this.#now().toISOString());
    await this.#db
      .insertInto('transparency_head')
      .values({ log: this.logId, tree_size: size, root_hash: root, signed_at: head.timestamp, key_id: head.keyId, signature: head.signature })
      // The same size signed twice in one millisecond is the same head (Ed25519 is deterministic).
      .onConflict((oc) => oc.columns(['log', 'tree_size', 'signed_at']).doNothing())
      .execute();
    return head;
  }

  /** The signed head of the largest size (the latest signed, among several of that size). */
  async latestTreeHead(): Promise<SignedTreeHead | undefined> {
    const r = await this.#db.selectFrom('transparency_head').selectAll().where('log', '=', this.logId).orderBy('tree_size', 'desc').orderBy('signed_at', 'desc').limit(1).executeTakeFirst();
    return r && toHead(this.logId, r, this.#pub);
  }

  /** Every signed head, oldest size first. */
  async treeHeads(): Promise<SignedTreeHead[]> {
    const rows = await this.#db.selectFrom('transparency_head').selectAll().where('log', '=', this.logId).orderBy('tree_size').orderBy('signed_at').execute();
    return rows.map((r) => toHead(this.logId, r, this.#pub));
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
      treeHead: h,
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
      this.signTreeHead({ onlyIfChanged: true }).catch((e: unknown) => this.#onError(e));
    }, this.#every);
    this.#timer.unref();
  }

  /** Stops the timer, waits for pending appends and signs a last head if the size changed. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#serial(() => Promise.resolve());
    if (this.#key) await this.signTreeHead({ onlyIfChanged: true });
  }
}

// ---- offline verification of a whole log ----

/** One thing wrong with a stored log, at the first entry position it concerns. */
export interface LogProblem {
  position: number;
  kind: 'altered' | 'deleted' | 'inserted' | 'reordered' | 'node' | 'head';
  message: string;
}

/** The outcome of {@link verifyLog}. */
export interface LogReport {
  ok: boolean;
  log: string;
  /** Entry rows read. */
  entries: number;
  /** The size the tree row records. */
  treeSize: number;
  /** Signed head rows stored. */
  heads: number;
  /** Largest size whose signed head verified and whose root the stored leaf hashes reproduce, or null. */
  lastGoodHead: number | null;
  notes: string[];
  /** Sorted by position; `problems[0]` is the first place where the store disagrees with itself. */
  problems: LogProblem[];
  /** Problems found beyond the ones listed. */
  moreProblems: number;
}

/** Options of {@link verifyLog}. */
export interface VerifyLogOptions {
  /** The log's public keys (several after a key rotation). Without any, signatures are not checked (a note says so). */
  publicKeys?: readonly Ed25519PublicJwk[];
}

/** The names of every log the store holds. */
export async function listLogs(db: Kysely<Database>): Promise<string[]> {
  const rows = await db
    .selectFrom('transparency_tree')
    .select('log')
    .union(db.selectFrom('transparency_entry').select('log').distinct())
    .union(db.selectFrom('transparency_head').select('log').distinct())
    .execute();
  return [...new Set(rows.map((r) => r.log))].sort();
}

/**
 * Verifies a whole log offline, from the database alone (and the log's public keys): every entry
 * against its leaf hash, position and time; every stored complete subtree against the entries;
 * every signed head's signature and root; the tree size against the entries. Names the first
 * position where stored entries, nodes or signed heads disagree, and what kind of change explains
 * it (altered, deleted, inserted, re-ordered). Runs in one read-only transaction (repeatable read
 * on PostgreSQL); memory stays bounded whatever the log's size.
 */
export async function verifyLog(db: Kysely<Database>, log: string, opts: VerifyLogOptions = {}): Promise<LogReport> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute((trx) => verifyIn(trx, log, opts));
}

function short(h: Buffer | string): string {
  return `${(typeof h === 'string' ? h : h.toString('hex')).slice(0, 12)}…`;
}

async function verifyIn(trx: Transaction<Database>, log: string, opts: VerifyLogOptions): Promise<LogReport> {
  const problems: LogProblem[] = [];
  const notes: string[] = [];
  let more = 0;
  // The highest position any problem so far concerns: a subtree or head covering it is already
  // explained, and listing every ancestor of one altered entry would bury the cause.
  let explainedTo = -1;
  const problem = (position: number, kind: LogProblem['kind'], message: string, through = position): void => {
    explainedTo = Math.max(explainedTo, through);
    if (problems.length < MAX_PROBLEMS) problems.push({ position, kind, message });
    else more++;
  };

  const treeRow = await trx.selectFrom('transparency_tree').select('size').where('log', '=', log).executeTakeFirst();
  const maxSeq = await trx.selectFrom('transparency_entry').select((eb) => eb.fn.max('seq').as('m')).where('log', '=', log).executeTakeFirst();
  const lastSeq = maxSeq?.m === null || maxSeq?.m === undefined ? -1 : Number(maxSeq.m);
  const treeSize = treeRow ? Number(treeRow.size) : lastSeq + 1;
  if (!treeRow && lastSeq >= 0) notes.push('the tree row is missing (the next append recreates it from the last entry); the entries are checked as they are');

  // Signed heads: signatures first; only heads that verify say anything about the entries.
  const keys = new Map((opts.publicKeys ?? []).map((k) => [keyId(k), importPublicJwk(k)] as const));
  if (keys.size === 0) notes.push('signatures of tree heads were not checked: no public key was given');
  const headRows = await trx.selectFrom('transparency_head').selectAll().where('log', '=', log).orderBy('tree_size').orderBy('signed_at').execute();
  const headsAt = new Map<number, typeof headRows>();
  // In an object: it is set inside checkHeads, where flow analysis would not see the assignment.
  const good: { head: number | null } = { head: null };
  for (const h of headRows) {
    const n = Number(h.tree_size);
    const root = Buffer.from(h.root_hash).toString('hex');
    if (keys.size > 0) {
      const k = keys.get(h.key_id);
      if (!k) {
        problem(0, 'head', `the tree head of size ${n} signed at ${h.signed_at} names key ${h.key_id}, which is not one of the log's keys`, -1);
        continue;
      }
      if (!verifyEd25519(k, treeHeadMessage(log, n, root, h.signed_at), h.signature)) {
        problem(0, 'head', `the signature of the tree head of size ${n} signed at ${h.signed_at} does not verify: the head was forged or altered`, -1);
        continue;
      }
    }
    const list = headsAt.get(n) ?? [];
    list.push(h);
    headsAt.set(n, list);
  }
  const checkHeads = (size: number, root: Buffer, goodFrom: number): void => {
    for (const h of headsAt.get(size) ?? []) {
      if (Buffer.from(h.root_hash).equals(root)) {
        good.head = size;
      } else if (explainedTo < goodFrom) {
        problem(
          goodFrom,
          'head',
          `the tree head of size ${size} signed at ${h.signed_at} has root ${short(h.root_hash)}, but entries 0..${size - 1} hash to ${short(root)}: entries ${goodFrom}..${size - 1} were rewritten after it was signed (with their leaf and subtree hashes)`,
          size - 1,
        );
      }
    }
  };
  if (headsAt.has(0)) checkHeads(0, rootFromLeaves([]), 0);

  // Walk the entries in order, rebuilding the tree from the right edge as the log built it.
  let entries = 0;
  let expected = 0;
  let treeBroken = false;
  const peaks: { level: number; hash: Buffer }[] = [];
  let shift: { from: number; to: number; delta: number } | null = null;
  const flushShift = (): void => {
    if (!shift) return;
    const { from, to, delta } = shift;
    problem(
      from,
      'reordered',
      from === to ? `the entry at position ${from} was appended at position ${from + delta}` : `the entries at positions ${from}..${to} were appended at positions ${from + delta}..${to + delta}`,
      to,
    );
    shift = null;
  };
  let beyond: { from: number; count: number } | null = null;
  // The index each recent entry says it has (inside its hashed text), to the position it is at.
  const claims = new Map<number, number>();

  for (let next = -Infinity; ; ) {
    let q = trx.selectFrom('transparency_entry').select(['seq', 'entry', 'leaf_hash', 'appended_at']).where('log', '=', log);
    if (next !== -Infinity) q = q.where('seq', '>=', next);
    const rows = await q.orderBy('seq').limit(VERIFY_PAGE).execute();
    if (rows.length === 0) break;
    entries += rows.length;
    const first = Number(rows[0]!.seq);
    const last = Number(rows[rows.length - 1]!.seq);
    next = last + 1;
    const stored = treeBroken ? new Map<string, Buffer>() : await nodesCompletedBy(trx, log, Math.max(first, 0), Math.min(last, treeSize - 1));

    for (const row of rows) {
      const s = Number(row.seq);
      if (s < 0 || s >= treeSize) {
        if (beyond) beyond.count++;
        else beyond = { from: s, count: 1 };
        continue;
      }
      if (s > expected) {
        flushShift();
        problem(expected, 'deleted', s - expected === 1 ? `entry ${expected} is missing` : `entries ${expected}..${s - 1} are missing (${s - expected} entries)`, s - 1);
        treeBroken = true;
      }
      expected = s + 1;
      const stored_hash = row.leaf_hash;
      const e = parseEntry(row.entry);
      const matches = leafHash(row.entry).equals(stored_hash);
      if (!matches || !e) {
        flushShift();
        problem(s, 'altered', !e ? `entry ${s} is not a log entry (${short(stored_hash)})` : `entry ${s} does not match its leaf hash ${short(stored_hash)}: its content was changed`);
      } else if (claims.has(e.index)) {
        // Two entries that both hash correctly say they are entry e.index: one was put in directly
        // (typically at the earlier position, with the entries after it renumbered to make room).
        flushShift();
        problem(claims.get(e.index)!, 'inserted', `the entries at positions ${claims.get(e.index)!} and ${s} both say they are entry ${e.index}: one of them was put into the store directly and the entries after it renumbered`, s);
      }
      if (e && matches && e.index !== s) {
        const delta = e.index - s;
        if (shift && shift.delta === delta && shift.to === s - 1) shift.to = s;
        else {
          flushShift();
          shift = { from: s, to: s, delta };
        }
        // Reported when the run of moved entries ends, but it explains the subtrees over it now.
        explainedTo = Math.max(explainedTo, s);
      } else if (e && matches) {
        flushShift();
        if (e.time !== row.appended_at) problem(s, 'altered', `entry ${s}'s appended_at column says ${row.appended_at}, the hashed entry ${e.time}: the column was changed`);
      }
      if (e && matches) {
        claims.set(e.index, s);
        // A bounded window of recent claims: enough for a renumbering, whatever the log's size.
        if (claims.size > CLAIM_WINDOW) claims.delete(claims.keys().next().value!);
      }
      if (treeBroken) continue;

      // The stored leaf hash feeds the tree, so that one altered entry is reported once and the
      // rest of the tree is still checked.
      let h: Buffer = stored_hash;
      let level = 0;
      let idx = s;
      while (idx % 2 === 1) {
        const left = peaks.pop()!;
        h = nodeHash(left.hash, h);
        level += 1;
        idx = (idx - 1) / 2;
        const from = idx * 2 ** level;
        const to = from + 2 ** level - 1;
        const got = stored.get(key(level, idx));
        if (!got) {
          if (explainedTo < from) problem(from, 'node', `the stored hash of entries ${from}..${to} (subtree level ${level}, index ${idx}) is missing`, to);
        } else if (!got.equals(h)) {
          if (explainedTo < from) {
            problem(
              from,
              'node',
              `the stored hash of entries ${from}..${to} (subtree level ${level}, index ${idx}) does not match them: one of these entries was rewritten with its leaf hash, or the subtree hash was changed`,
              to,
            );
          }
        }
      }
      peaks.push({ level, hash: h });
      const size = s + 1;
      if (headsAt.has(size)) checkHeads(size, foldSubtrees(peaks.map((p) => p.hash)), good.head ?? 0);
    }
  }
  flushShift();

  // Rows removed from the end leave no gap; the tree size and the signed heads still count them.
  if (expected < treeSize) {
    let signed: string | undefined;
    for (const [n, hs] of headsAt) if (n > expected && hs[0]) signed ??= ` (a signed tree head of size ${n}, signed at ${hs[0].signed_at}, counts them too)`;
    problem(expected, 'deleted', `entries ${expected}..${treeSize - 1} are missing from the end of the log: the tree size counts ${treeSize}${signed ?? ''}`, treeSize - 1);
  }
  for (const [n, hs] of headsAt) {
    if (n > treeSize) problem(treeSize, 'deleted', `the tree head of size ${n} signed at ${hs[0]?.signed_at ?? '?'} counts more entries than the log's tree size ${treeSize}: entries were removed`, n - 1);
  }
  if (beyond) {
    problem(beyond.from, 'inserted', `${beyond.count} entr${beyond.count === 1 ? 'y lies' : 'ies lie'} outside the tree of ${treeSize} entries (from position ${beyond.from}): put into the store directly, not appended through the log`, Number.MAX_SAFE_INTEGER);
  }
  // Subtree hashes the tree does not have: written into the store directly.
  const maxLevel = await trx.selectFrom('transparency_node').select((eb) => eb.fn.max('level').as('m')).where('log', '=', log).executeTakeFirst();
  for (let level = 1; level <= Number(maxLevel?.m ?? 0); level++) {
    const firstBeyond = Math.floor(treeSize / 2 ** level);
    const extra = await trx.selectFrom('transparency_node').select(['idx']).where('log', '=', log).where('level', '=', level).where('idx', '>=', firstBeyond).orderBy('idx').limit(1).executeTakeFirst();
    // One that covers entries already reported missing is what their deletion left behind.
    if (extra && explainedTo < (Number(extra.idx) + 1) * 2 ** level - 1) problem(Number(extra.idx) * 2 ** level, 'inserted', `a subtree hash at level ${level}, index ${extra.idx} lies outside the tree of ${treeSize} entries: put into the store directly`, Number.MAX_SAFE_INTEGER);
  }
  if (treeBroken) notes.push(`the tree could not be rebuilt past the first missing entry: subtree hashes and signed heads beyond it were not compared`);
  const lastGoodHead = good.head;
  if (lastGoodHead === null && treeSize > 0) notes.push('no signed tree head covers the log yet: the entries are checked against their stored hashes only');
  else if (lastGoodHead !== null && lastGoodHead < treeSize) notes.push(`entries ${lastGoodHead}..${treeSize - 1} are not yet covered by a signed tree head`);

  problems.sort((x, y) => x.position - y.position);
  return { ok: problems.length === 0, log, entries, treeSize, heads: headRows.length, lastGoodHead, notes, problems, moreProblems: more };
}


/** The stored subtree hashes completed by leaves `first..last` (one query per page). */
async function nodesCompletedBy(trx: Transaction<Database>, log: string, first: number, last: number): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  if (last < first) return out;
  const terms: { level: number; lo: number; hi: number }[] = [];
  // Subtree (level, j) is completed by leaf (j + 1) * 2^level - 1.
  for (let level = 1; 2 ** level <= last + 1; level++) {
    const w = 2 ** level;
    const lo = Math.ceil((first + 1) / w) - 1;
    const hi = Math.floor((last + 1) / w) - 1;
    if (hi >= lo) terms.push({ level, lo, hi });
  }
  if (terms.length === 0) return out;
  const rows = await trx
    .selectFrom('transparency_node')
    .select(['level', 'idx', 'hash'])
    .where((eb) => eb.or(terms.map((t) => eb.and([eb('log', '=', log), eb('level', '=', t.level), eb('idx', '>=', t.lo), eb('idx', '<=', t.hi)]))))
    .execute();
  for (const r of rows) out.set(key(Number(r.level), Number(r.idx)), r.hash);
  return out;
}

/** Human-readable form of a report, for `onceonly transparency verify-log`. */
export function formatLogReport(r: LogReport): string {
  const lines = [
    `transparency log ${r.log}: ${r.ok ? 'OK' : 'FAILED'}`,
    `  entries:      ${r.entries}${r.treeSize > 0 ? ` (tree size ${r.treeSize})` : ''}`,
    `  signed heads: ${r.heads}${r.lastGoodHead === null ? '' : `, largest whose root the stored hashes reproduce: size ${r.lastGoodHead}`}`,
  ];
  for (const n of r.notes) lines.push(`  note: ${n}`);
  if (r.problems.length > 0) {
    lines.push(`  first problem at position ${r.problems[0]!.position}`);
    lines.push(`  problems (${r.problems.length + r.moreProblems}):`);
    for (const p of r.problems) lines.push(`    position ${String(p.position).padEnd(8)} ${p.kind.padEnd(10)} ${p.message}`);
    if (r.moreProblems > 0) lines.push(`    … and ${r.moreProblems} more`);
  }
  return `${lines.join('\n')}\n`;
}
