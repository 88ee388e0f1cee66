/**
 * @module central/audit
 * The admin audit log: one entry per successful management action, written in the same
 * transaction as the change it records, so the log and the state cannot disagree. Entries form
 * a hash chain (each `hash` covers the entry and the previous `hash`), and the `audit_seq`
 * counter remembers how many entries there should be, so an edit, an insertion, a deletion in
 * the middle or a truncation at the end is detected by {@link verifyAdminLog}.
 *
 * The chain makes tampering detectable, not impossible: someone with write access could
 * recompute every hash. Publishing the head (it is printed by `central audit --verify`) or
 * copying it elsewhere anchors it.
 */
import type { Kysely, Transaction } from 'kysely';
import { sha256hex } from '../core/crypto.ts';
import type { Database } from '../store/schema.ts';

/** The `prev_hash` of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** An audit entry as read back. */
export interface AuditEntry {
  seq: number;
  at: string;
  /** `init`, `cli` or `api:<token-id>`. */
  actor: string;
  /** e.g. `member.add`, `gateway.suspend`, `agreements.publish`. */
  action: string;
  /** The id acted on. */
  target: string;
  detail: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** What {@link appendAudit} records. */
export interface AuditRecord {
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
  at?: Date;
}

/** Result of {@link verifyAdminLog}. */
export type AuditVerification =
  | { ok: true; entries: number; head: string }
  | { ok: false; entries: number; seq: number; problem: string };

/** The hash of one entry: SHA-256 over a JSON array, which leaves no ambiguity between fields. */
export function auditHash(e: { seq: number; at: string; actor: string; action: string; target: string; detail: string; prev_hash: string }): string {
  return sha256hex(JSON.stringify([e.seq, e.at, e.actor, e.action, e.target, e.detail, e.prev_hash]));
}

/**
 * Appends an entry inside `trx`. The counter row is updated first: on PostgreSQL that row lock
 * serialises concurrent writers, so the chain never forks; on SQLite the write transaction
 * already does.
 */
export async function appendAudit(trx: Transaction<Database>, rec: AuditRecord): Promise<AuditEntry> {
  const { value: seq } = await trx
    .updateTable('central_counter')
    .set((eb) => ({ value: eb('value', '+', 1) }))
    .where('name', '=', 'audit_seq')
    .returning('value')
    .executeTakeFirstOrThrow();
  const prev = seq > 1 ? await trx.selectFrom('central_audit').select('hash').where('seq', '=', seq - 1).executeTakeFirst() : undefined;
  const row = {
    seq,
    at: (rec.at ?? new Date()).toISOString(),
    actor: rec.actor,
    action: rec.action,
    target: rec.target,
    detail: JSON.stringify(rec.detail),
    // A missing predecessor is itself tampering; chain on from a marker that can never verify.
    prev_hash: seq > 1 ? (prev?.hash ?? 'missing') : GENESIS_HASH,
  };
  const hash = auditHash(row);
  await trx.insertInto('central_audit').values({ ...row, hash }).execute();
  return { seq, at: row.at, actor: row.actor, action: row.action, target: row.target, detail: rec.detail, prevHash: row.prev_hash, hash };
}

/** Reads entries in order, after `after` (a seq), at most `limit`. */
export async function readAuditLog(db: Kysely<Database>, opts: { after?: number; limit?: number } = {}): Promise<AuditEntry[]> {
  const rows = await db
    .selectFrom('central_audit')
    .selectAll()
    .where('seq', '>', opts.after ?? 0)
    .orderBy('seq')
    .limit(opts.limit ?? 1000)
    .execute();
  return rows.map((r) => ({
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: safeParse(r.detail),
    prevHash: r.prev_hash,
    hash: r.hash,
  }));
}

function safeParse(text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : { value: v };
  } catch {
    return { unparseable: true };
  }
}

/**
 * Walks the whole chain and reports the first entry that does not verify: a recomputed hash that
 * differs (entry edited), a `prev_hash` that is not its predecessor's hash, a gap in `seq`
 * (entry deleted or inserted with a chosen seq), or fewer entries than the counter says
 * (truncated at the end).
 */
export async function verifyAdminLog(db: Kysely<Database>): Promise<AuditVerification> {
  const counter = await db.selectFrom('central_counter').select('value').where('name', '=', 'audit_seq').executeTakeFirst();
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let count = 0;
  let cursor = Number.MIN_SAFE_INTEGER;
  // Paged so a long log does not have to fit in memory at once.
  for (;;) {
    const rows = await db.selectFrom('central_audit').selectAll().where('seq', '>', cursor).orderBy('seq').limit(1000).execute();
    if (rows.length === 0) break;
    for (const r of rows) {
      cursor = r.seq;
      if (r.seq < expectedSeq) return { ok: false, entries: count, seq: r.seq, problem: `entry ${r.seq} was inserted out of sequence` };
      if (r.seq > expectedSeq) return { ok: false, entries: count, seq: expectedSeq, problem: `entry ${expectedSeq} is missing (next is ${r.seq})` };
      if (r.prev_hash !== prevHash) return { ok: false, entries: count, seq: r.seq, problem: `entry ${r.seq} does not follow entry ${r.seq - 1} (prev_hash mismatch)` };
      if (auditHash(r) !== r.hash) return { ok: false, entries: count, seq: r.seq, problem: `entry ${r.seq} was altered (hash mismatch)` };
      prevHash = r.hash;
      expectedSeq++;
      count++;
    }
  }
  const expected = counter?.value ?? 0;
  if (count !== expected) return { ok: false, entries: count, seq: count + 1, problem: `the log holds ${count} entries but ${expected} were written (entries removed at the end)` };
  return { ok: true, entries: count, head: prevHash };
}
