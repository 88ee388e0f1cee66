/**
 * @module transparency/access
 * Access records: what a provider gateway released about a person, to whom, why and under which
 * agreement. Each is written in the transaction of the exchange's message-log record and appended
 * to the gateway's transparency log, so a person can see every use of their data
 * ({@link AccessRecorder.list}) with a proof that the record is in the log.
 *
 * The log holds a digest of each record, not the record: a transparency log cannot forget, and
 * personal data has no place in one. A person holding their record recomputes its digest, finds
 * it in the log entry, and checks the entry's inclusion proof against the signed tree head.
 */
import type { Kysely, Selectable, Transaction } from 'kysely';
import { sha256hex } from '../core/crypto.ts';
import { canonicalJson } from '../core/json.ts';
import { OnceOnlyError } from '../core/errors.ts';
import type { AccessRecordTable, Database } from '../store/schema.ts';
import type { NoteVerifier } from '../core/note.ts';
import { parseEntry, verifyInclusionProof, type InclusionProofDocument, type Verdict, type WitnessPolicy } from './formats.ts';
import type { TransparencyLog } from './log.ts';

/** First field of every access record (so a later format can be told apart). */
export const ACCESS_FORMAT = 'onceonly-access-record-1';

/** What a release gives the recorder (the gateway fills it). */
export interface Release {
  person: string;
  client: string;
  provider: string;
  service: string;
  /** Items released; [] for an existence check. */
  items: string[];
  agreement: string;
  purpose: string;
  legalBasis: string;
  requestId: string;
  userId: string | null;
  /**
   * The valid-time date read (`asAt`), present only when the release read the past; and the
   * transaction-time instant (`knownAt`), present only when the release read what the register
   * believed then. Absent keys keep the digests of records written before they existed unchanged.
   */
  asAt?: string;
  knownAt?: string;
  /** Present when the release was a notification of a change (Tell Us Once): its kind and event id. */
  notice?: { type: string; eventId: string };
}

/** An access record as served to the person: every field their digest covers. */
export interface AccessRecord extends Release {
  format: typeof ACCESS_FORMAT;
  gateway: string;
  /** The exchange's position in the gateway's message log. */
  logPosition: number;
  /** Which of the exchange's records, when it released about several people (absent: the first). */
  part?: number;
  at: string;
}

/** The transparency-log entry for an access record. */
export interface AccessLogRecord {
  kind: 'access';
  gateway: string;
  /** sha256hex of the access record's canonical JSON (RFC 8785 for the values used). */
  digest: string;
}

/** The digest that ties a record to its log entry. */
export function accessDigest(r: AccessRecord): string {
  return sha256hex(canonicalJson(r, 'accessRecord'));
}

export interface AccessPage {
  person: string;
  page: number;
  pageSize: number;
  total: number;
  /** Newest first; each with its log entry's inclusion proof against the latest signed tree head. */
  records: { record: AccessRecord; proof: InclusionProofDocument }[];
}

/** The access record a stored row holds (every field its digest covers). */
export function accessRecordOf(r: Selectable<AccessRecordTable>): AccessRecord {
  return {
    format: ACCESS_FORMAT,
    gateway: r.gateway_id,
    logPosition: Number(r.log_position),
    ...(Number(r.part) > 0 ? { part: Number(r.part) } : {}),
    at: r.at,
    person: r.person,
    client: r.client,
    provider: r.provider,
    service: r.service,
    items: JSON.parse(r.items) as string[],
    agreement: r.agreement,
    purpose: r.purpose,
    legalBasis: r.legal_basis,
    requestId: r.request_id,
    userId: r.user_id,
    ...(r.as_at !== null ? { asAt: r.as_at } : {}),
    ...(r.known_at !== null ? { knownAt: r.known_at } : {}),
    ...(r.notice !== null ? { notice: JSON.parse(r.notice) as { type: string; eventId: string } } : {}),
  };
}

export class AccessRecorder {
  readonly #db: Kysely<Database>;
  readonly #log: TransparencyLog;
  readonly #gateway: string;

  constructor(opts: { db: Kysely<Database>; log: TransparencyLog; gatewayId: string }) {
    this.#db = opts.db;
    this.#log = opts.log;
    this.#gateway = opts.gatewayId;
  }

  /**
   * Writes the access records of releases inside the message log's transaction. An exchange may
   * release about several people (a pull-feed page of change events): one record each, `part` 0..
   */
  async write(trx: Transaction<Database>, releases: { position: number; at: string; release: unknown }[]): Promise<void> {
    const records = releases.flatMap(({ position, at, release }) =>
      (Array.isArray(release) ? (release as Release[]) : [release as Release]).map((r, part): AccessRecord => ({ format: ACCESS_FORMAT, gateway: this.#gateway, logPosition: position, ...(part > 0 ? { part } : {}), at, ...r })),
    );
    if (records.length === 0) return;
    const appended = await this.#log.appendIn(
      trx,
      records.map((r): AccessLogRecord => ({ kind: 'access', gateway: this.#gateway, digest: accessDigest(r) })),
    );
    await trx
      .insertInto('access_record')
      .values(
        records.map((r, i) => ({
          gateway_id: r.gateway,
          log_position: r.logPosition,
          part: r.part ?? 0,
          person: r.person,
          at: r.at,
          client: r.client,
          provider: r.provider,
          service: r.service,
          items: JSON.stringify(r.items),
          agreement: r.agreement,
          purpose: r.purpose,
          legal_basis: r.legalBasis,
          request_id: r.requestId,
          user_id: r.userId,
          tlog_index: appended[i]!.index,
          as_at: r.asAt ?? null,
          known_at: r.knownAt ?? null,
          notice: r.notice ? JSON.stringify(r.notice) : null,
        })),
      )
      .execute();
  }

  /** A person's records on this gateway, newest first, with inclusion proofs. */
  async list(person: string, page = 1, pageSize = 20): Promise<AccessPage> {
    if (!Number.isInteger(page) || page < 1 || page > 100_000) throw new OnceOnlyError('invalid_request', 'page must be a whole number from 1', { field: 'query.page', expected: '1, 2, 3, …' });
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) throw new OnceOnlyError('invalid_request', 'pageSize must be from 1 to 100', { field: 'query.pageSize', expected: '1 to 100' });
    const base = this.#db.selectFrom('access_record').where('gateway_id', '=', this.#gateway).where('person', '=', person);
    const count = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    const rows = await base
      .selectAll()
      .orderBy('at', 'desc')
      .orderBy('log_position', 'desc')
      .orderBy('part', 'desc')
      .limit(pageSize)
      .offset((page - 1) * pageSize)
      .execute();
    // The newest records must be covered by the head the proofs are against: sign now if they are not.
    let head = await this.#log.latestTreeHead();
    const newest = rows.reduce((m, r) => Math.max(m, Number(r.tlog_index)), -1);
    if (!head || head.treeSize <= newest) head = (await this.#log.signTreeHead({ onlyIfChanged: true })) ?? (await this.#log.latestTreeHead());
    if (!head && rows.length) throw new OnceOnlyError('service_unavailable', 'the transparency log cannot sign a tree head');
    const records = [];
    for (const r of rows) {
      const record = accessRecordOf(r);
      records.push({ record, proof: await this.#log.proveInclusion(Number(r.tlog_index), head) });
    }
    return { person, page, pageSize, total: Number(count?.n ?? 0), records };
  }
}

/**
 * Checks one record as a person receives it: its digest is the one in the log entry, the entry is
 * the gateway's (`kind: access`, its gateway id), and the entry's inclusion proof leads to a
 * checkpoint signed with `logKey` (the gateway's log key from the global configuration) and, with
 * a policy, cosigned by a quorum of the witnesses trusted.
 */
export function verifyAccessRecord(record: AccessRecord, proof: InclusionProofDocument, logKey: NoteVerifier, policy?: WitnessPolicy): Verdict {
  const verdict = verifyInclusionProof(proof, logKey, policy);
  if (!verdict.ok) return verdict;
  const entry = proof.entry === undefined ? undefined : parseEntry(proof.entry);
  const logged = entry?.record as Partial<AccessLogRecord> | undefined;
  if (!logged || logged.kind !== 'access') return { ok: false, reason: 'the proven log entry is not an access record', details: verdict.details };
  if (logged.gateway !== record.gateway) return { ok: false, reason: `the log entry is from gateway ${String(logged.gateway)}, the record from ${record.gateway}`, details: verdict.details };
  if (logged.digest !== accessDigest(record)) return { ok: false, reason: 'the record does not match the digest in its log entry: it was altered', details: verdict.details };
  return { ok: true, details: [...verdict.details, 'the record matches its log entry'] };
}
