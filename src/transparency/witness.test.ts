/**
 * @module transparency/witness.test
 * The witness (c2sp.org/tlog-witness) on both engines, request by request: every status the spec
 * names (404, 403, 400, 409 with text/x.tlog.size, 422, 200) for the condition it names; a log
 * that is rolled back, truncated and re-signed, or forked is refused; two submissions racing from
 * one old size never both succeed; and the log owner's side learns the witness's size from a 409,
 * stores only cosignatures that verify, and never sends a checkpoint older than one cosigned.
 */
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSigningKey, publicJwk } from '../core/crypto.ts';
import { rootFromLeaves } from '../core/merkle.ts';
import { cosignatureLine, parseNote, verifyNote } from '../core/note.ts';
import type { Store } from '../store/db.ts';
import { eachEngine } from '../../test/support/stores.ts';
import { logOrigin, logVerifier, signTreeHead, verifyTreeHead, witnessVerifier, type SignedTreeHead } from './formats.ts';
import { TransparencyLog } from './log.ts';
import { TLOG_SIZE_TYPE, Witness, addCheckpointBody, collectCosignatures, type WitnessPeer } from './witness.ts';

const LOG_KEYS = generateSigningKey();
const WITNESS_KEYS = generateSigningKey();
const STRANGER = generateSigningKey();
const NAME = 'witness.example/w1';
const W = witnessVerifier(NAME, publicJwk(WITNESS_KEYS.publicKey));

let counter = 0;
const fresh = (): string => `UK/witnessed-${++counter}`;

function setUp(store: Store, now = (): Date => new Date('2027-01-01T00:00:00Z')): { log: TransparencyLog; witness: Witness; peer: WitnessPeer; posted: string[] } {
  const logId = fresh();
  const log = new TransparencyLog({ db: store.db, dialect: store.dialect, logId, signingKey: LOG_KEYS.privateKey });
  const witness = new Witness({ db: store.db, name: NAME, key: WITNESS_KEYS.privateKey, logKeys: (origin) => (origin === logOrigin(logId) ? [logVerifier(logId, publicJwk(LOG_KEYS.publicKey))] : undefined), now });
  const posted: string[] = [];
  const peer: WitnessPeer = {
    verifier: W,
    post: async (body) => {
      posted.push(body);
      const a = await witness.addCheckpoint(Buffer.from(body));
      return { status: a.status, body: a.body };
    },
  };
  return { log, witness, peer, posted };
}

const entries = (n: number, from = 0): unknown[] => Array.from({ length: n }, (_, i) => ({ kind: 'test', n: from + i }));
const own = (h: SignedTreeHead): string => {
  const note = parseNote(h.checkpoint);
  return `${note.text}\n${note.signatures[0]!.line}\n`;
};

eachEngine('witness', (getStore) => {
  test('a witness cosigns a log that grows, and its cosignature verifies under its vkey and its time', async () => {
    const { log, witness, peer } = setUp(getStore());
    await log.appendMany(entries(5));
    const h5 = (await log.signTreeHead())!;
    // First contact: old 0 with no proof.
    let a = await witness.addCheckpoint(Buffer.from(addCheckpointBody(0, [], own(h5))));
    assert.equal(a.status, 200, a.body);
    assert.match(a.body, /^\u2014 witness\.example\/w1 [A-Za-z0-9+/]{102}==\n$/, 'a 76-byte cosignature: key ID, timestamp, signature');
    const got = verifyNote(parseNote(`${parseNote(h5.checkpoint).text}\n${a.body}`), [W]);
    assert.equal(got[0]?.time, Date.parse('2027-01-01T00:00:00Z') / 1000);
    // Grows to 12: the proof from 5, computed by the log.
    await log.appendMany(entries(7, 5));
    const h12 = (await log.signTreeHead())!;
    a = await witness.addCheckpoint(Buffer.from(addCheckpointBody(5, await log.consistencyProof(5, 12), own(h12))));
    assert.equal(a.status, 200, a.body);
    // The same checkpoint again (old = size, no proof) is cosigned again.
    a = await witness.addCheckpoint(Buffer.from(addCheckpointBody(12, [], own(h12))));
    assert.equal(a.status, 200, a.body);
    // The monitoring endpoint serves the latest cosigned checkpoint with both signatures.
    const m = await witness.latest(createHash('sha256').update(logOrigin(log.logId)).digest('hex'));
    assert.equal(m.status, 200);
    const served = parseNote(m.body);
    assert.equal(served.text, parseNote(h12.checkpoint).text);
    assert.equal(verifyNote(served, [W, logVerifier(log.logId, publicJwk(LOG_KEYS.publicKey))]).length, 2);
    assert.equal((await witness.latest('0'.repeat(64))).status, 404);
    assert.equal((await witness.latest('nope')).status, 400);
    // And the owner's side, through collectCosignatures, stores the line and hands it out.
    const outcomes = await collectCosignatures(log, h12, [peer]);
    assert.deepEqual(outcomes, [{ witness: NAME, ok: true }]);
    const head = (await log.latestTreeHead())!;
    const v = verifyTreeHead(head, logVerifier(log.logId, publicJwk(LOG_KEYS.publicKey)), { witnesses: [W], quorum: 1 });
    assert.ok(v.ok, v.ok ? '' : v.reason);
    assert.equal(await log.witnessedSize(NAME, W.keyId), 12);
  });

  test('each condition of tlog-witness gets its status', async () => {
    const { log, witness } = setUp(getStore());
    await log.appendMany(entries(8));
    const h8 = (await log.signTreeHead())!;
    const send = (body: string | Buffer): ReturnType<Witness['addCheckpoint']> => witness.addCheckpoint(Buffer.isBuffer(body) ? body : Buffer.from(body));
    const unknown = own(h8).replace(logOrigin(log.logId), 'UK/not-witnessed');
    const strangerHead = signTreeHead(STRANGER.privateKey, log.logId, 8, await log.root(8));
    const cases: [string, string | Buffer, number, RegExp?][] = [
      ['origin not witnessed', addCheckpointBody(0, [], unknown), 404],
      ['signed by another key only', addCheckpointBody(0, [], own(strangerHead)), 403],
      ['a line of the log\'s key that does not verify', addCheckpointBody(0, [], own(h8).replace(/.{5}=\n$/, (m) => (m.startsWith('AAAAA') ? 'BBBBB=\n' : 'AAAAA=\n'))), 403],
      ['old larger than the checkpoint', addCheckpointBody(9, [], own(h8)), 400],
      ['old with a leading zero', `old 00\n\n${own(h8)}`, 400],
      ['no old line', `\n${own(h8)}`, 400],
      ['a proof line that is not a hash', `old 0\nAAAA\n\n${own(h8)}`, 400],
      ['64 proof lines', `old 0\n${`${Buffer.alloc(32).toString('base64')}\n`.repeat(64)}\n${own(h8)}`, 400, /at most 63/],
      ['not UTF-8', Buffer.concat([Buffer.from('old 0\n\n'), Buffer.from([0xff, 0x0a, 0x0a])]), 400],
      ['no checkpoint', 'old 0\n\n', 400],
      ['a proof from size 0', addCheckpointBody(0, [Buffer.alloc(32)], own(h8)), 422],
    ];
    for (const [what, body, status, message] of cases) {
      const a = await send(body);
      assert.equal(a.status, status, `${what}: ${a.status} ${a.body}`);
      if (message) assert.match(a.body, message, what);
    }
    // Nothing so far changed the witness's state.
    assert.equal(await getStore().db.selectFrom('transparency_witness').select('origin').where('origin', '=', logOrigin(log.logId)).executeTakeFirst(), undefined);
    // The empty tree with a wrong root.
    const badEmpty = signTreeHead(LOG_KEYS.privateKey, log.logId, 0, Buffer.alloc(32, 1));
    assert.equal((await send(addCheckpointBody(0, [], own(badEmpty)))).status, 422);
    assert.equal((await send(addCheckpointBody(0, [], own(signTreeHead(LOG_KEYS.privateKey, log.logId, 0, rootFromLeaves([])))))).status, 200);
    // Now the witness is at 0; at 8, an old size it does not hold is a 409 carrying its size.
    assert.equal((await send(addCheckpointBody(0, [], own(h8)))).status, 200);
    const c = await send(addCheckpointBody(3, [], own(h8)));
    assert.equal(c.status, 409);
    assert.equal(c.contentType, TLOG_SIZE_TYPE);
    assert.equal(c.body, '8\n');
  });

  test('a rolled-back, truncated-and-re-signed, or forked log is refused; the witness keeps what it cosigned', async () => {
    const store = getStore();
    const { log, witness, peer } = setUp(store);
    await log.appendMany(entries(10));
    const h10 = (await log.signTreeHead())!;
    assert.deepEqual(await collectCosignatures(log, h10, [peer]), [{ witness: NAME, ok: true }]);

    // Truncated: the last 3 entries and their subtrees removed, the size set back, re-signed.
    await store.db.deleteFrom('transparency_entry').where('log', '=', log.logId).where('seq', '>=', 7).execute();
    await store.db.deleteFrom('transparency_node').where('log', '=', log.logId).execute();
    await store.db.deleteFrom('transparency_head').where('log', '=', log.logId).execute();
    await store.db.deleteFrom('transparency_cosignature').where('log', '=', log.logId).execute();
    await store.db.updateTable('transparency_tree').set({ size: 0 }).where('log', '=', log.logId).execute();
    // The forger rebuilds the tree of the 7 kept entries with the log's own code and key.
    const rebuilt = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: log.logId, signingKey: LOG_KEYS.privateKey });
    const kept = await store.db.selectFrom('transparency_entry').select('entry').where('log', '=', log.logId).orderBy('seq').execute();
    await store.db.deleteFrom('transparency_entry').where('log', '=', log.logId).execute();
    await rebuilt.appendMany(kept.map((k) => (JSON.parse(k.entry) as { record: unknown }).record));
    const h7 = (await rebuilt.signTreeHead())!;
    assert.equal(h7.treeSize, 7);
    // The forger does not know what the witness holds (its cosignatures were deleted): old 0 -> 409 10.
    let a = await witness.addCheckpoint(Buffer.from(addCheckpointBody(0, [], own(h7))));
    assert.equal(a.status, 409);
    assert.equal(a.body, '10\n');
    // With the witness's size: larger than the checkpoint.
    a = await witness.addCheckpoint(Buffer.from(addCheckpointBody(10, [], own(h7))));
    assert.equal(a.status, 400);
    // The owner's side says so in words.
    const [outcome] = await collectCosignatures(rebuilt, h7, [peer]);
    assert.equal(outcome?.ok, false);
    assert.match(outcome?.reason ?? '', /has cosigned size 10, larger than this checkpoint's 7/);

    // Grown past 10 again over the rewritten tail: a genuine-looking head of 12, but no proof from 10 exists.
    await rebuilt.appendMany(entries(5, 100));
    const h12 = (await rebuilt.signTreeHead())!;
    a = await witness.addCheckpoint(Buffer.from(addCheckpointBody(10, await rebuilt.consistencyProof(10, 12), own(h12))));
    assert.equal(a.status, 422);
    assert.match(a.body, /does not extend the one of size 10/);
    // Forked at the size the witness holds: same size, another root.
    const fork10 = signTreeHead(LOG_KEYS.privateKey, log.logId, 10, await rebuilt.root(10));
    a = await witness.addCheckpoint(Buffer.from(addCheckpointBody(10, [], own(fork10))));
    assert.equal(a.status, 422);
    assert.match(a.body, /cosigned a different root at size 10/);
    const state = await store.db.selectFrom('transparency_witness').select(['tree_size', 'root_hash']).where('origin', '=', logOrigin(log.logId)).executeTakeFirstOrThrow();
    assert.equal(Number(state.tree_size), 10);
    assert.equal(Buffer.from(state.root_hash).toString('hex'), h10.rootHash);
  });

  test('two submissions racing from one old size: exactly one is cosigned, the other gets a 409', async () => {
    const store = getStore();
    const { log, witness } = setUp(store);
    await log.appendMany(entries(4));
    const h4 = (await log.signTreeHead())!;
    assert.equal((await witness.addCheckpoint(Buffer.from(addCheckpointBody(0, [], own(h4))))).status, 200);
    await log.appendMany(entries(4, 4));
    const h8 = (await log.signTreeHead())!;
    await log.appendMany(entries(4, 8));
    const h12 = (await log.signTreeHead())!;
    for (let round = 0; round < 5; round++) {
      // Both from the size the witness holds; whichever lands second must not roll it back.
      const state = await store.db.selectFrom('transparency_witness').select('tree_size').where('origin', '=', logOrigin(log.logId)).executeTakeFirstOrThrow();
      const old = Number(state.tree_size);
      const heads = round % 2 === 0 ? [h8, h12] : [h12, h8];
      const results = await Promise.all(heads.map(async (h) => (old < h.treeSize ? witness.addCheckpoint(Buffer.from(addCheckpointBody(old, await log.consistencyProof(old, h.treeSize), own(h)))) : witness.addCheckpoint(Buffer.from(addCheckpointBody(old, [], own(h)))))));
      const after = Number((await store.db.selectFrom('transparency_witness').select('tree_size').where('origin', '=', logOrigin(log.logId)).executeTakeFirstOrThrow()).tree_size);
      assert.ok(after >= old, `round ${round}: never rolled back (${old} -> ${after})`);
      assert.ok(results.filter((r) => r.status === 200).length <= 2);
      for (const r of results) assert.ok([200, 400, 409].includes(r.status), `${r.status} ${r.body}`);
      if (old === 4) assert.equal(results.filter((r) => r.status === 200).length, 1, 'from 4 exactly one of the two wins');
    }
  });

  test('the owner learns the witness\'s size from a 409 and sends the proof from it; a bad cosignature is not stored', async () => {
    const store = getStore();
    const { log, witness, peer, posted } = setUp(store);
    await log.appendMany(entries(6));
    const h6 = (await log.signTreeHead())!;
    // The witness saw size 6 by another path (the owner's record of it is lost).
    assert.equal((await witness.addCheckpoint(Buffer.from(addCheckpointBody(0, [], own(h6))))).status, 200);
    await log.appendMany(entries(3, 6));
    const h9 = (await log.signTreeHead())!;
    assert.deepEqual(await collectCosignatures(log, h9, [peer]), [{ witness: NAME, ok: true }]);
    assert.deepEqual(posted.map((p) => p.split('\n')[0]), ['old 0', 'old 6']);
    // Already cosigned: not asked again.
    assert.deepEqual(await collectCosignatures(log, (await log.latestTreeHead())!, [peer]), []);
    // A witness answering with a line that does not verify, or with another key's line.
    await log.appendMany(entries(1, 9));
    const h10 = (await log.signTreeHead())!;
    const liar: WitnessPeer = { verifier: W, post: () => Promise.resolve({ status: 200, body: `${cosignatureLine(parseNote(h9.checkpoint).text, WITNESS_KEYS.privateKey, NAME, 1_800_000_000)}\n` }) };
    const [bad] = await collectCosignatures(log, h10, [liar]);
    assert.equal(bad?.ok, false);
    assert.match(bad?.reason ?? '', /does not verify/);
    const stranger: WitnessPeer = { verifier: W, post: () => Promise.resolve({ status: 200, body: `${cosignatureLine(parseNote(h10.checkpoint).text, STRANGER.privateKey, NAME, 1_800_000_000)}\n` }) };
    assert.match((await collectCosignatures(log, h10, [stranger]))[0]?.reason ?? '', /no cosignature of its key/);
    const down: WitnessPeer = { verifier: W, post: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) };
    assert.match((await collectCosignatures(log, h10, [down]))[0]?.reason ?? '', /could not be reached \(ECONNREFUSED\)/);
    const rows = await store.db.selectFrom('transparency_cosignature').select('tree_size').where('log', '=', log.logId).execute();
    assert.deepEqual(rows.map((r) => Number(r.tree_size)).sort((x, y) => x - y), [9]);
  });

  test('the log\'s cosign hook runs after each signing, in order, and its failure does not fail the signing', async () => {
    const store = getStore();
    const seen: number[] = [];
    const errors: unknown[] = [];
    const log = new TransparencyLog({
      db: store.db,
      dialect: store.dialect,
      logId: fresh(),
      signingKey: LOG_KEYS.privateKey,
      cosign: (h) => {
        seen.push(h.treeSize);
        return h.treeSize === 2 ? Promise.reject(new Error('witness down')) : Promise.resolve();
      },
      onError: (e) => errors.push(e),
    });
    await log.appendMany(entries(1));
    await log.signTreeHead();
    await log.appendMany(entries(1, 1));
    const h2 = await log.signTreeHead();
    assert.equal(h2?.treeSize, 2, 'signed, though the hook failed');
    await log.appendMany(entries(1, 2));
    await log.signTreeHead();
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(errors.length, 1);
  });
});
