/**
 * @module transparency/verify
 * The offline verifier of a stored transparency log (transparency/log writes it): it re-derives
 * every leaf hash, every stored subtree hash and every signed tree head from the entries, and
 * names the first position where the store disagrees (an entry altered, deleted, inserted or
 * re-ordered; a subtree hash or a signed head that does not match). Reports name positions and
 * hashes, never a record.
 */
import type { Kysely, Transaction } from 'kysely';
import { createHash } from 'node:crypto';
import { importPublicJwk, verifyEd25519, type Ed25519PublicJwk } from '../core/crypto.ts';
import { foldSubtrees, leafHash, nodeHash, rootFromLeaves } from '../core/merkle.ts';
import { keyIdHex } from '../core/note.ts';
import type { Database, TransparencyHeadTable } from '../store/schema.ts';
import { checkpointText, logVerifier, parseEntry } from './formats.ts';
import { key } from './log.ts';
import { accessDigest, accessRecordOf, type AccessLogRecord } from './access.ts';

/**
 * Whether a stored head's signature holds under one of `keys`: a checkpoint (key ID of 8 hex
 * digits, c2sp.org/signed-note) or a head signed before migration 0009 (onceonly-tree-head-1:
 * Ed25519 over five lines, under the key's RFC 7638 thumbprint). Undefined when no key has its ID.
 */
function headSignatureHolds(log: string, h: TransparencyHeadTable, keys: readonly Ed25519PublicJwk[]): boolean | undefined {
  const n = Number(h.tree_size);
  const root = Buffer.from(h.root_hash);
  if (h.key_id.length === 8) {
    const v = keys.map((k) => logVerifier(log, k)).find((x) => keyIdHex(x.keyId) === h.key_id);
    if (!v) return undefined;
    const sig = Buffer.from(h.signature, 'base64');
    return sig.length === 68 && sig.readUInt32BE(0) === v.keyId && v.verify(checkpointText(log, n, root), sig.subarray(4)) !== undefined;
  }
  const k = keys.find((x) => createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x.x}"}`).digest('base64url') === h.key_id);
  if (!k) return undefined;
  return verifyEd25519(importPublicJwk(k), `onceonly-tree-head-1\n${log}\n${n}\n${root.toString('hex')}\n${h.signed_at}\n`, h.signature);
}

// Entries read per query by the verifier: bounds its memory whatever the log's size.
const VERIFY_PAGE = 5000;
// Recent entries whose claimed index the verifier remembers, to spot two entries claiming one index.
const CLAIM_WINDOW = 4096;
// Problems listed in a report; the count goes on.
const MAX_PROBLEMS = 200;

/** One thing wrong with a stored log, at the first entry position it concerns. */
export interface LogProblem {
  position: number;
  /** `access`: an access entry whose access record is missing or does not match its digest. */
  kind: 'altered' | 'deleted' | 'inserted' | 'reordered' | 'node' | 'head' | 'access';
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
  const keys = opts.publicKeys ?? [];
  if (keys.length === 0) notes.push('signatures of tree heads were not checked: no public key was given');
  const headRows = await trx.selectFrom('transparency_head').selectAll().where('log', '=', log).orderBy('tree_size').orderBy('signed_at').execute();
  const headsAt = new Map<number, typeof headRows>();
  // In an object: it is set inside checkHeads, where flow analysis would not see the assignment.
  const good: { head: number | null } = { head: null };
  for (const h of headRows) {
    const n = Number(h.tree_size);
    if (keys.length > 0) {
      const holds = headSignatureHolds(log, h, keys);
      if (holds === undefined) {
        problem(0, 'head', `the tree head of size ${n} signed at ${h.signed_at} names key ${h.key_id}, which is not one of the log's keys`, -1);
        continue;
      }
      if (!holds) {
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
    const accessEntries: AccessEntry[] = [];

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
        const r = e.record as Partial<AccessLogRecord> | null;
        if (r && typeof r === 'object' && r.kind === 'access' && typeof r.gateway === 'string' && typeof r.digest === 'string') accessEntries.push({ position: s, gateway: r.gateway, digest: r.digest });
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
    // A missing or altered record explains no subtree hash: it leaves the tree as it was.
    for (const p of await checkAccessRecords(trx, accessEntries)) problem(p.position, 'access', p.message, -1);
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


/** An access entry of the log: the release it records is in `access_record` under its position. */
interface AccessEntry {
  position: number;
  gateway: string;
  digest: string;
}

/**
 * The access entries of one page whose access record is gone or no longer matches the digest the
 * log holds: deleting or editing a record of a release leaves its entry behind, named here by its
 * position and the gateway (the record's content, personal data, is never shown).
 */
async function checkAccessRecords(trx: Transaction<Database>, entries: readonly AccessEntry[]): Promise<{ position: number; message: string }[]> {
  const out: { position: number; message: string }[] = [];
  for (const gateway of new Set(entries.map((e) => e.gateway))) {
    const mine = entries.filter((e) => e.gateway === gateway);
    const rows = await trx.selectFrom('access_record').selectAll().where('gateway_id', '=', gateway).where('tlog_index', 'in', mine.map((e) => e.position)).execute();
    const byIndex = new Map(rows.map((r) => [Number(r.tlog_index), r]));
    for (const e of mine) {
      const row = byIndex.get(e.position);
      if (!row) {
        out.push({ position: e.position, message: `entry ${e.position} records a release by ${gateway} (digest ${short(e.digest)}), but its access record is missing: it was deleted, and the person it concerns would never see that release` });
        continue;
      }
      let digest: string | undefined;
      try {
        digest = accessDigest(accessRecordOf(row));
      } catch {
        digest = undefined;
      }
      if (digest !== e.digest) out.push({ position: e.position, message: `entry ${e.position} records a release by ${gateway} (digest ${short(e.digest)}), but its access record (message log position ${Number(row.log_position)}) no longer matches that digest: it was altered` });
    }
  }
  return out;
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
