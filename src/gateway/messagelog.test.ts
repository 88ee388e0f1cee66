/**
 * @module gateway/messagelog.test
 * The message log on both engines: the chain and its exact format, checkpoints (every N records,
 * on the timer, on stop), concurrent appenders, and every kind of tampering done directly in the
 * database, each of which verification must name at the exact position.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { generateSigningKey, sha256hex, verifyEd25519 } from '../core/crypto.ts';
import { isOnceOnlyError } from '../core/errors.ts';
import { openStore, type Store } from '../store/db.ts';
import { eachEngine, PG_URL } from '../../test/support/stores.ts';
import { GENESIS_HASH, MessageLog, checkpointMessage, recordHash, type LogEntryInput } from './messagelog.ts';
import { formatReport, verifyMessageLog, type VerifyReport } from './messagelog-verify.ts';

const KEYS = generateSigningKey();
const OTHER = generateSigningKey();
const SERIAL = 7;
const keyFor = (serial: number) => (serial === SERIAL ? KEYS.publicKey : undefined);

function entry(i: number, extra: Partial<LogEntryInput> = {}): LogEntryInput {
  return {
    at: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    side: i % 2 === 0 ? 'client' : 'provider',
    requestId: `req-${i}`,
    client: 'GOV/LOCAL/COUNCIL/benefits',
    service: 'GOV/GRO/population/person',
    purpose: 'housing-benefit',
    agreement: 'agr-1',
    items: ['person.givenName', 'person.address'],
    userId: null,
    status: 200,
    errorType: null,
    requestHash: sha256hex(`request ${i}`),
    responseDigest: sha256hex(`response ${i}`),
    requestSignature: 'sig-req',
    responseSignature: 'sig-resp',
    requestBody: null,
    responseBody: null,
    ...extra,
  };
}

let gwCounter = 0;
/** A fresh gateway id per test, so tests on one store never see each other's chains. */
function gw(): string {
  gwCounter += 1;
  return `GOV/TEST/gw${gwCounter}`;
}

function newLog(store: Store, gatewayId: string, every = { records: 1000, ms: 3_600_000 }): MessageLog {
  // On SQLite the gateway writes through the raw synchronous path (the first batch of a chain goes
  // through Kysely, which creates the head row), so both paths are exercised here.
  return new MessageLog({ db: store.db, dialect: store.dialect, sqlite: store.sqlite, gatewayId, signingKey: KEYS.privateKey, confSerial: () => SERIAL, checkpointEvery: every });
}

/** Appends `n` records one after another with checkpoints every `every` records, then stops (final checkpoint). */
async function seed(store: Store, n: number, every: number): Promise<string> {
  const id = gw();
  const log = newLog(store, id, { records: every, ms: 3_600_000 });
  for (let i = 1; i <= n; i++) await log.append(entry(i));
  await log.stop();
  return id;
}

function kinds(r: VerifyReport): string[] {
  return r.problems.map((p) => `${p.kind}@${p.position}`);
}

eachEngine('message log', (getStore, engine) => {
  const rows = (id: string) => getStore().db.selectFrom('message_log').selectAll().where('gateway_id', '=', id).orderBy('position').execute();

  test('append builds a contiguous chain in the documented format, and it verifies', async () => {
    const store = getStore();
    const id = gw();
    const log = newLog(store, id);
    const first = await log.append(entry(1));
    assert.equal(first.position, 1);
    // Some sequential, some arriving together (group-committed).
    await log.append(entry(2));
    const together = await Promise.all([3, 4, 5, 6, 7, 8].map((i) => log.append(entry(i))));
    assert.deepEqual(together.map((t) => t.position).sort((x, y) => x - y), [3, 4, 5, 6, 7, 8]);

    const rs = await rows(id);
    assert.deepEqual(rs.map((r) => Number(r.position)), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(rs[0]?.prev_hash, GENESIS_HASH);
    for (let i = 1; i < rs.length; i++) assert.equal(rs[i]?.prev_hash, rs[i - 1]?.hash);
    assert.equal(rs[0]?.hash, first.hash);

    // The canonical form, spelt out independently of the implementation.
    const e = entry(1);
    const canonical = JSON.stringify([
      'onceonly-log-2', id, 1, e.at, e.side, e.requestId, e.client, e.service, e.purpose, e.agreement,
      JSON.stringify(e.items), e.userId, e.status, e.errorType, e.requestHash, e.responseDigest,
      e.requestSignature, e.responseSignature, null, null, null, null,
    ]);
    assert.equal(rs[0]?.hash, sha256hex(`${GENESIS_HASH}\n${canonical}`));
    assert.equal(Number(rs[0]?.format), 2);

    const head = await store.db.selectFrom('message_log_head').selectAll().where('gateway_id', '=', id).executeTakeFirstOrThrow();
    assert.equal(Number(head.position), 8);
    assert.equal(head.hash, rs[7]?.hash);

    const report = await verifyMessageLog(store.db, id, keyFor);
    assert.equal(report.ok, true, formatReport(report));
    assert.equal(report.records, 8);
    assert.equal(report.lastPosition, 8);
    assert.equal(report.lastCheckpoint, null);
    assert.equal(report.uncovered, 8);
    assert.match(formatReport(report), /OK[\s\S]*records 1\.\.8 are verified as a chain only/);
  });

  test('format 2 covers the peer and the detail; records written in format 1 keep verifying; the format cannot be switched', async () => {
    const store = getStore();
    const id = gw();
    const log = newLog(store, id);
    await log.append({ ...entry(1), peer: 'UK/GOV/GRO/gw1', detail: { requestId: '5b7c…', tried: [{ gateway: 'UK/GOV/GRO/gw2', error: 'ECONNREFUSED' }] } });
    const [r1] = await rows(id);
    const e = entry(1);
    const canonical = JSON.stringify([
      'onceonly-log-2', id, 1, e.at, e.side, e.requestId, e.client, e.service, e.purpose, e.agreement,
      JSON.stringify(e.items), e.userId, e.status, e.errorType, e.requestHash, e.responseDigest,
      e.requestSignature, e.responseSignature, null, null, 'UK/GOV/GRO/gw1', '{"requestId":"5b7c…","tried":[{"gateway":"UK/GOV/GRO/gw2","error":"ECONNREFUSED"}]}',
    ]);
    assert.equal(r1?.hash, sha256hex(`${GENESIS_HASH}\n${canonical}`));
    // A record as a gateway before migration 0008 wrote it: format 1, hashed without peer and detail.
    const legacy = { ...r1, position: 2, format: 1, peer: null, detail: null, prev_hash: r1.hash };
    const { seq: _seq, ...row } = legacy;
    const hash = recordHash(r1.hash, row);
    await store.db.insertInto('message_log').values({ ...row, hash }).execute();
    await store.db.updateTable('message_log_head').set({ position: 2, hash }).where('gateway_id', '=', id).execute();
    assert.equal((await verifyMessageLog(store.db, id, keyFor)).ok, true);
    for (const [col, value] of [['peer', 'UK/GOV/GRO/gw9'], ['detail', '{"tried":[]}'], ['format', 1]] as const) {
      const before_ = (await rows(id))[0]!;
      await store.db.updateTable('message_log').set({ [col]: value }).where('gateway_id', '=', id).where('position', '=', 1).execute();
      const report = await verifyMessageLog(store.db, id, keyFor);
      assert.equal(report.ok, false, `${col} changed`);
      assert.deepEqual(kinds(report), ['altered@1']);
      await store.db.updateTable('message_log').set({ [col]: before_[col] }).where('gateway_id', '=', id).where('position', '=', 1).execute();
    }
    assert.equal((await verifyMessageLog(store.db, id, keyFor)).ok, true);
  });

  test('checkpoints are made every N records and on stop(), signed over the documented message', async () => {
    const store = getStore();
    const id = gw();
    const log = newLog(store, id, { records: 10, ms: 3_600_000 });
    for (let i = 1; i <= 25; i++) await log.append(entry(i));
    const cps = () => store.db.selectFrom('message_log_checkpoint').selectAll().where('gateway_id', '=', id).orderBy('position').execute();
    assert.deepEqual((await cps()).map((c) => Number(c.position)), [10, 20]);
    await log.stop();
    const all = await cps();
    assert.deepEqual(all.map((c) => Number(c.position)), [10, 20, 25]);
    const rs = await rows(id);
    for (const c of all) {
      assert.equal(Number(c.conf_serial), SERIAL);
      assert.equal(c.hash, rs[Number(c.position) - 1]?.hash);
      const msg = `onceonly-log-checkpoint\n${id}\n${c.position}\n${c.hash}\n${c.at}\n${SERIAL}`;
      assert.equal(checkpointMessage(id, Number(c.position), c.hash, c.at, SERIAL), msg);
      assert.ok(verifyEd25519(KEYS.publicKey, msg, c.signature));
    }
    assert.equal(await log.checkpoint(), null, 'nothing new since the last checkpoint');
    const report = await verifyMessageLog(store.db, id, keyFor);
    assert.equal(report.ok, true, formatReport(report));
    assert.equal(report.checkpoints, 3);
    assert.equal(report.lastCheckpoint, 25);
    assert.equal(report.uncovered, 0);
  });

  test('the timer checkpoints new records', async () => {
    const store = getStore();
    const id = gw();
    const log = newLog(store, id, { records: 1_000_000, ms: 25 });
    log.start();
    for (let i = 1; i <= 3; i++) await log.append(entry(i));
    // The timer may fire between appends (a first checkpoint at 1 or 2): a later tick covers all three.
    let last = 0;
    for (let tries = 0; tries < 80 && last < 3; tries++) {
      await sleep(25);
      const cp = await store.db.selectFrom('message_log_checkpoint').select('position').where('gateway_id', '=', id).orderBy('position', 'desc').executeTakeFirst();
      last = Number(cp?.position ?? 0);
    }
    assert.equal(last, 3);
    await log.stop();
  });

  test('full bodies are stored only when given, and are covered by the chain', async () => {
    const store = getStore();
    const id = gw();
    const log = newLog(store, id);
    await log.append(entry(1));
    await log.append(entry(2, { requestBody: '{"q":1}', responseBody: '{"person.givenName":{"value":"X"}}' }));
    await log.append(entry(3, { responseBody: 'bad\u0000bytes \uD800 here' }));
    await log.stop();
    const rs = await rows(id);
    assert.equal(rs[0]?.request_body, null);
    assert.equal(rs[0]?.response_body, null);
    assert.equal(rs[1]?.request_body, '{"q":1}');
    assert.equal(rs[1]?.response_body, '{"person.givenName":{"value":"X"}}');
    // NUL and lone surrogates cannot be stored faithfully by both engines; they are replaced, so
    // that what is stored is exactly what was hashed.
    assert.equal(rs[2]?.request_body, null);
    assert.equal(rs[2]?.response_body, 'bad\uFFFDbytes \uFFFD here');
    assert.equal((await verifyMessageLog(store.db, id, keyFor)).ok, true);

    await store.db.updateTable('message_log').set({ response_body: '{"person.givenName":{"value":"Y"}}' }).where('gateway_id', '=', id).where('position', '=', 2).execute();
    const report = await verifyMessageLog(store.db, id, keyFor);
    assert.deepEqual(kinds(report), ['altered@2']);
  });

  test('an altered record is named at its exact position', async () => {
    const store = getStore();
    const id = await seed(store, 30, 10);
    await store.db.updateTable('message_log').set({ status: 403 }).where('gateway_id', '=', id).where('position', '=', 17).execute();
    const report = await verifyMessageLog(store.db, id, keyFor);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report), ['altered@17']);
    assert.match(formatReport(report), /FAILED[\s\S]*position 17\s+altered/);

    const id2 = await seed(store, 12, 5);
    await store.db.updateTable('message_log').set({ client: 'GOV/OTHER/AGENCY/x' }).where('gateway_id', '=', id2).where('position', '=', 1).execute();
    assert.deepEqual(kinds(await verifyMessageLog(store.db, id2, keyFor)), ['altered@1']);
  });

  test('a record rewritten together with its own hash is named by the broken link after it', async () => {
    const store = getStore();
    const id = await seed(store, 20, 10);
    const r6 = (await rows(id))[5];
    assert.ok(r6);
    const forged = { ...r6, user_id: 'someone-else' };
    await store.db.updateTable('message_log').set({ user_id: forged.user_id, hash: recordHash(forged.prev_hash, forged) }).where('seq', '=', r6.seq).execute();
    const report = await verifyMessageLog(store.db, id, keyFor);
    assert.deepEqual(kinds(report), ['altered@6']);
    assert.match(report.problems[0]?.message ?? '', /record 7 still names its original hash/);
  });

  test('a deleted record is named as removed at its position', async () => {
    const store = getStore();
    const id = await seed(store, 30, 10);
    await store.db.deleteFrom('message_log').where('gateway_id', '=', id).where('position', '=', 12).execute();
    const report = await verifyMessageLog(store.db, id, keyFor);
    assert.deepEqual(kinds(report), ['removed@12']);
    assert.equal(report.records, 29);

    const id2 = await seed(store, 30, 10);
    await store.db.deleteFrom('message_log').where('gateway_id', '=', id2).where('position', 'in', [3, 4, 5]).execute();
    const r2 = await verifyMessageLog(store.db, id2, keyFor);
    assert.deepEqual(kinds(r2), ['removed@3']);
    assert.match(r2.problems[0]?.message ?? '', /records 3\.\.5 are missing/);
  });

  test('an inserted record is named, whether it links or not', async () => {
    const store = getStore();
    const { db } = store;
    // Appended at the end with a correct link and hash, but not through the log: the head does not count it.
    const id = await seed(store, 10, 5);
    let rs = await rows(id);
    const last = rs[9];
    assert.ok(last);
    const { seq: _seq, ...template } = last;
    const forged = { ...template, position: 11, request_id: 'forged', prev_hash: last.hash };
    await db.insertInto('message_log').values({ ...forged, hash: recordHash(forged.prev_hash, forged) }).execute();
    assert.deepEqual(kinds(await verifyMessageLog(db, id, keyFor)), ['inserted@11']);

    // Appended at the end with a plausible but wrong prev_hash (and the head moved to match).
    const id2 = await seed(store, 10, 5);
    rs = await rows(id2);
    const t2 = rs[9];
    assert.ok(t2);
    const { seq: _s2, ...tpl2 } = t2;
    const forged2 = { ...tpl2, position: 11, request_id: 'forged', prev_hash: rs[7]?.hash ?? '' };
    const h2 = recordHash(forged2.prev_hash, forged2);
    await db.insertInto('message_log').values({ ...forged2, hash: h2 }).execute();
    await db.updateTable('message_log_head').set({ position: 11, hash: h2 }).where('gateway_id', '=', id2).execute();
    assert.deepEqual(kinds(await verifyMessageLog(db, id2, keyFor)), ['inserted@11']);

    // A second record at an existing position (the attacker dropped the unique index first).
    const id3 = await seed(store, 10, 5);
    rs = await rows(id3);
    const t3 = rs[3];
    assert.ok(t3);
    const { seq: _s3, ...tpl3 } = t3;
    const forged3 = { ...tpl3, request_id: 'forged' };
    await sql`DROP INDEX message_log_position`.execute(db);
    try {
      await db.insertInto('message_log').values({ ...forged3, hash: recordHash(forged3.prev_hash, forged3) }).execute();
      const r3 = await verifyMessageLog(db, id3, keyFor);
      assert.deepEqual(kinds(r3), ['inserted@4']);
      assert.match(r3.problems[0]?.message ?? '', /a second record claims position 4/);
    } finally {
      await db.deleteFrom('message_log').where('gateway_id', '=', id3).where('request_id', '=', 'forged').execute();
      await db.schema.createIndex('message_log_position').on('message_log').columns(['gateway_id', 'position']).unique().execute();
    }
  });

  test('two records swapped in position are named as reordered', async () => {
    const store = getStore();
    const { db } = store;
    const id = await seed(store, 12, 6);
    const rs = await rows(id);
    const [r5, r6] = [rs[4], rs[5]];
    assert.ok(r5 && r6);
    await db.updateTable('message_log').set({ position: -1 }).where('seq', '=', r5.seq).execute();
    await db.updateTable('message_log').set({ position: 5 }).where('seq', '=', r6.seq).execute();
    await db.updateTable('message_log').set({ position: 6 }).where('seq', '=', r5.seq).execute();
    const report = await verifyMessageLog(db, id, keyFor);
    // The checkpoint at 6 sealed the record that now sits at 5, so it is contradicted too.
    assert.deepEqual(kinds(report), ['reordered@5', 'reordered@6', 'bad-checkpoint@6']);
    assert.match(report.problems[0]?.message ?? '', /position 5 was logged at position 6/);
    assert.equal(report.ok, false);
  });

  test('a forgery that recomputes every later hash is caught by the signed checkpoints', async () => {
    const store = getStore();
    const { db } = store;
    const id = await seed(store, 20, 4);
    const rs = await rows(id);
    let prev = rs[3]?.hash ?? '';
    for (const r of rs.slice(4)) {
      const changed = Number(r.position) === 5 ? { ...r, client: 'GOV/OTHER/AGENCY/x' } : r;
      const hash = recordHash(prev, changed);
      await db.updateTable('message_log').set({ client: changed.client, prev_hash: prev, hash }).where('seq', '=', r.seq).execute();
      prev = hash;
    }
    await db.updateTable('message_log_head').set({ hash: prev }).where('gateway_id', '=', id).execute();
    const report = await verifyMessageLog(db, id, keyFor);
    assert.equal(report.ok, false);
    // The chain itself is consistent again; only the checkpoints (4 good, 8..20 contradicted) tell.
    assert.deepEqual(kinds(report), ['bad-checkpoint@8', 'bad-checkpoint@12', 'bad-checkpoint@16', 'bad-checkpoint@20']);
    assert.match(report.problems[0]?.message ?? '', /records 5\.\.8 were rewritten/);
    assert.equal(report.lastCheckpoint, 4);
  });

  test('records removed from the end are named as truncated', async () => {
    const store = getStore();
    const { db } = store;
    const id = await seed(store, 20, 10);
    await db.deleteFrom('message_log').where('gateway_id', '=', id).where('position', '>', 16).execute();
    // The attacker also moves the head back, so only the signed checkpoint at 20 knows.
    const r16 = (await rows(id))[15];
    await db.updateTable('message_log_head').set({ position: 16, hash: r16?.hash ?? '' }).where('gateway_id', '=', id).execute();
    const report = await verifyMessageLog(db, id, keyFor);
    assert.deepEqual(kinds(report), ['truncated@17']);
    assert.match(report.problems[0]?.message ?? '', /records 17\.\.20 are missing/);

    // Records after the last checkpoint, removed without touching the head: the head counts them.
    const id2 = gw();
    const log = newLog(store, id2, { records: 5, ms: 3_600_000 });
    for (let i = 1; i <= 8; i++) await log.append(entry(i));
    await db.deleteFrom('message_log').where('gateway_id', '=', id2).where('position', '=', 8).execute();
    assert.deepEqual(kinds(await verifyMessageLog(db, id2, keyFor)), ['truncated@8']);
  });

  test('checkpoints with a wrong key, an unknown serial or an edited field are bad', async () => {
    const store = getStore();
    const { db } = store;
    const id = await seed(store, 12, 5);
    const wrong = await verifyMessageLog(db, id, () => OTHER.publicKey);
    assert.deepEqual(kinds(wrong), ['bad-checkpoint@5', 'bad-checkpoint@10', 'bad-checkpoint@12']);
    assert.equal(wrong.lastCheckpoint, null);
    const unknown = await verifyMessageLog(db, id, () => undefined);
    assert.match(unknown.problems[0]?.message ?? '', /no signing key/);

    await db.updateTable('message_log_checkpoint').set({ at: '2000-01-01T00:00:00.000Z' }).where('gateway_id', '=', id).where('position', '=', 10).execute();
    const edited = await verifyMessageLog(db, id, keyFor);
    assert.deepEqual(kinds(edited), ['bad-checkpoint@10']);
    assert.equal(edited.lastCheckpoint, 12);
  });

  test('appendIn writes inside the caller\'s transaction and rolls back with it', async () => {
    const store = getStore();
    const id = gw();
    const log = newLog(store, id);
    await log.append(entry(1));
    await assert.rejects(
      store.db.transaction().execute(async (trx) => {
        const a = await log.appendIn(trx, entry(2));
        assert.equal(a.position, 2);
        throw new Error('caller fails');
      }),
      /caller fails/,
    );
    const committed = await store.db.transaction().execute((trx) => log.appendIn(trx, entry(3)));
    assert.equal(committed.position, 2, 'the rolled-back position is reused');
    assert.equal((await log.append(entry(4))).position, 3);
    const report = await verifyMessageLog(store.db, id, keyFor);
    assert.equal(report.ok, true, formatReport(report));
    assert.equal(report.records, 3);
  });

  test('malformed entries are refused before they reach the chain', async () => {
    const store = getStore();
    const log = newLog(store, gw());
    const bad = { ...entry(1), side: 'sideways' } as unknown as LogEntryInput;
    await assert.rejects(log.append(bad), (e) => isOnceOnlyError(e) && e.type === 'invalid_request' && e.detail.field === 'side');
    await assert.rejects(log.append(entry(1, { status: 20.5 })), (e) => isOnceOnlyError(e) && e.detail.field === 'status');
    await assert.rejects(log.append(entry(1, { requestId: '' })), (e) => isOnceOnlyError(e) && e.detail.field === 'requestId');
    assert.equal((await log.append(entry(1))).position, 1, 'a refused entry takes no position');
  });

  test('200 concurrent appends from two instances give positions 1..200 and a verifying chain', async () => {
    const store = getStore();
    const id = gw();
    // Two instances on one store, and on PostgreSQL a second connection pool as well (as a second
    // gateway process would have): the head-row lock must keep them from forking the chain.
    let other: Store | undefined;
    if (engine === 'postgres') {
      const { rows: [s] } = await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db);
      other = await openStore({ databaseUrl: PG_URL, pgSchema: s?.schema ?? 'public', migrate: false });
    }
    try {
      const one = newLog(store, id, { records: 50, ms: 3_600_000 });
      const two = newLog(other ?? store, id, { records: 50, ms: 3_600_000 });
      // The head row exists before the race starts (creating it serializes appenders by itself),
      // then each instance appends in small bursts, so many short transactions interleave.
      const results = [await one.append(entry(0))];
      const run = async (log: MessageLog, base: number, count: number) => {
        for (let i = 0; i < count; i += 3) {
          const burst = Array.from({ length: Math.min(3, count - i) }, (_, k) => log.append(entry(base + i + k)));
          results.push(...(await Promise.all(burst)));
        }
      };
      await Promise.all([run(one, 1, 99), run(two, 100, 100)]);
      await Promise.all([one.stop(), two.stop()]);
      assert.deepEqual(results.map((r) => r.position).sort((x, y) => x - y), Array.from({ length: 200 }, (_, i) => i + 1));
      const rs = await rows(id);
      assert.deepEqual(rs.map((r) => Number(r.position)), Array.from({ length: 200 }, (_, i) => i + 1));
      const report = await verifyMessageLog(store.db, id, keyFor);
      assert.equal(report.ok, true, formatReport(report));
      assert.equal(report.lastCheckpoint, 200);
    } finally {
      await other?.close();
    }
  });
});
