/**
 * @module bench/transparency
 * Issue "Citizen transparency and consent", part 2 (transparency log) benchmarks, each with a
 * baseline measured in the same run on the same store:
 *
 * 1. Growing the log to N entries (default 1,000,000) in transactions of 1,000 appends, against
 *    plain inserts of the same rows (same columns, same primary key, same values, built beforehand)
 *    into a table of the same shape in the same SQLite store, in transactions of 1,000 too. The two
 *    alternate batch by batch, so that both see the same machine and the same database size.
 * 2. Single appends (one transaction each) once the log holds N entries, against single plain
 *    inserts (one transaction each).
 * 3. Inclusion proof generation at N entries, from stored subtree hashes, against a primary-key read
 *    of one entry through the same query layer.
 * 4. Inclusion proof verification (RFC 9162 §2.1.3.2, against the signed root), against the same
 *    primary-key read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey } from '../src/core/crypto.ts';
import { canonicalJson } from '../src/core/json.ts';
import { leafHash, verifyInclusion } from '../src/core/merkle.ts';
import { openStore, type Store } from '../src/store/db.ts';
import type { TransparencyEntryTable } from '../src/store/schema.ts';
import { leafInput } from '../src/transparency/formats.ts';
import { TransparencyLog } from '../src/transparency/log.ts';
import type { BenchResult } from './foundation.ts';

const BATCH = 1000;
const LOG = 'UK/transparency';

/** An access record of the size the rest of the issue will write (about 300 bytes as an entry). */
function record(i: number): unknown {
  return {
    subject: `P-${String(i % 10_000_000).padStart(9, '0')}-X`,
    client: 'UK/MUN/LEEDS/parking',
    service: 'UK/GOV/GRO/population/people',
    items: ['person.givenName', 'person.familyName', 'person.address'],
    purpose: 'resident-parking-permit',
    agreement: 'leeds-parking-gro',
    requestId: `req-${i}`,
    at: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
  };
}

/** Deterministic pseudo-random indices, so both sides of a comparison read the same rows. */
function indices(n: number, count: number): number[] {
  let x = 0x9e3779b9;
  return Array.from({ length: count }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  });
}

/**
 * Calls per second of `a` and of `b`, measured in alternating rounds of `round` calls until
 * `seconds` have passed (or `limit` calls), so that both see the same load on a shared machine.
 */
async function interleaved(seconds: number, round: number, a: (i: number) => unknown, b: (i: number) => unknown, limit = Number.MAX_SAFE_INTEGER): Promise<{ a: number; b: number; calls: number }> {
  const end = performance.now() + seconds * 1000;
  let ta = 0;
  let tb = 0;
  let n = 0;
  while (performance.now() < end && n + round <= limit) {
    let t0 = performance.now();
    for (let k = 0; k < round; k++) await a(n + k);
    ta += performance.now() - t0;
    t0 = performance.now();
    for (let k = 0; k < round; k++) await b(n + k);
    tb += performance.now() - t0;
    n += round;
  }
  return { a: n / (ta / 1000), b: n / (tb / 1000), calls: n };
}

async function createPlainTable(store: Store): Promise<void> {
  // The same shape as transparency_entry (migration 0005): columns, types and primary key.
  await store.db.schema
    .createTable('bench_plain_entry')
    .addColumn('log', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('entry', 'text', (c) => c.notNull())
    .addColumn('leaf_hash', 'blob', (c) => c.notNull())
    .addColumn('appended_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('bench_plain_entry_pk', ['log', 'seq'])
    .execute();
}

/** Runs the transparency log benchmarks on a fresh SQLite store. */
export async function runTransparency(opts: { entries: number; seconds?: number }): Promise<BenchResult[]> {
  const n = opts.entries;
  const seconds = opts.seconds ?? 4;
  const dir = mkdtempSync(join(tmpdir(), 'onceonly-bench-tlog-'));
  const out: BenchResult[] = [];
  try {
    const store = await openStore({ dataDir: dir });
    await createPlainTable(store);
    const plain = store.db.withTables<{ bench_plain_entry: TransparencyEntryTable }>();
    const key = generateSigningKey();
    const log = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: LOG, signingKey: key.privateKey });
    // The baseline inserts a row per statement compiled once, exactly as the log does on SQLite.
    const sample: TransparencyEntryTable = { log: LOG, seq: 0, entry: '', leaf_hash: Buffer.alloc(32), appended_at: '' };
    const insertPlain = plain.insertInto('bench_plain_entry').values(sample).compile();

    // 1. Growing to n entries, alternating batch by batch.
    let logMs = 0;
    let plainMs = 0;
    const tenth = Math.max(1, Math.floor(n / BATCH / 10));
    const firstTenth = { log: 0, plain: 0 };
    const lastTenth = { log: 0, plain: 0 };
    const batches = Math.ceil(n / BATCH);
    for (let b = 0; b < batches; b++) {
      const size = Math.min(BATCH, n - b * BATCH);
      const records = Array.from({ length: size }, (_, i) => record(b * BATCH + i));
      const time = new Date().toISOString();
      // The plain rows are the very rows the log stores, built before the clock starts.
      const rows = records.map((r, i) => {
        const entry = leafInput(b * BATCH + i, time, canonicalJson(r));
        return [LOG, b * BATCH + i, entry, leafHash(entry), time];
      });
      let t0 = performance.now();
      await log.appendMany(records);
      const l = performance.now() - t0;
      t0 = performance.now();
      await plain.transaction().execute(async (trx) => {
        for (const r of rows) await trx.executeQuery({ ...insertPlain, parameters: r });
      });
      const p = performance.now() - t0;
      logMs += l;
      plainMs += p;
      if (b < tenth) {
        firstTenth.log += l;
        firstTenth.plain += p;
      } else if (b >= batches - tenth) {
        lastTenth.log += l;
        lastTenth.plain += p;
      }
    }
    const logRate = n / (logMs / 1000);
    const plainRate = n / (plainMs / 1000);
    const tenthEntries = tenth * BATCH;
    out.push({
      name: `transparency log: appends while growing to ${n.toLocaleString('en-GB')} entries (transactions of ${BATCH})`,
      value: logRate,
      unit: 'entries/s',
      baseline: plainRate,
      baselineName: 'plain inserts of the same rows into a table of the same shape, same store, same transactions',
      ratio: logRate / plainRate,
      extra: {
        first_tenth_per_s: tenthEntries / (firstTenth.log / 1000),
        last_tenth_per_s: tenthEntries / (lastTenth.log / 1000),
        last_tenth_ratio: lastTenth.plain / lastTenth.log,
        nodes: Number((await store.db.selectFrom('transparency_node').select((eb) => eb.fn.countAll().as('c')).executeTakeFirstOrThrow()).c),
      },
    });

    // 2. Single appends at n entries, one transaction each, alternating with single plain inserts.
    const time = new Date().toISOString();
    const pool = 50_000;
    const singleRows = Array.from({ length: pool }, (_, i) => {
      const entry = leafInput(n + i, time, canonicalJson(record(n + i)));
      return [LOG, n + i, entry, leafHash(entry), time];
    });
    const single = await interleaved(
      seconds,
      100,
      (i) => log.append(record(n + i)),
      (i) => plain.transaction().execute((trx) => trx.executeQuery({ ...insertPlain, parameters: singleRows[i]! })),
      pool,
    );
    out.push({
      name: `transparency log: single appends at ${n.toLocaleString('en-GB')} entries (one transaction each)`,
      value: single.a,
      unit: 'entries/s',
      baseline: single.b,
      baselineName: 'single plain inserts of the same rows, one transaction each',
      ratio: single.a / single.b,
      extra: { appends: single.calls },
    });

    // 3 and 4. Proofs at n entries, against the signed head of that size.
    const size = await log.size();
    const head = (await log.signTreeHead())!;
    const root = Buffer.from(head.rootHash, 'hex');
    const picks = indices(size, 100_000);
    const pkRead = (i: number): Promise<unknown> =>
      store.db.selectFrom('transparency_entry').select(['entry', 'leaf_hash']).where('log', '=', LOG).where('seq', '=', picks[i % picks.length]!).executeTakeFirstOrThrow();
    let pathLength = 0;
    let made = 0;
    const prove = await interleaved(
      seconds,
      200,
      async (i) => {
        const proof = await log.inclusionProof(picks[i % picks.length]!, size);
        pathLength += proof.length;
        made += 1;
      },
      pkRead,
    );
    out.push({
      name: `transparency log: inclusion proofs generated at ${size.toLocaleString('en-GB')} entries`,
      value: prove.a,
      unit: 'proofs/s',
      baseline: prove.b,
      baselineName: 'primary-key read of one entry, same query layer',
      ratio: prove.a / prove.b,
      extra: { mean_path_length: pathLength / made },
    });

    const sampleSize = 2000;
    const leafRows = await store.db.selectFrom('transparency_entry').select(['seq', 'leaf_hash']).where('log', '=', LOG).where('seq', 'in', picks.slice(0, sampleSize)).execute();
    const proofs = await Promise.all(leafRows.map(async (r) => ({ index: Number(r.seq), leaf: r.leaf_hash, path: await log.inclusionProof(Number(r.seq), size) })));
    const verify = await interleaved(
      seconds,
      200,
      (i) => {
        const p = proofs[i % proofs.length]!;
        if (!verifyInclusion(p.index, size, p.leaf, p.path, root)) throw new Error(`bench: the proof of entry ${p.index} does not verify`);
      },
      pkRead,
    );
    out.push({
      name: `transparency log: inclusion proofs verified at ${size.toLocaleString('en-GB')} entries (RFC 9162 §2.1.3.2, against the signed root)`,
      value: verify.a,
      unit: 'proofs/s',
      baseline: verify.b,
      baselineName: 'primary-key read of one entry, same query layer',
      ratio: verify.a / verify.b,
      extra: { proofs_checked: proofs.length },
    });
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
