/**
 * @module gateway/messagelog-verify
 * The offline verifier of a gateway's message log (gateway/messagelog writes it): every record's
 * hash, every link of the chain, every checkpoint's signature and hash, from the database alone
 * plus the public keys of the configurations. It names exactly which position was altered,
 * removed, inserted, reordered or truncated; reports name positions and hashes, never personal data.
 */
import type { KeyObject } from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { verifyEd25519 } from '../core/crypto.ts';
import type { Database, MessageLogCheckpointTable, MessageLogTable } from '../store/schema.ts';
import { GENESIS_HASH, checkpointMessage, recordHash } from './messagelog.ts';

// Positions read per query by the verifier; bounds its memory whatever the log's size.
const VERIFY_PAGE = 5000;
// How far from its stored position the verifier looks for a moved record's original position, and
// for how many records at most (each probe costs 2 × window hashes; beyond that it says 'altered').
const REORDER_WINDOW = 16;
const MAX_REORDER_PROBES = 10_000;

/** One thing wrong with a log, at the position where it is. */
export interface VerifyProblem {
  position: number;
  kind: 'altered' | 'removed' | 'inserted' | 'reordered' | 'bad-checkpoint' | 'truncated';
  message: string;
}

/** The outcome of {@link verifyMessageLog}. */
export interface VerifyReport {
  ok: boolean;
  gatewayId: string;
  /** Rows stored for this gateway (including any that do not belong in the chain). */
  records: number;
  /** Checkpoint rows stored for this gateway. */
  checkpoints: number;
  /** Position of the last checkpoint whose signature verified and whose hash matched, or null. */
  lastCheckpoint: number | null;
  /** Last position of the chain as stored, 0 for an empty log. */
  lastPosition: number;
  /** Records after the last good checkpoint: verified as a chain only (informational). */
  uncovered: number;
  /** Informational remarks that are not problems. */
  notes: string[];
  problems: VerifyProblem[];
}

type LogRow = Selectable<MessageLogTable>;
type CheckpointRow = Selectable<MessageLogCheckpointTable>;

/** A record accepted into the walk, with what is known about its links to its neighbours. */
interface Walked {
  position: number;
  hash: string;
  /** Does its prev_hash name the record before it? null after a gap (the removal explains it). */
  inLink: boolean | null;
  /** Already reported as altered or reordered, or as an isolated insertion: its broken links need no more words. */
  explained: boolean;
}

function short(h: string): string {
  return `${h.slice(0, 12)}…`;
}

/**
 * Verifies a gateway's whole message log from the database alone: every record's hash, every link
 * of the chain, every checkpoint's signature (with the key `keyForSerial` returns for the checkpoint's
 * configuration serial) and every checkpoint's hash against the record at its position. Runs in one
 * read-only transaction (repeatable read on PostgreSQL) so that a gateway appending meanwhile cannot
 * look like tampering. On SQLite that transaction holds the store's one connection: run it offline.
 */
export async function verifyMessageLog(db: Kysely<Database>, gatewayId: string, keyForSerial: (serial: number) => KeyObject | undefined): Promise<VerifyReport> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute((trx) => verifyIn(trx, gatewayId, keyForSerial));
}

async function verifyIn(trx: Transaction<Database>, gatewayId: string, keyForSerial: (serial: number) => KeyObject | undefined): Promise<VerifyReport> {
  const problems: VerifyProblem[] = [];
  const notes: string[] = [];
  const problem = (position: number, kind: VerifyProblem['kind'], message: string): void => {
    problems.push({ position, kind, message });
  };

  // Checkpoints first: only those whose signature holds say anything about the records.
  const cpRows: CheckpointRow[] = await trx.selectFrom('message_log_checkpoint').selectAll().where('gateway_id', '=', gatewayId).orderBy('position').execute();
  const goodCps = new Map<number, CheckpointRow>();
  for (const cp of cpRows) {
    const position = Number(cp.position);
    const serial = Number(cp.conf_serial);
    const key = keyForSerial(serial);
    if (!key) {
      problem(position, 'bad-checkpoint', `checkpoint at position ${position} names configuration serial ${serial}, for which no signing key of this gateway is known`);
    } else if (!verifyEd25519(key, checkpointMessage(gatewayId, position, cp.hash, cp.at, serial), cp.signature)) {
      problem(position, 'bad-checkpoint', `checkpoint at position ${position} (signed at ${cp.at}) has a signature that does not verify with the gateway's key of configuration serial ${serial}`);
    } else {
      goodCps.set(position, cp);
    }
  }
  let lastMatchedCp: number | null = null;

  let records = 0;
  let expected = 1;
  let prevHash = GENESIS_HASH;
  // b: the last record accepted into the chain; a: the one before it.
  const walk: { a: Walked | null; b: Walked | null } = { a: null, b: null };

  // Decides what a broken link into `b` means, now that we know whether `next` links to `b`.
  const settle = (next: Walked | null): void => {
    const { a, b } = walk;
    if (!b || b.inLink !== false || b.explained) return;
    if (a?.explained) return;
    const outLink = next && next.position === b.position + 1 ? next.inLink : null;
    if (outLink === false) {
      // b names neither neighbour: it does not belong in the chain.
      b.explained = true;
      problem(b.position, 'inserted', `record ${b.position} does not link to record ${b.position - 1} and record ${b.position + 1} does not link to it: it was put into the log directly`);
    } else if (outLink === true && a) {
      // b is still named by its successor, so b is original; the record before it was rewritten
      // together with its own hash (its successor still names the original hash).
      a.explained = true;
      problem(a.position, 'altered', `record ${a.position} was rewritten and its hash recomputed: record ${b.position} still names its original hash`);
    } else if (outLink === true) {
      problem(b.position, 'altered', `record ${b.position} is the first record but does not start from the genesis hash`);
    } else {
      problem(b.position, 'inserted', `record ${b.position}'s prev_hash does not name the hash of record ${b.position - 1}: it was put into the log directly`);
    }
  };

  const accept = (row: LogRow, position: number, pageHashes: Map<string, number>): void => {
    let inLink: boolean | null = null;
    if (position > expected) {
      problem(
        expected,
        'removed',
        position - expected === 1 ? `record ${expected} is missing` : `records ${expected}..${position - 1} are missing (${position - expected} records)`,
      );
    } else {
      inLink = row.prev_hash === prevHash;
    }
    const node: Walked = { position, hash: row.hash, inLink, explained: false };
    if (recordHash(row.prev_hash, row) !== row.hash) {
      node.explained = true;
      // A record moved to another position keeps a hash that recomputes at its original position.
      // Stored positions near it may be tampered with too (a swap), so nearby positions are tried.
      const from = originalPosition(row, position, pageHashes);
      if (from !== null) {
        problem(position, 'reordered', `record at position ${position} was logged at position ${from}`);
      } else {
        problem(position, 'altered', `record ${position}'s content does not match its hash (stored ${short(row.hash)})`);
      }
    }
    const cp = goodCps.get(position);
    if (cp) {
      if (cp.hash === row.hash) {
        lastMatchedCp = position;
      } else {
        const since = lastMatchedCp === null ? 1 : lastMatchedCp + 1;
        problem(
          position,
          'bad-checkpoint',
          `checkpoint signed at ${cp.at} seals position ${position} with hash ${short(cp.hash)}, but the record there now has ${short(row.hash)}: records ${since}..${position} were rewritten after they were sealed`,
        );
      }
    }
    settle(node);
    walk.a = walk.b;
    walk.b = node;
    prevHash = row.hash;
    expected = position + 1;
  };

  let reorderProbes = 0;
  const originalPosition = (row: LogRow, position: number, pageHashes: Map<string, number>): number | null => {
    if (reorderProbes >= MAX_REORDER_PROBES) return null;
    reorderProbes += 1;
    const linked = row.prev_hash === GENESIS_HASH ? 1 : (pageHashes.get(row.prev_hash) ?? -1) + 1;
    const candidates = [linked];
    for (let d = 1; d <= REORDER_WINDOW; d++) candidates.push(position - d, position + d);
    for (const c of candidates) {
      if (c >= 1 && c !== position && recordHash(row.prev_hash, { ...row, position: c }) === row.hash) return c;
    }
    return null;
  };

  const firstPosition = async (from: number | null): Promise<number | null> => {
    let q = trx.selectFrom('message_log').select((eb) => eb.fn.min('position').as('p')).where('gateway_id', '=', gatewayId);
    if (from !== null) q = q.where('position', '>=', from);
    const r = await q.executeTakeFirst();
    return r?.p === null || r?.p === undefined ? null : Number(r.p);
  };

  let start = await firstPosition(null);
  while (start !== null) {
    const end = start + VERIFY_PAGE;
    const rows = await trx
      .selectFrom('message_log')
      .selectAll()
      .where('gateway_id', '=', gatewayId)
      .where('position', '>=', start)
      .where('position', '<', end)
      .orderBy('position')
      .orderBy('seq')
      .execute();
    records += rows.length;
    const pageHashes = new Map<string, number>();
    for (const r of rows) if (!pageHashes.has(r.hash)) pageHashes.set(r.hash, Number(r.position));
    for (let i = 0; i < rows.length; ) {
      const position = Number(rows[i]?.position);
      let j = i;
      while (j < rows.length && Number(rows[j]?.position) === position) j++;
      const group = rows.slice(i, j);
      i = j;
      if (position < 1) {
        for (const _ of group) problem(position, 'inserted', `a record claims position ${position}, outside the chain (positions start at 1)`);
        continue;
      }
      // Several rows at one position (possible only if the unique index was dropped): the one
      // that links and recomputes is the chain's; the others were inserted.
      const genuine =
        group.find((r) => r.prev_hash === prevHash && recordHash(r.prev_hash, r) === r.hash) ??
        group.find((r) => recordHash(r.prev_hash, r) === r.hash) ??
        group[0];
      if (!genuine) continue;
      for (const r of group) {
        if (r !== genuine) problem(position, 'inserted', `a second record claims position ${position}: it was put into the log directly`);
      }
      accept(genuine, position, pageHashes);
    }
    start = await firstPosition(end);
  }
  settle(null);
  const lastRecord = walk.b;
  const lastPosition = lastRecord?.position ?? 0;

  // Rows removed from the end leave no gap; the signed checkpoints and the head still count them.
  let sealedTo = 0;
  for (const p of goodCps.keys()) sealedTo = Math.max(sealedTo, p);
  let truncated = false;
  if (sealedTo > lastPosition) {
    truncated = true;
    const cp = goodCps.get(sealedTo);
    problem(lastPosition + 1, 'truncated', `records ${lastPosition + 1}..${sealedTo} are missing from the end of the log; the checkpoint signed at ${cp?.at ?? '?'} covers them`);
  }
  const head = await trx.selectFrom('message_log_head').select(['position', 'hash']).where('gateway_id', '=', gatewayId).executeTakeFirst();
  if (!head) {
    if (lastPosition > 0) notes.push('the chain head row is missing (it is recreated from the last record at the next append)');
  } else {
    const hp = Number(head.position);
    if (hp > lastPosition && !truncated) {
      problem(lastPosition + 1, 'truncated', `records ${lastPosition + 1}..${hp} are missing from the end of the log; the chain head counts them`);
    } else if (hp < lastPosition && !problems.some((p) => p.position === hp + 1)) {
      problem(hp + 1, 'inserted', `records ${hp + 1}..${lastPosition} lie beyond the chain head (position ${hp}): they were not appended through the log`);
    } else if (hp === lastPosition && lastRecord && head.hash !== lastRecord.hash && !problems.some((p) => p.position === hp)) {
      problem(hp, 'altered', `record ${hp} differs from the chain head's hash ${short(head.hash)}: it was rewritten with a recomputed hash`);
    }
  }

  const lastCheckpoint: number | null = lastMatchedCp;
  const uncovered = Math.max(0, lastPosition - (lastCheckpoint ?? 0));
  if (uncovered > 0) {
    notes.push(
      uncovered === lastPosition
        ? `no checkpoint covers the log yet: records 1..${lastPosition} are verified as a chain only`
        : `records ${(lastCheckpoint ?? 0) + 1}..${lastPosition} are not yet covered by a checkpoint (verified as a chain only)`,
    );
  }
  problems.sort((x, y) => x.position - y.position);
  return { ok: problems.length === 0, gatewayId, records, checkpoints: cpRows.length, lastCheckpoint, lastPosition, uncovered, notes, problems };
}

/** Human-readable form of a report, for `onceonly log verify`. */
export function formatReport(report: VerifyReport): string {
  const lines = [
    `message log of gateway ${report.gatewayId}: ${report.ok ? 'OK' : 'FAILED'}`,
    `  records:     ${report.records}${report.lastPosition > 0 ? ` (chain positions 1..${report.lastPosition})` : ''}`,
    `  checkpoints: ${report.checkpoints}${report.lastCheckpoint === null ? '' : `, last good one at position ${report.lastCheckpoint}`}`,
  ];
  for (const n of report.notes) lines.push(`  note: ${n}`);
  if (report.problems.length > 0) {
    lines.push(`  problems (${report.problems.length}):`);
    for (const p of report.problems) lines.push(`    position ${String(p.position).padEnd(8)} ${p.kind.padEnd(15)} ${p.message}`);
  }
  return `${lines.join('\n')}\n`;
}
