/**
 * @module transparency/log.test
 * The transparency log on both engines: roots equal to the in-memory RFC 9162 tree at every size,
 * every entry's inclusion proof against a signed head, consistency proofs between every pair of
 * sizes, signing on demand and on the timer, and tampering done directly in the database (altered,
 * deleted, inserted, re-ordered entries, changed subtree hashes, rewritten history, forged heads),
 * each of which must be caught and named at its position.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { generateSigningKey, publicJwk, signEd25519 } from '../core/crypto.ts';
import { isOnceOnlyError } from '../core/errors.ts';
import { leafHash, nodeHash, rootFromLeaves, verifyConsistency, verifyInclusion } from '../core/merkle.ts';
import type { Store } from '../store/db.ts';
import { eachEngine } from '../../test/support/stores.ts';
import { keyIdHex, parseNote } from '../core/note.ts';
import { leafInput, logVerifier, signTreeHead, verifyExtends, verifyInclusionProof, verifyTreeHead, type ConsistencyProofDocument, type InclusionProofDocument, type SignedTreeHead } from './formats.ts';
import { TransparencyLog } from './log.ts';
import { formatLogReport, listLogs, verifyLog, type LogReport } from './verify.ts';

const KEYS = generateSigningKey();
const PUB = publicJwk(KEYS.publicKey);
const OTHER = generateSigningKey();

const vHead = (h: SignedTreeHead, key = PUB): ReturnType<typeof verifyTreeHead> => verifyTreeHead(h, logVerifier(h.log, key));
const vProof = (d: InclusionProofDocument): ReturnType<typeof verifyTreeHead> => verifyInclusionProof(d, logVerifier(d.log, PUB));
const vExtends = (a: SignedTreeHead, b: SignedTreeHead, p: ConsistencyProofDocument | undefined): ReturnType<typeof verifyTreeHead> => verifyExtends(a, b, p, logVerifier(a.log, PUB));

let counter = 0;
/** A fresh log name per test, so tests sharing one store never see each other's trees. */
function name(): string {
  counter += 1;
  return `UK/test-log-${counter}`;
}

function record(i: number): { at: string; client: string; items: string[]; purpose: string; subject: string } {
  return { subject: `P-${String(i).padStart(9, '0')}-X`, client: 'UK/MUN/LEEDS/parking', items: ['person.address'], purpose: 'resident-parking-permit', at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString() };
}

function open(store: Store, logId = name(), extra: { signEveryMs?: number } = {}): TransparencyLog {
  return new TransparencyLog({ db: store.db, dialect: store.dialect, logId, signingKey: KEYS.privateKey, ...extra });
}

async function seed(store: Store, n: number, opts: { headEvery?: number } = {}): Promise<TransparencyLog> {
  const log = open(store);
  for (let i = 0; i < n; i++) {
    await log.append(record(i));
    if (opts.headEvery && (i + 1) % opts.headEvery === 0) await log.signTreeHead();
  }
  return log;
}

const kinds = (r: LogReport): string[] => r.problems.map((p) => `${p.kind}@${p.position}`);

eachEngine('transparency log', (getStore) => {
  const entryRows = (log: string) => getStore().db.selectFrom('transparency_entry').selectAll().where('log', '=', log).orderBy('seq').execute();
  const leaves = async (log: string): Promise<Buffer[]> => (await entryRows(log)).map((r) => r.leaf_hash);

  test('entries are stored in the documented form, and the roots of every size are the RFC 9162 roots', async () => {
    const store = getStore();
    const log = open(store);
    const first = await log.append(record(0));
    assert.equal(first.index, 0);
    // Single appends, a batch, and appends arriving together (group-committed).
    await log.appendMany([record(1), record(2), record(3), record(4)]);
    const together = await Promise.all([5, 6, 7, 8, 9, 10].map((i) => log.append(record(i))));
    assert.deepEqual(together.map((t) => t.index), [5, 6, 7, 8, 9, 10]);
    for (let i = 11; i < 70; i++) await log.append(record(i));
    assert.equal(await log.size(), 70);

    const rows = await entryRows(log.logId);
    assert.deepEqual(rows.map((r) => Number(r.seq)), Array.from({ length: 70 }, (_, i) => i));
    // The leaf input, spelt out independently of the implementation: canonical JSON, sorted keys.
    const r0 = rows[0]!;
    const rec = record(0);
    const text = `{"format":"onceonly-tlog-entry-1","index":0,"record":{"at":"${rec.at}","client":"${rec.client}","items":["person.address"],"purpose":"${rec.purpose}","subject":"${rec.subject}"},"time":"${r0.appended_at}"}`;
    assert.equal(r0.entry, text);
    assert.equal(leafInput(0, r0.appended_at, JSON.stringify({ at: rec.at, client: rec.client, items: rec.items, purpose: rec.purpose, subject: rec.subject })), text);
    assert.ok(r0.leaf_hash.equals(leafHash(text)));
    assert.ok(first.leafHash.equals(r0.leaf_hash));

    const all = rows.map((r) => r.leaf_hash);
    for (let n = 0; n <= 70; n++) assert.ok((await log.root(n)).equals(rootFromLeaves(all.slice(0, n))), `root of size ${n}`);
    assert.ok((await log.root()).equals(rootFromLeaves(all)));

    // Exactly one stored node per complete subtree above the leaves: 70 = 64 + 4 + 2, so
    // 35 + 17 + 8 + 4 + 2 + 1 = 67 of them, each the hash of its leaves.
    const nodes = await store.db.selectFrom('transparency_node').selectAll().where('log', '=', log.logId).execute();
    assert.equal(nodes.length, 67);
    for (const nd of nodes) {
      const w = 2 ** nd.level;
      assert.ok(nd.hash.equals(rootFromLeaves(all.slice(Number(nd.idx) * w, (Number(nd.idx) + 1) * w))), `node ${nd.level}/${nd.idx}`);
    }
    assert.deepEqual(await listLogs(store.db).then((l) => l.includes(log.logId)), true);
  });

  test('every entry of every size up to 40 proves its inclusion against a signed tree head', async () => {
    const store = getStore();
    const log = open(store);
    for (let n = 1; n <= 40; n++) {
      await log.append(record(n));
      const head = (await log.signTreeHead())!;
      assert.equal(head.treeSize, n);
      assert.equal(vHead(head).ok, true);
      const all = await leaves(log.logId);
      assert.equal(head.rootHash, rootFromLeaves(all).toString('hex'));
      for (let m = 0; m < n; m++) {
        const doc = await log.proveInclusion(m, head);
        const v = vProof(doc);
        assert.equal(v.ok, true, `n=${n} m=${m} ${v.ok ? '' : v.reason}`);
        // The path also verifies with nothing but core/merkle and the signed root.
        assert.ok(verifyInclusion(m, n, all[m]!, doc.path.map((h) => Buffer.from(h, 'hex')), Buffer.from(head.rootHash, 'hex')));
      }
    }
    // Against the latest head by default; a head is signed on demand when none covers the entry.
    await log.append(record(41));
    const doc = await log.proveInclusion(40);
    assert.equal(doc.treeSize, 41);
    assert.equal(vProof(doc).ok, true);
  });

  test('proofs at a larger size with non-powers of two, against heads of earlier sizes too', async () => {
    const store = getStore();
    const log = open(store);
    const sizes = [1000, 1023, 1025, 1337];
    const heads: SignedTreeHead[] = [];
    let n = 0;
    for (const s of sizes) {
      await log.appendMany(Array.from({ length: s - n }, (_, i) => record(n + i)));
      n = s;
      heads.push((await log.signTreeHead())!);
    }
    const all = await leaves(log.logId);
    for (const head of heads) {
      assert.equal(head.rootHash, rootFromLeaves(all.slice(0, head.treeSize)).toString('hex'));
      for (const m of [0, 1, 511, 512, 999, head.treeSize - 1]) {
        if (m >= head.treeSize) continue;
        assert.equal(vProof(await log.proveInclusion(m, head)).ok, true, `size ${head.treeSize} leaf ${m}`);
      }
    }
    for (const a of heads) {
      for (const b of heads) {
        if (b.treeSize < a.treeSize) continue;
        const proof = a.treeSize === b.treeSize ? undefined : await log.proveConsistency(a.treeSize, b.treeSize);
        assert.equal(vExtends(a, b, proof).ok, true, `${a.treeSize} -> ${b.treeSize}`);
      }
    }
  });

  test('consistency proofs between every pair of sizes up to 40 verify, and fail once an older entry is rewritten in the database', async () => {
    const store = getStore();
    const log = open(store);
    const roots: Buffer[] = [rootFromLeaves([])];
    for (let n = 1; n <= 40; n++) {
      await log.append(record(n));
      roots.push(await log.root());
    }
    for (let m = 1; m <= 40; m++) {
      for (let n = m; n <= 40; n++) {
        const proof = await log.consistencyProof(m, n);
        assert.ok(verifyConsistency(m, n, roots[m]!, roots[n]!, proof), `m=${m} n=${n}`);
      }
    }
    // Rewrite entry 5 as a forger would: new content, its leaf hash and every subtree above it
    // recomputed, so that the store is self-consistent again. The signed old roots catch it.
    const rows = await entryRows(log.logId);
    const forged = rows[5]!.entry.replace('resident-parking-permit', 'council-tax');
    await store.db.updateTable('transparency_entry').set({ entry: forged, leaf_hash: leafHash(forged) }).where('log', '=', log.logId).where('seq', '=', 5).execute();
    await recomputeNodes(store, log.logId, 40);
    for (let m = 6; m <= 40; m++) {
      for (const n of [m, Math.min(40, m + 1), 40]) {
        if (n === m) {
          assert.ok(!(await log.root(m)).equals(roots[m]!), `root of ${m} changed`);
          continue;
        }
        const proof = await log.consistencyProof(m, n);
        assert.ok(!verifyConsistency(m, n, roots[m]!, await log.root(n), proof), `rewritten: m=${m} n=${n}`);
      }
    }
    // Before the rewritten entry, the old trees are untouched and still extend into the new one.
    assert.ok(verifyConsistency(5, 40, roots[5]!, await log.root(40), await log.consistencyProof(5, 40)));
    assert.ok(!verifyConsistency(5, 40, roots[5]!, roots[40]!, await log.consistencyProof(5, 40)), 'but not into the signed tree of 40');
  });

  test('the CLI-level check: a newer signed head extends an older one, and not after history was rewritten', async () => {
    const store = getStore();
    const log = await seed(store, 13);
    const older = (await log.signTreeHead())!;
    await log.appendMany([record(13), record(14), record(15), record(16), record(17)]);
    const newer = (await log.signTreeHead())!;
    const proof = await log.proveConsistency(older.treeSize, newer.treeSize);
    assert.equal(vExtends(older, newer, proof).ok, true);
    const backwards = vExtends(newer, older, proof);
    assert.equal(backwards.ok, false);
    // Rewrite entry 3 and every hash above it, then sign a new head over the rewritten tree with
    // the log's own key: the head is genuine, but it does not extend the older one.
    const rows = await entryRows(log.logId);
    const forged = rows[3]!.entry.replace('person.address', 'person.birthDate');
    await store.db.updateTable('transparency_entry').set({ entry: forged, leaf_hash: leafHash(forged) }).where('log', '=', log.logId).where('seq', '=', 3).execute();
    await recomputeNodes(store, log.logId, 18);
    const relog = open(store, log.logId);
    const rewritten = (await relog.signTreeHead())!;
    assert.equal(vHead(rewritten).ok, true);
    const v = vExtends(older, rewritten, await relog.proveConsistency(older.treeSize, rewritten.treeSize));
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /does not extend the tree of 13/);
    // And the offline check says where.
    const report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.equal(report.ok, false);
    assert.equal(report.problems[0]?.kind, 'head');
    assert.equal(report.problems[0]?.position, 0);
    assert.match(formatLogReport(report), /size 13 .* entries 0\.\.12 were rewritten/);
  });

  test('a forged or re-signed checkpoint fails, in hand and in the store; heads of the earlier format still verify', async () => {
    const store = getStore();
    const log = await seed(store, 9);
    const head = (await log.signTreeHead())!;
    assert.equal(vHead(head).ok, true);
    const own = parseNote(head.checkpoint).signatures[0]!;
    // Any line of the checkpoint changed after signing.
    for (const forged of [head.checkpoint.replace('\n9\n', '\n10\n'), head.checkpoint.replace(/\n[A-Za-z0-9+/]{43}=\n/, `\n${rootFromLeaves([leafHash('x')]).toString('base64')}\n`)]) {
      const n = Number(forged.split('\n')[1]);
      assert.equal(vHead({ ...head, treeSize: n, rootHash: Buffer.from(forged.split('\n')[2]!, 'base64').toString('hex'), checkpoint: forged }).ok, false);
    }
    // Re-signed by another key under the log's name: another key ID, so no signature of the log's key.
    const resigned = signTreeHead(OTHER.privateKey, head.log, head.treeSize, Buffer.from(head.rootHash, 'hex'));
    const v = vHead(resigned);
    assert.equal(v.ok, false);
    assert.match(v.ok ? '' : v.reason, /no signature by the log's key/);

    // In the store: a row whose signature is not over its root, one of another key, one of a wrong root signed by the log's key.
    await store.db.insertInto('transparency_head').values({ log: log.logId, tree_size: 9, root_hash: Buffer.alloc(32, 7), signed_at: '2030-01-01T00:00:00.000Z', key_id: keyIdHex(own.keyId), signature: own.line.split(' ')[2]! }).execute();
    const other = parseNote(signTreeHead(OTHER.privateKey, log.logId, 8, Buffer.alloc(32, 9)).checkpoint).signatures[0]!;
    await store.db.insertInto('transparency_head').values({ log: log.logId, tree_size: 8, root_hash: Buffer.alloc(32, 9), signed_at: '2030-01-02T00:00:00.000Z', key_id: keyIdHex(other.keyId), signature: other.line.split(' ')[2]! }).execute();
    const report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report), ['head@0', 'head@0']);
    assert.match(formatLogReport(report), /size 9 signed at 2030-01-01.*does not verify/);
    assert.match(formatLogReport(report), /names key .* not one of the log's keys/);
    const wrong = parseNote(signTreeHead(KEYS.privateKey, log.logId, 5, Buffer.alloc(32, 1)).checkpoint).signatures[0]!;
    await store.db.deleteFrom('transparency_head').where('log', '=', log.logId).where('signed_at', '>=', '2030').execute();
    await store.db.insertInto('transparency_head').values({ log: log.logId, tree_size: 5, root_hash: Buffer.alloc(32, 1), signed_at: '2030-01-03T00:00:00.000Z', key_id: keyIdHex(wrong.keyId), signature: wrong.line.split(' ')[2]! }).execute();
    assert.deepEqual(kinds(await verifyLog(store.db, log.logId, { publicKeys: [PUB] })), ['head@0']);
    await store.db.deleteFrom('transparency_head').where('log', '=', log.logId).where('signed_at', '>=', '2030').execute();

    // A head signed before checkpoints (migration 0009): onceonly-tree-head-1 under the JWK thumbprint.
    // It verifies as it was written, and latestTreeHead() never hands it out as a checkpoint.
    const root9 = await log.root(9);
    const at = '2026-06-01T00:00:00.000Z';
    const thumb = createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${PUB.x}"}`).digest('base64url');
    const legacy = signEd25519(KEYS.privateKey, `onceonly-tree-head-1\n${log.logId}\n9\n${root9.toString('hex')}\n${at}\n`);
    await store.db.insertInto('transparency_head').values({ log: log.logId, tree_size: 9, root_hash: root9, signed_at: at, key_id: thumb, signature: legacy }).execute();
    const withLegacy = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.equal(withLegacy.ok, true, formatLogReport(withLegacy));
    assert.equal(withLegacy.heads, 2);
    assert.equal((await log.latestTreeHead())?.checkpoint, head.checkpoint);
    await store.db.updateTable('transparency_head').set({ signature: legacy.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }).where('log', '=', log.logId).where('key_id', '=', thumb).execute();
    assert.deepEqual(kinds(await verifyLog(store.db, log.logId, { publicKeys: [PUB] })), ['head@0']);
  });

  test('an intact log verifies, and heads are signed on demand, on the timer only when the size changed, and on stop', async () => {
    const store = getStore();
    const log = open(store, name(), { signEveryMs: 20 });
    log.start();
    for (let i = 0; i < 5; i++) await log.append(record(i));
    let heads: SignedTreeHead[] = [];
    for (let tries = 0; tries < 100 && !heads.some((h) => h.treeSize === 5); tries++) {
      await sleep(20);
      heads = await log.treeHeads();
    }
    assert.ok(heads.some((h) => h.treeSize === 5), 'the timer signed the new size');
    await sleep(100);
    assert.equal((await log.treeHeads()).filter((h) => h.treeSize === 5).length, 1, 'and not again while nothing changed');
    await log.append(record(5));
    await log.stop();
    assert.equal((await log.latestTreeHead())?.treeSize, 6, 'stop() signs the last size');
    assert.equal(await log.signTreeHead({ onlyIfChanged: true }), null);
    const again = await log.signTreeHead();
    assert.equal(again?.treeSize, 6, 'on demand signs even when nothing changed (a fresher timestamp)');
    const report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.equal(report.ok, true, formatLogReport(report));
    assert.equal(report.entries, 6);
    assert.equal(report.lastGoodHead, 6);
    assert.match(formatLogReport(report), /OK/);
    const unsignedCheck = await verifyLog(store.db, log.logId);
    assert.equal(unsignedCheck.ok, true);
    assert.match(unsignedCheck.notes.join('\n'), /signatures of tree heads were not checked/);
  });

  test('an altered entry is named at its position, whether or not its hashes were recomputed', async () => {
    const store = getStore();
    const log = await seed(store, 30, { headEvery: 10 });
    const rows = await entryRows(log.logId);
    // Content only: the entry no longer matches its leaf hash.
    await store.db.updateTable('transparency_entry').set({ entry: rows[17]!.entry.replace('P-', 'Q-') }).where('log', '=', log.logId).where('seq', '=', 17).execute();
    let report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.deepEqual(kinds(report), ['altered@17']);
    assert.match(formatLogReport(report), /FAILED[\s\S]*first problem at position 17[\s\S]*does not match its leaf hash/);
    // Content and leaf hash: the stored subtree over it no longer matches.
    const forged = rows[17]!.entry.replace('P-', 'Q-');
    await store.db.updateTable('transparency_entry').set({ entry: forged, leaf_hash: leafHash(forged) }).where('log', '=', log.logId).where('seq', '=', 17).execute();
    report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.deepEqual(kinds(report), ['node@16']);
    assert.match(report.problems[0]!.message, /entries 16\.\.17/);
    // Content, leaf hash and every subtree: only the signed heads are left to tell, and they say
    // since which head (size 10, so within entries 10..19).
    await recomputeNodes(store, log.logId, 30);
    report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.deepEqual(kinds(report), ['head@10']);
    assert.match(report.problems[0]!.message, /size 20 .* entries 10\.\.19 were rewritten/);
    // The appended_at column alone.
    const log2 = await seed(store, 6);
    await store.db.updateTable('transparency_entry').set({ appended_at: '2020-01-01T00:00:00.000Z' }).where('log', '=', log2.logId).where('seq', '=', 4).execute();
    assert.deepEqual(kinds(await verifyLog(store.db, log2.logId)), ['altered@4']);
    // A stored subtree hash alone.
    const log3 = await seed(store, 16);
    await store.db.updateTable('transparency_node').set({ hash: Buffer.alloc(32) }).where('log', '=', log3.logId).where('level', '=', 2).where('idx', '=', 2).execute();
    report = await verifyLog(store.db, log3.logId);
    assert.deepEqual(kinds(report), ['node@8']);
    assert.match(report.problems[0]!.message, /entries 8\.\.11 \(subtree level 2, index 2\)/);
  });

  test('deleted entries are named at their position, in the middle and at the end', async () => {
    const store = getStore();
    const log = await seed(store, 25, { headEvery: 5 });
    await store.db.deleteFrom('transparency_entry').where('log', '=', log.logId).where('seq', 'in', [11, 12]).execute();
    let report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.equal(report.problems[0]?.position, 11);
    assert.deepEqual(kinds(report), ['deleted@11']);
    assert.match(report.problems[0]?.message ?? '', /entries 11\.\.12 are missing/);

    const log2 = await seed(store, 12);
    await log2.signTreeHead();
    await store.db.deleteFrom('transparency_entry').where('log', '=', log2.logId).where('seq', '>=', 10).execute();
    report = await verifyLog(store.db, log2.logId, { publicKeys: [PUB] });
    assert.deepEqual(kinds(report), ['deleted@10']);
    assert.match(report.problems[0]!.message, /entries 10\.\.11 are missing from the end[\s\S]*signed tree head of size 12/);
    // Even with the tree row moved back to hide it, the signed head still counts them.
    await store.db.updateTable('transparency_tree').set({ size: 10 }).where('log', '=', log2.logId).execute();
    report = await verifyLog(store.db, log2.logId, { publicKeys: [PUB] });
    assert.deepEqual(kinds(report), ['deleted@10']);
    assert.match(report.problems[0]!.message, /tree head of size 12/);
  });

  test('inserted entries are named: beyond the tree, and in the middle with the rest renumbered', async () => {
    const store = getStore();
    const log = await seed(store, 10);
    const text = leafInput(10, '2026-01-01T00:00:00.000Z', '{"forged":true}');
    await store.db.insertInto('transparency_entry').values({ log: log.logId, seq: 10, entry: text, leaf_hash: leafHash(text), appended_at: '2026-01-01T00:00:00.000Z' }).execute();
    let report = await verifyLog(store.db, log.logId);
    assert.deepEqual(kinds(report), ['inserted@10']);
    assert.match(report.problems[0]!.message, /outside the tree of 10 entries/);

    // A forger makes room at position 4 and puts a well-formed entry there (tree size moved too).
    const log2 = await seed(store, 12, { headEvery: 12 });
    for (let s = 11; s >= 4; s--) await store.db.updateTable('transparency_entry').set({ seq: s + 1 }).where('log', '=', log2.logId).where('seq', '=', s).execute();
    const at = '2026-01-01T00:00:00.000Z';
    const inserted = leafInput(4, at, '{"forged":true}');
    await store.db.insertInto('transparency_entry').values({ log: log2.logId, seq: 4, entry: inserted, leaf_hash: leafHash(inserted), appended_at: at }).execute();
    await store.db.updateTable('transparency_tree').set({ size: 13 }).where('log', '=', log2.logId).execute();
    report = await verifyLog(store.db, log2.logId, { publicKeys: [PUB] });
    assert.equal(report.problems[0]?.position, 4);
    assert.deepEqual(kinds(report), ['inserted@4', 'reordered@5']);
    assert.match(report.problems[0]?.message ?? '', /positions 4 and 5 both say they are entry 4/);
    assert.match(report.problems[1]!.message, /positions 5\.\.12 were appended at positions 4\.\.11/);
  });

  test('re-ordered entries are named, with the position each was appended at', async () => {
    const store = getStore();
    const log = await seed(store, 20, { headEvery: 20 });
    // Swap entries 6 and 13 (every column moves with its row).
    const swap = async (a: number, b: number): Promise<void> => {
      await store.db.updateTable('transparency_entry').set({ seq: -1 }).where('log', '=', log.logId).where('seq', '=', a).execute();
      await store.db.updateTable('transparency_entry').set({ seq: a }).where('log', '=', log.logId).where('seq', '=', b).execute();
      await store.db.updateTable('transparency_entry').set({ seq: b }).where('log', '=', log.logId).where('seq', '=', -1).execute();
    };
    await swap(6, 13);
    let report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.deepEqual(kinds(report), ['reordered@6', 'reordered@13']);
    assert.match(report.problems[0]!.message, /position 6 was appended at position 13/);
    await swap(6, 13);
    assert.equal((await verifyLog(store.db, log.logId, { publicKeys: [PUB] })).ok, true, 'swapped back, intact again');

    // Swapped with content rewritten to claim the new positions: the subtree hashes still know.
    const rows = await entryRows(log.logId);
    for (const [from, to] of [
      [2, 3],
      [3, 2],
    ] as const) {
      const e = JSON.parse(rows[from]!.entry) as { record: unknown; time: string };
      const text = leafInput(to, e.time, JSON.stringify(e.record));
      await store.db.updateTable('transparency_entry').set({ entry: text, leaf_hash: leafHash(text), appended_at: e.time }).where('log', '=', log.logId).where('seq', '=', to).execute();
    }
    report = await verifyLog(store.db, log.logId, { publicKeys: [PUB] });
    assert.deepEqual(kinds(report), ['node@2']);
  });

  test('inserted subtree hashes and a missing one are named', async () => {
    const store = getStore();
    const log = await seed(store, 6);
    await store.db.insertInto('transparency_node').values({ log: log.logId, level: 1, idx: 3, hash: Buffer.alloc(32) }).execute();
    assert.deepEqual(kinds(await verifyLog(store.db, log.logId)), ['inserted@6']);
    await store.db.deleteFrom('transparency_node').where('log', '=', log.logId).where('level', '=', 1).where('idx', '=', 3).execute();
    await store.db.deleteFrom('transparency_node').where('log', '=', log.logId).where('level', '=', 2).where('idx', '=', 0).execute();
    const report = await verifyLog(store.db, log.logId);
    assert.deepEqual(kinds(report), ['node@0']);
    assert.match(report.problems[0]!.message, /entries 0\.\.3 .* is missing/);
    // A proof that needs it refuses with a typed error instead of a wrong answer.
    await assert.rejects(log.inclusionProof(5, 6), (e: unknown) => isOnceOnlyError(e) && /verify-log/.test(e.message));
  });

  test('bad input is refused with typed errors, and nothing is half-written', async () => {
    const store = getStore();
    const log = await seed(store, 3);
    await assert.rejects(log.append({ when: new Date() }), (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_value' && e.detail.field === 'record.when');
    await assert.rejects(log.append({ n: Number.NaN }), (e: unknown) => isOnceOnlyError(e) && e.detail.field === 'record.n');
    await assert.rejects(log.appendMany([record(3), { big: 'x'.repeat(70_000) }]), (e: unknown) => isOnceOnlyError(e) && e.type === 'payload_too_large' && e.detail.field === 'records[1]');
    assert.equal(await log.size(), 3, 'the valid record of the refused batch was not written');
    await assert.rejects(log.inclusionProof(3, 3), (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_request');
    await assert.rejects(log.inclusionProof(0, 4), (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_request');
    await assert.rejects(log.consistencyProof(0, 3), (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_request');
    await assert.rejects(log.root(9), (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_request');
    assert.throws(() => new TransparencyLog({ db: store.db, dialect: store.dialect, logId: 'has space' }), (e: unknown) => isOnceOnlyError(e) && e.detail.field === 'logId');
    const unsigned = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: log.logId });
    await assert.rejects(unsigned.signTreeHead(), (e: unknown) => isOnceOnlyError(e) && e.detail.field === 'signingKey');
    await assert.rejects(unsigned.proveInclusion(0), (e: unknown) => isOnceOnlyError(e) && e.type === 'not_found');
    // Another writer (a second process's log object) appends in between: both keep one tree.
    const second = open(store, log.logId);
    await second.append(record(3));
    await log.append(record(4));
    await second.append(record(5));
    assert.equal(await log.size(), 6);
    assert.ok((await log.root()).equals(rootFromLeaves(await leaves(log.logId))));
    assert.equal((await verifyLog(store.db, log.logId)).ok, true);
  });

  test('two writers appending at the same time (two processes\' log objects) keep one tree', async () => {
    const store = getStore();
    const a = await seed(store, 3);
    const b = open(store, a.logId);
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      work.push(a.append(record(100 + i)), b.append(record(200 + i)));
      if (i % 10 === 0) work.push(b.appendMany([record(300 + i), record(301 + i), record(302 + i)]), a.signTreeHead());
    }
    await Promise.all(work);
    assert.equal(await a.size(), 3 + 80 + 12);
    const all = await leaves(a.logId);
    assert.deepEqual((await entryRows(a.logId)).map((r) => Number(r.seq)), Array.from({ length: 95 }, (_, i) => i));
    assert.ok((await a.root()).equals(rootFromLeaves(all)));
    assert.ok((await b.root()).equals(rootFromLeaves(all)));
    const report = await verifyLog(store.db, a.logId, { publicKeys: [PUB] });
    assert.equal(report.ok, true, formatLogReport(report));
  });

  test('appendIn commits with the caller\'s transaction, or not at all', async () => {
    const store = getStore();
    const log = await seed(store, 5);
    await assert.rejects(
      store.db.transaction().execute(async (trx) => {
        await log.appendIn(trx, [record(5), record(6)]);
        throw new Error('the caller changed its mind');
      }),
      /changed its mind/,
    );
    assert.equal(await log.size(), 5);
    await store.db.transaction().execute((trx) => log.appendIn(trx, [record(7)]));
    await log.append(record(8));
    assert.equal(await log.size(), 7);
    const all = await leaves(log.logId);
    assert.ok((await log.root()).equals(rootFromLeaves(all)));
    assert.equal((await verifyLog(store.db, log.logId)).ok, true);
    assert.equal(nodeHash(all[0]!, all[1]!).length, 32);
  });
});

/** Recomputes every stored subtree hash from the stored leaf hashes, as a forger covering tracks would. */
async function recomputeNodes(store: Store, log: string, size: number): Promise<void> {
  const rows = await store.db.selectFrom('transparency_entry').select(['seq', 'leaf_hash']).where('log', '=', log).orderBy('seq').execute();
  const all = rows.map((r) => r.leaf_hash);
  for (let level = 1; 2 ** level <= size; level++) {
    const w = 2 ** level;
    for (let idx = 0; (idx + 1) * w <= size; idx++) {
      await store.db.updateTable('transparency_node').set({ hash: rootFromLeaves(all.slice(idx * w, (idx + 1) * w)) }).where('log', '=', log).where('level', '=', level).where('idx', '=', idx).execute();
    }
  }
}
