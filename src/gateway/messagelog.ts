/**
 * @module gateway/messagelog
 * The gateway's non-repudiation message log: one record per exchange, on both the client and the
 * provider gateway, linked into a SHA-256 hash chain per gateway and sealed at intervals by
 * checkpoints the gateway signs with its Ed25519 signing key (the key the global configuration
 * publishes for it). {@link verifyMessageLog} checks a whole log offline, from the database alone
 * plus the public keys of the configurations, and says exactly which position was altered, removed,
 * inserted or truncated (gateway/messagelog-verify).
 *
 * What a record holds by default is metadata and digests (ids, parties, service, purpose, items,
 * status, request hash, response digest, both signatures); full bodies only when the gateway is
 * configured to keep them. No personal data appears in error messages or reports: they name
 * positions and hashes only.
 *
 * Formats (also in docs/message-log.md):
 * - record hash = sha256hex(prev_hash + "\n" + {@link canonicalRecord}(record)); the first record of
 *   a chain has prev_hash = 64 zeros ({@link GENESIS_HASH}); positions run 1, 2, 3, … per gateway.
 * - checkpoint signature = Ed25519 over {@link checkpointMessage}.
 */
import type { KeyObject } from 'node:crypto';
import type SQLite from 'better-sqlite3';
import type { CompiledQuery, Insertable, Kysely, Selectable, Transaction } from 'kysely';
import { sha256hex, signEd25519 } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { GroupCommit } from '../core/batch.ts';
import type { Database, MessageLogTable } from '../store/schema.ts';

/** prev_hash of the first record of every chain. */
export const GENESIS_HASH = '0'.repeat(64);

/** First element of every canonical record, so that a later format can be told apart. */
export const RECORD_FORMAT = 'onceonly-log-1';
/** Format 2 (migration 0008): the format-1 values, then the peer gateway and the detail JSON. */
export const RECORD_FORMAT_2 = 'onceonly-log-2';

/** First line of every signed checkpoint message (domain separation from other signatures). */
export const CHECKPOINT_CONTEXT = 'onceonly-log-checkpoint';

// Upper bound on records written by one group-commit transaction: 25 bound parameters per row keeps
// a full batch far below SQLite's 32766 and PostgreSQL's 65535 parameter limits.
const MAX_BATCH = 256;

/** One exchange as this gateway saw it (the caller fills it; the log adds position and hashes). */
export interface LogEntryInput {
  /** When the exchange completed, ISO 8601. */
  at: string;
  side: 'client' | 'provider';
  requestId: string;
  /** Client subsystem id. */
  client: string;
  /** Service path (provider subsystem and service code). */
  service: string;
  purpose: string | null;
  agreement: string | null;
  items: string[] | null;
  /** X-Road-UserId as received (an opaque id chosen by the client organisation). */
  userId: string | null;
  /** HTTP status returned to the client. */
  status: number;
  errorType: string | null;
  requestHash: string;
  responseDigest: string | null;
  requestSignature: string | null;
  responseSignature: string | null;
  /** Full request body, only when the gateway is configured to keep bodies; otherwise null. */
  requestBody: string | null;
  /** Full response body, only when the gateway is configured to keep bodies; otherwise null. */
  responseBody: string | null;
  /** The other gateway: the provider gateway used (client side), the sending gateway (provider side). */
  peer?: string | null;
  /** Facts about the exchange beyond the columns (X-Road request id, error id, time read, gateways tried); no personal data. */
  detail?: Record<string, unknown> | null;
  /**
   * What the exchange released about a person, when it did: handed to
   * {@link MessageLogOptions.onRelease} in the transaction that writes this record. Not part of
   * the record or its hash (the record already names the items, agreement and parties).
   */
  release?: unknown;
}

/** Where an appended record landed. */
export interface Appended {
  position: number;
  hash: string;
}

/** The stored columns a record hash covers: every column but `seq`, `prev_hash` and `hash`. */
export type LoggedFields = Omit<Selectable<MessageLogTable>, 'seq' | 'prev_hash' | 'hash'>;

/** Options of {@link MessageLog}. */
export interface MessageLogOptions {
  db: Kysely<Database>;
  dialect: 'sqlite' | 'postgres';
  gatewayId: string;
  /** The gateway's Ed25519 signing key; its public half is in the configuration `confSerial()` names. */
  signingKey: KeyObject;
  /** Serial of the global configuration in force, recorded in each checkpoint to find the key again. */
  confSerial: () => number;
  /** Checkpoint after this many new records or this many milliseconds (default 1000 records, 10 s). */
  checkpointEvery?: { records: number; ms: number };
  now?: () => Date;
  /** Told about failed background checkpoints (appends never fail because a checkpoint did). */
  onError?: (e: unknown) => void;
  /**
   * The raw better-sqlite3 handle under `db`, when the store is SQLite. Batches are then written
   * by one synchronous transaction with prepared statements, under Kysely's connection lock: on
   * the gateway's hot path this costs a fraction of the same statements through the query builder.
   */
  sqlite?: SQLite.Database | undefined;
  /**
   * Writes what records carrying a `release` released (access records, transparency-log entries)
   * inside the transaction that writes the records, so that a release and its record commit
   * together or not at all. Batches with releases take the query-builder path, not the raw one.
   */
  onRelease?: (trx: Transaction<Database>, releases: { position: number; at: string; release: unknown }[]) => Promise<void>;
}

/** The digest a record carries for a body: bodies enter the hash as digests, not verbatim. */
function bodyDigest(body: string | null): string | null {
  return body === null ? null : sha256hex(body);
}

/**
 * The canonical form of a record: `JSON.stringify` of an array of its logged values in this fixed
 * order: format tag, gateway_id, position, at, side, request_id, client, service, purpose, agreement,
 * items (the stored JSON text), user_id, status, error_type, request_hash, response_digest,
 * request_signature, response_signature, sha256hex(request_body) or null, sha256hex(response_body)
 * or null; in format 2 then peer and detail (the stored JSON text). An array (not an object) so
 * that no key order question can arise. The format is a column of its own, covered by the hash
 * through the tag: a record cannot be made to verify as the other format.
 */
export function canonicalRecord(r: LoggedFields): string {
  const v2 = Number(r.format) === 2;
  return JSON.stringify([
    v2 ? RECORD_FORMAT_2 : RECORD_FORMAT,
    r.gateway_id,
    Number(r.position),
    r.at,
    r.side,
    r.request_id,
    r.client,
    r.service,
    r.purpose,
    r.agreement,
    r.items,
    r.user_id,
    Number(r.status),
    r.error_type,
    r.request_hash,
    r.response_digest,
    r.request_signature,
    r.response_signature,
    bodyDigest(r.request_body),
    bodyDigest(r.response_body),
    ...(v2 ? [r.peer, r.detail] : []),
  ]);
}

/** The hash of a record given the hash of the record before it. */
export function recordHash(prevHash: string, r: LoggedFields): string {
  return sha256hex(`${prevHash}\n${canonicalRecord(r)}`);
}

/** The exact bytes a checkpoint signature covers. */
export function checkpointMessage(gatewayId: string, position: number, hash: string, at: string, confSerial: number): string {
  return `${CHECKPOINT_CONTEXT}\n${gatewayId}\n${position}\n${hash}\n${at}\n${confSerial}`;
}

// Lone UTF-16 surrogates and NUL cannot be stored faithfully (PostgreSQL rejects NUL in text,
// SQLite replaces lone surrogates when encoding UTF-8), and a value that changes on its way into the
// store would later fail verification. They become U+FFFD before hashing; the request hash and
// response digest still cover the original bytes.
const UNSTORABLE = /[\0\uD800-\uDFFF]/;
const LONE_SURROGATE_OR_NUL = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
function storable(s: string): string {
  return UNSTORABLE.test(s) ? s.replace(LONE_SURROGATE_OR_NUL, '\uFFFD') : s;
}

function invalid(field: string, expected: string): OnceOnlyError {
  return new OnceOnlyError('invalid_request', `message log entry: ${field} is not ${expected}`, { field, expected });
}

function requireText(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw invalid(field, 'a non-empty string');
  return storable(v);
}

function optionalText(v: unknown, field: string): string | null {
  if (v === null) return null;
  if (typeof v !== 'string') throw invalid(field, 'a string or null');
  return storable(v);
}

/** Checks an entry and turns it into the logged columns (position filled in at append time). */
function toFields(gatewayId: string, e: LogEntryInput): LoggedFields {
  if (e.side !== 'client' && e.side !== 'provider') throw invalid('side', "'client' or 'provider'");
  if (!Number.isInteger(e.status) || e.status < 0 || e.status > 999) throw invalid('status', 'an HTTP status code');
  let items: string | null = null;
  if (e.items !== null) {
    if (!Array.isArray(e.items) || !e.items.every((i) => typeof i === 'string')) throw invalid('items', 'an array of item ids or null');
    items = JSON.stringify(e.items.map(storable));
  }
  return {
    gateway_id: gatewayId,
    position: 0,
    at: requireText(e.at, 'at'),
    side: e.side,
    request_id: requireText(e.requestId, 'requestId'),
    client: requireText(e.client, 'client'),
    service: requireText(e.service, 'service'),
    purpose: optionalText(e.purpose, 'purpose'),
    agreement: optionalText(e.agreement, 'agreement'),
    items,
    user_id: optionalText(e.userId, 'userId'),
    status: e.status,
    error_type: optionalText(e.errorType, 'errorType'),
    request_hash: requireText(e.requestHash, 'requestHash'),
    response_digest: optionalText(e.responseDigest, 'responseDigest'),
    request_signature: optionalText(e.requestSignature, 'requestSignature'),
    response_signature: optionalText(e.responseSignature, 'responseSignature'),
    request_body: optionalText(e.requestBody, 'requestBody'),
    response_body: optionalText(e.responseBody, 'responseBody'),
    format: 2,
    peer: optionalText(e.peer ?? null, 'peer'),
    detail: detailText(e.detail ?? null),
  };
}

function detailText(d: Record<string, unknown> | null): string | null {
  if (d === null) return null;
  if (typeof d !== 'object' || Array.isArray(d)) throw invalid('detail', 'an object or null');
  return storable(JSON.stringify(d));
}

interface Pending {
  fields: LoggedFields;
  release: unknown;
}

/** The synchronous SQLite writer behind {@link MessageLogOptions.sqlite}: same rows, same chain. */
function rawWriter(sqlite: SQLite.Database, gatewayId: string): (rows: LoggedFields[]) => Appended[] | undefined {
  const lock = sqlite.prepare('UPDATE message_log_head SET position = position + ? WHERE gateway_id = ? RETURNING position, hash');
  const cols = ['gateway_id', 'position', 'at', 'side', 'request_id', 'client', 'service', 'purpose', 'agreement', 'items', 'user_id', 'status', 'error_type', 'request_hash', 'response_digest', 'request_signature', 'response_signature', 'request_body', 'response_body', 'format', 'peer', 'detail', 'prev_hash', 'hash'] as const;
  const insert = sqlite.prepare(`INSERT INTO message_log (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
  const moveHead = sqlite.prepare('UPDATE message_log_head SET hash = ? WHERE gateway_id = ?');
  return sqlite.transaction((rows: LoggedFields[]): Appended[] | undefined => {
    const head = lock.get(rows.length, gatewayId) as { position: number; hash: string } | undefined;
    if (!head) return undefined;
    let position = Number(head.position) - rows.length;
    let prev = head.hash;
    const out: Appended[] = [];
    for (const r of rows) {
      position += 1;
      const fields = { ...r, position };
      const hash = recordHash(prev, fields);
      const row: Record<(typeof cols)[number], unknown> = { ...fields, prev_hash: prev, hash };
      insert.run(...cols.map((c) => row[c] ?? null));
      out.push({ position, hash });
      prev = hash;
    }
    moveHead.run(prev, gatewayId);
    return out;
  });
}

/**
 * A gateway's message log. Appends made in one process are serialized and group-committed: the
 * appends that arrive while a transaction is in flight are written together by the next one. Across
 * processes sharing one PostgreSQL, each append transaction locks the chain's head row first, so
 * the chain never forks; the unique index on (gateway_id, position) is the last line of defence.
 */
export class MessageLog {
  /** The gateway whose chain this is. */
  readonly gatewayId: string;
  #raw: ((rows: LoggedFields[]) => Appended[] | undefined) | undefined;
  #insertRow: { columns: (keyof Insertable<MessageLogTable>)[]; compiled: CompiledQuery } | undefined;
  readonly #db: Kysely<Database>;
  readonly #dialect: 'sqlite' | 'postgres';
  readonly #key: KeyObject;
  readonly #confSerial: () => number;
  readonly #every: { records: number; ms: number };
  readonly #now: () => Date;
  readonly #onError: (e: unknown) => void;
  readonly #onRelease: MessageLogOptions['onRelease'];
  // Appends arriving together are group-committed, one batch at a time with checkpoints.
  readonly #appends = new GroupCommit<Pending, Appended>((batch) => this.#serial(() => this.#writeBatch(batch)), { max: MAX_BATCH });
  // Batches and checkpoints run one at a time in this process, in the order they were asked for.
  #exclusive: Promise<unknown> = Promise.resolve();
  #lastCheckpoint: number | null = null;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: MessageLogOptions) {
    if (!opts.gatewayId) throw invalid('gatewayId', 'a non-empty string');
    const every = opts.checkpointEvery ?? { records: 1000, ms: 10_000 };
    if (!(every.records >= 1) || !(every.ms >= 1)) throw invalid('checkpointEvery', 'positive record and millisecond counts');
    this.gatewayId = opts.gatewayId;
    this.#db = opts.db;
    this.#dialect = opts.dialect;
    this.#key = opts.signingKey;
    this.#confSerial = opts.confSerial;
    this.#every = every;
    this.#now = opts.now ?? (() => new Date());
    this.#onError = opts.onError ?? (() => undefined);
    this.#onRelease = opts.onRelease;
    if (opts.sqlite && opts.dialect === 'sqlite') this.#raw = rawWriter(opts.sqlite, this.gatewayId);
  }

  /** Appends one record in a transaction of the log's own (shared with appends arriving together). */
  append(entry: LogEntryInput): Promise<Appended> {
    let fields: LoggedFields;
    try {
      fields = toFields(this.gatewayId, entry);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return this.#appends.submit({ fields, release: entry.release });
  }

  /**
   * Appends one record inside the caller's transaction, so that it commits or rolls back with the
   * caller's other writes. The head row stays locked until that transaction ends: keep it short.
   */
  async appendIn(trx: Transaction<Database>, entry: LogEntryInput): Promise<Appended> {
    const written = await this.#write(trx, [toFields(this.gatewayId, entry)], [entry.release]);
    const first = written[0];
    if (!first) throw new OnceOnlyError('internal_error', 'message log append wrote nothing');
    return first;
  }

  /** Signs the current head now; null when nothing was appended since the last checkpoint. */
  async checkpoint(): Promise<Appended | null> {
    // After the appends already submitted, so that a checkpoint seals them.
    await this.#appends.drained();
    return this.#serial(() => this.#checkpointNow());
  }

  /** Starts periodic checkpoints (the timer does not keep the process alive). */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.checkpoint().catch((e: unknown) => this.#onError(e));
    }, this.#every.ms);
    this.#timer.unref();
  }

  /** Stops periodic checkpoints, waits for pending appends and writes a final checkpoint. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.checkpoint();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#exclusive.then(fn);
    this.#exclusive = run.catch(() => undefined);
    return run;
  }

  /** Writes one batch of appends (under {@link #serial}) and checkpoints when due. */
  async #writeBatch(batch: Pending[]): Promise<Appended[]> {
    const rows = batch.map((p) => p.fields);
    const releases = batch.map((p) => p.release);
    const withReleases = this.#onRelease !== undefined && releases.some((r) => r !== undefined);
    const raw = withReleases ? undefined : this.#raw;
    // Kysely's connection() takes the store's one SQLite connection, so no Kysely transaction
    // is open while the synchronous one runs; it returns undefined if the head row is missing.
    const fast = raw ? await this.#db.connection().execute(() => Promise.resolve(raw(rows))) : undefined;
    const written = fast ?? (await this.#db.transaction().execute((trx) => this.#write(trx, rows, releases)));
    if (written.length !== rows.length) throw new OnceOnlyError('internal_error', 'message log append lost a record');
    const last = written[written.length - 1];
    if (last) await this.#checkpointIfDue(last.position);
    return written;
  }

  /** Extends the chain by `rows` inside `trx`: lock head, insert, move head. */
  async #write(trx: Transaction<Database>, rows: LoggedFields[], releases: readonly unknown[] = []): Promise<Appended[]> {
    let head = await this.#lockHead(trx, rows.length);
    if (!head) {
      await this.#createHead(trx);
      head = await this.#lockHead(trx, rows.length);
      if (!head) throw new OnceOnlyError('internal_error', 'message log head could not be created');
    }
    let prev = head.hash;
    let position = head.position;
    const out: Insertable<MessageLogTable>[] = [];
    for (const r of rows) {
      position += 1;
      const fields = { ...r, position };
      const hash = recordHash(prev, fields);
      out.push({ ...fields, prev_hash: prev, hash });
      prev = hash;
    }
    if (this.#dialect === 'sqlite') {
      // On SQLite a statement compiled once and run per row is much cheaper than building a new
      // multi-row INSERT for every batch (the rows go to the same local file either way).
      const first = out[0];
      if (first) {
        const columns = Object.keys(first) as (keyof Insertable<MessageLogTable>)[];
        this.#insertRow ??= { columns, compiled: trx.insertInto('message_log').values(first).compile() };
        for (const r of out) await trx.executeQuery({ ...this.#insertRow.compiled, parameters: this.#insertRow.columns.map((c) => r[c] ?? null) });
      }
    } else {
      await trx.insertInto('message_log').values(out).execute();
    }
    await trx.updateTable('message_log_head').set({ position, hash: prev }).where('gateway_id', '=', this.gatewayId).execute();
    const released = out.flatMap((r, i) => (releases[i] === undefined ? [] : [{ position: r.position, at: r.at, release: releases[i] }]));
    if (released.length > 0 && this.#onRelease) await this.#onRelease(trx, released);
    return out.map((r) => ({ position: r.position, hash: r.hash }));
  }

  /**
   * Locks the head row and returns the chain's last position and hash. PostgreSQL: SELECT … FOR
   * UPDATE, so a second process waits here. SQLite: an UPDATE first, because a deferred transaction
   * that reads before writing fails (SQLITE_BUSY_SNAPSHOT) when another connection wrote in between,
   * whereas a write first takes the database's write lock and waits for it (busy_timeout).
   */
  async #lockHead(trx: Transaction<Database>, count: number): Promise<{ position: number; hash: string } | undefined> {
    if (this.#dialect === 'postgres') {
      const h = await trx.selectFrom('message_log_head').select(['position', 'hash']).where('gateway_id', '=', this.gatewayId).forUpdate().executeTakeFirst();
      return h && { position: Number(h.position), hash: h.hash };
    }
    const h = await trx
      .updateTable('message_log_head')
      .set((eb) => ({ position: eb('position', '+', count) }))
      .where('gateway_id', '=', this.gatewayId)
      .returning(['position', 'hash'])
      .executeTakeFirst();
    // RETURNING gives the new position and the (not yet updated) old hash.
    return h && { position: Number(h.position) - count, hash: h.hash };
  }

  /** Creates the head row, resuming after the last stored record if the row was ever lost. */
  async #createHead(trx: Transaction<Database>): Promise<void> {
    const last = await trx
      .selectFrom('message_log')
      .select(['position', 'hash'])
      .where('gateway_id', '=', this.gatewayId)
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();
    await trx
      .insertInto('message_log_head')
      .values({ gateway_id: this.gatewayId, position: last ? Number(last.position) : 0, hash: last?.hash ?? GENESIS_HASH })
      .onConflict((oc) => oc.column('gateway_id').doNothing())
      .execute();
  }

  async #checkpointIfDue(position: number): Promise<void> {
    try {
      this.#lastCheckpoint ??= await this.#readLastCheckpoint();
      if (position - this.#lastCheckpoint >= this.#every.records) await this.#checkpointNow();
    } catch (e) {
      // The records are committed; a missing checkpoint is made good by the next one.
      this.#onError(e);
    }
  }

  async #readLastCheckpoint(): Promise<number> {
    const cp = await this.#db
      .selectFrom('message_log_checkpoint')
      .select('position')
      .where('gateway_id', '=', this.gatewayId)
      .orderBy('position', 'desc')
      .limit(1)
      .executeTakeFirst();
    return cp ? Number(cp.position) : 0;
  }

  async #checkpointNow(): Promise<Appended | null> {
    // Head position and hash change together in one transaction, so this read is a consistent pair.
    const head = await this.#db.selectFrom('message_log_head').select(['position', 'hash']).where('gateway_id', '=', this.gatewayId).executeTakeFirst();
    const last = await this.#readLastCheckpoint();
    this.#lastCheckpoint = last;
    if (!head || Number(head.position) <= last) return null;
    const position = Number(head.position);
    const at = this.#now().toISOString();
    const confSerial = this.#confSerial();
    const signature = signEd25519(this.#key, checkpointMessage(this.gatewayId, position, head.hash, at, confSerial));
    await this.#db
      .insertInto('message_log_checkpoint')
      .values({ gateway_id: this.gatewayId, position, hash: head.hash, at, conf_serial: confSerial, signature })
      // Another process may have sealed the same head a moment earlier; one checkpoint suffices.
      .onConflict((oc) => oc.columns(['gateway_id', 'position']).doNothing())
      .execute();
    this.#lastCheckpoint = position;
    return { position, hash: head.hash };
  }
}
