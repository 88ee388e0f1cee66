/**
 * Access records and the data-usage service, end to end over the real exchange: every release
 * about a person leaves exactly one access record (in the transaction of its message-log record)
 * and one transparency-log entry; refusals leave none; the person's records come back through the
 * exchange, newest first, each provably in the gateway's signed log; the tracker merges them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IDS, TEST_AGREEMENTS, startExchange, type Exchange } from '../../test/support/exchange.ts';
import { verifyAccessRecord, type AccessPage } from '../transparency/access.ts';
import { verifyLog } from '../transparency/verify.ts';
import { transparencyLogId } from './node.ts';
import { track } from './tracker.ts';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { addService, initGateway, setWitnesses, startGateway, type RunningGateway } from './node.ts';
import { gatewayLogVerifier, witnessName, witnessPolicy } from './witnessing.ts';
import { logOrigin, logVerifier } from '../transparency/formats.ts';
import { freePort } from '../demo/ports.ts';

const PORTAL = 'UK/MUN/LEEDS/portal';
const DISABILITY = 'UK/GOV/DWP/disability';
const DWP_GW = 'UK/GOV/DWP/gw1';
const PARKING = { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'resident-parking-permit' };
const TRACKER = { 'x-road-client': PORTAL, 'x-onceonly-purpose': 'citizen-data-tracker' };
let ex: Exchange;
let dwp: RunningGateway;
let disabilityRegister: Server;
// What the gateways say in the background (a witness refusing to cosign): sizes and statuses only.
const warnings: string[] = [];

describe('access records and the data-usage service', () => {
  before(async () => {
    ex = await startExchange();
    await ex.central.addSubsystem({ id: PORTAL });
    await ex.central.addSubsystem({ id: DISABILITY });
    // The portal is a subsystem of Leeds the central lets Leeds' gateway speak for.
    await ex.central.assignSubsystem(IDS.leedsGw, PORTAL);
    // A second register of person data, behind its own organisation's gateway: a disability
    // register answering registry envelopes for person.disabilityStatus.
    disabilityRegister = createServer((req, res) => {
      const id = /^\/disability\/(P-\d{9}-[0-9X])\?/.exec(req.url ?? '')?.[1];
      res.setHeader('content-type', 'application/json');
      if (!id) {
        res.statusCode = 404;
        res.end(JSON.stringify({ type: 'unknown_subject', message: 'no such person', detail: {} }));
        return;
      }
      res.end(JSON.stringify({ id, asAt: new Date().toISOString().slice(0, 10), knownAt: null, items: { 'person.disabilityStatus': { value: { disabled: false }, source: DISABILITY, lastUpdated: '2025-01-01', classification: 'special-category' } } }));
    });
    await new Promise<void>((resolve) => disabilityRegister.listen(0, '127.0.0.1', resolve));
    const dwpDir = join(ex.root, 'gw-dwp');
    const [dwpPort, dwpClient] = await Promise.all([freePort(), freePort()]);
    await initGateway({ dir: dwpDir, anchorFile: join(ex.dirs.central, 'anchor.json'), id: DWP_GW, address: `https://127.0.0.1:${dwpPort}`, clientPort: dwpClient, providerPort: dwpPort, token: ex.token, subsystems: [DISABILITY] });
    addService(dwpDir, DISABILITY, 'disability', { url: `http://127.0.0.1:${(disabilityRegister.address() as { port: number }).port}/disability`, timeoutMs: 5000, kind: 'registry' });
    await ex.central.publishAgreements({
      agreements: [
        ...TEST_AGREEMENTS.agreements,
        { id: 'leeds-disability', client: IDS.parking, provider: DISABILITY, items: ['person.disabilityStatus'], purpose: { id: 'resident-parking-permit', description: 'Disabled parking bays.' }, legalBasis: 'UK GDPR Art. 9(2)(g) (synthetic)', validFrom: '2020-01-01', validUntil: '2099-12-31' },
        { id: 'portal-tracker-disability', client: PORTAL, provider: DISABILITY, items: ['person.disabilityUsageRecords'], purpose: { id: 'citizen-data-tracker', description: 'Show people every use of their data.' }, legalBasis: 'UK GDPR Art. 15 (synthetic)', validFrom: '2020-01-01', validUntil: '2099-12-31' },
        { id: 'portal-tracker', client: PORTAL, provider: IDS.population, items: ['person.usageRecords'], purpose: { id: 'citizen-data-tracker', description: 'Show people every use of their data.' }, legalBasis: 'UK GDPR Art. 15 (synthetic)', validFrom: '2020-01-01', validUntil: '2099-12-31' },
      ],
    });
    // Each register's log is witnessed by the two other organisations' gateways, the quorum the
    // tracker requires by default.
    setWitnesses(ex.dirs.gro, [IDS.leedsGw, DWP_GW]);
    setWitnesses(dwpDir, [IDS.groGw, IDS.leedsGw]);
    await ex.gro.conf.fetch();
    await ex.leeds.conf.fetch();
    dwp = await startGateway(dwpDir, { settings: { confIntervalMs: 60_000 }, now: ex.now, onWarning: (m) => warnings.push(m) });
    await ex.restartGateway('gro', { onWarning: (m) => warnings.push(m) });
    await ex.leeds.conf.fetch();
  });
  after(async () => {
    await dwp.stop();
    await new Promise<void>((resolve) => disabilityRegister.close(() => resolve()));
    await ex.stop();
  });

  const usage = async (person: string, query = ''): Promise<{ status: number; page: AccessPage & { gateway: string } }> => {
    const r = await ex.call(`/r1/${IDS.population}/data-usage/${person}?items=person.usageRecords${query}`, TRACKER);
    return { status: r.status, page: JSON.parse(r.body) as AccessPage & { gateway: string } };
  };
  const records = async (): Promise<{ person: string; items: string }[]> => ex.gro.store.db.selectFrom('access_record').select(['person', 'items']).orderBy('log_position').execute();

  test('each release leaves one access record and one log entry; refusals leave none', async () => {
    const before_ = (await records()).length;
    const ok1 = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName,person.address`, { ...PARKING, 'x-road-userid': 'clerk-17' });
    assert.equal(ok1.status, 200, ok1.body);
    const ok2 = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}/exists`, PARKING);
    assert.equal(ok2.status, 200, ok2.body);
    const ok3 = await ex.call(`/r1/${IDS.population}/people/${ex.people.bob}?items=person.familyName`, PARKING);
    assert.equal(ok3.status, 200, ok3.body);
    const refused = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.birthDate`, PARKING);
    assert.equal(refused.headers['x-road-error'], 'Server.ServerProxy.AccessDenied');
    const noAgreement = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'something-else' });
    assert.equal(noAgreement.headers['x-road-error'], 'Server.ServerProxy.AccessDenied');
    const rows = (await records()).slice(before_);
    assert.deepEqual(rows, [
      { person: ex.people.alice, items: '["person.givenName","person.address"]' },
      { person: ex.people.alice, items: '[]' },
      { person: ex.people.bob, items: '["person.familyName"]' },
    ]);
    const tlog = await ex.gro.store.db.selectFrom('transparency_entry').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    assert.equal(Number(tlog?.n), rows.length + before_);
  });

  test('a person\'s records come through the exchange, newest first, only theirs, each proven in the signed log', async () => {
    const { status, page } = await usage(ex.people.alice);
    assert.equal(status, 200, JSON.stringify(page));
    assert.equal(page.total, 2);
    assert.deepEqual(page.records.map((r) => r.record.items), [[], ['person.givenName', 'person.address']]);
    assert.ok(page.records.every((r) => r.record.person === ex.people.alice));
    const first = page.records[1]!.record;
    assert.equal(first.client, IDS.parking);
    assert.equal(first.agreement, 'leeds-parking-population');
    assert.equal(first.purpose, 'resident-parking-permit');
    assert.equal(first.legalBasis, 'Synthetic agreement for tests');
    assert.equal(first.userId, 'clerk-17');
    const conf = ex.leeds.conf.held()!;
    const key = gatewayLogVerifier(conf, IDS.groGw)!;
    const policy = witnessPolicy(conf, IDS.groGw);
    for (const { record, proof } of page.records) {
      const v = verifyAccessRecord(record, proof, key, policy);
      assert.ok(v.ok, v.ok ? '' : v.reason);
      // Cosigned by both other gateways, each under its witness name.
      assert.match(v.details.join('\n'), new RegExp(`cosigned by ${witnessName(IDS.leedsGw)}[\\s\\S]*cosigned by ${witnessName(DWP_GW)}|cosigned by ${witnessName(DWP_GW)}[\\s\\S]*cosigned by ${witnessName(IDS.leedsGw)}`));
    }
    // An altered record no longer matches its log entry; a proof against another key fails.
    const altered = { ...first, client: 'UK/GOV/DWP/benefits' };
    assert.equal(verifyAccessRecord(altered, page.records[1]!.proof, key).ok, false);
    const otherKey = logVerifier(transparencyLogId(IDS.groGw), conf.gateways.find((g) => g.id === IDS.leedsGw)!.signingKey);
    assert.equal(verifyAccessRecord(first, page.records[1]!.proof, otherKey).ok, false);
    // A quorum the witnesses cannot reach.
    assert.match((() => {
      const v = verifyAccessRecord(first, page.records[1]!.proof, key, { ...policy, quorum: 3 });
      return v.ok ? '' : v.reason;
    })(), /cosigned by 2 of the 2 witnesses trusted.*3 are required/);
    // Paging.
    const p2 = await usage(ex.people.alice, '&page=2&pageSize=1');
    assert.equal(p2.page.records.length, 1);
    assert.deepEqual(p2.page.records[0]!.record, first);
    const log = await verifyLog(ex.gro.store.db, transparencyLogId(IDS.groGw));
    assert.equal(log.ok, true, JSON.stringify(log.problems));
  });

  test('the data-usage service follows the same access rules as any service', async () => {
    const noAgreement = await ex.call(`/r1/${IDS.population}/data-usage/${ex.people.alice}?items=person.usageRecords`, PARKING);
    assert.equal(noAgreement.status, 500);
    assert.equal((JSON.parse(noAgreement.body) as { onceonly: { type: string } }).onceonly.type, 'item_not_covered', 'the parking agreement does not grant usage records');
    // Refused by the provider gateway: X-Road's Server.ServerProxy.* (500), onceonly's reason beside it.
    const reason = (r: { status: number; body: string }): string => (JSON.parse(r.body) as { onceonly: { type: string } }).onceonly.type;
    const otherItem = await ex.call(`/r1/${IDS.population}/data-usage/${ex.people.alice}?items=person.givenName`, TRACKER);
    assert.equal(otherItem.status, 500);
    assert.equal(reason(otherItem), 'invalid_request');
    const badId = await ex.call(`/r1/${IDS.population}/data-usage/not-a-person?items=person.usageRecords`, TRACKER);
    assert.equal(reason(badId), 'invalid_identifier');
    const badPage = await ex.call(`/r1/${IDS.population}/data-usage/${ex.people.alice}?items=person.usageRecords&pageSize=1000`, TRACKER);
    assert.equal(reason(badPage), 'invalid_request');
    const twice = await ex.call(`/r1/${IDS.population}/data-usage/${ex.people.alice}?items=person.usageRecords&page=1&page=2`, TRACKER);
    assert.equal(reason(twice), 'invalid_request');
  });

  test('the tracker asks every register the portal may ask, verifies and merges, and never shows another person\'s records', async () => {
    const d = await ex.call(`/r1/${DISABILITY}/disability/${ex.people.bob}?items=person.disabilityStatus`, PARKING);
    assert.equal(d.status, 200, d.body);
    const r = await track(ex.people.bob, { dir: ex.dirs.leeds, client: PORTAL });
    assert.deepEqual(r.asked.map((a) => [a.provider, a.records, a.error]), [[IDS.population, 1, undefined], [DISABILITY, 1, undefined]]);
    assert.equal(r.records.length, 2);
    assert.deepEqual(r.records.map((x) => x.record.provider), [DISABILITY, IDS.population], 'newest first, across registers');
    assert.ok(r.records.every((x) => x.verified && x.record.person === ex.people.bob));
    const alice = await track(ex.people.alice, { dir: ex.dirs.leeds, client: PORTAL });
    assert.ok(alice.records.length === 2 && alice.records.every((x) => x.record.person === ex.people.alice));
    await assert.rejects(track('P-123', { dir: ex.dirs.leeds, client: PORTAL }), /not a person identifier/);
    const strict = await track(ex.people.bob, { dir: ex.dirs.leeds, client: PORTAL, quorum: 3 });
    assert.ok(strict.records.every((x) => !x.verified && /3 are required/.test(x.check)));
  });

  test('an access record deleted from the register\'s store is reported by its log entry', async () => {
    const db = ex.gro.store.db;
    const row = await db.selectFrom('access_record').selectAll().where('person', '=', ex.people.alice).orderBy('tlog_index').limit(1).executeTakeFirstOrThrow();
    await db.deleteFrom('access_record').where('gateway_id', '=', row.gateway_id).where('tlog_index', '=', row.tlog_index).execute();
    const report = await verifyLog(db, transparencyLogId(IDS.groGw));
    assert.equal(report.ok, false);
    assert.deepEqual(report.problems.map((p) => `${p.kind}@${p.position}`), [`access@${Number(row.tlog_index)}`]);
    assert.match(report.problems[0]!.message, new RegExp(`entry ${Number(row.tlog_index)} records a release by ${IDS.groGw.replaceAll('/', '\\/')} .* its access record is missing`));
    assert.ok(!report.problems[0]!.message.includes(ex.people.alice), 'the report names no person');
    // Altered instead of deleted: reported as altered.
    await db.insertInto('access_record').values({ ...row, purpose: 'something-else' }).execute();
    const altered = await verifyLog(db, transparencyLogId(IDS.groGw));
    assert.match(altered.problems[0]?.message ?? '', /no longer matches that digest: it was altered/);
    await db.updateTable('access_record').set({ purpose: row.purpose }).where('gateway_id', '=', row.gateway_id).where('tlog_index', '=', row.tlog_index).execute();
    assert.equal((await verifyLog(db, transparencyLogId(IDS.groGw))).ok, true);
  });

  test('a register that truncates its log and re-signs it is refused by the witnesses, and the tracker says so', async () => {
    const db = ex.gro.store.db;
    const logId = transparencyLogId(IDS.groGw);
    const origin = logOrigin(logId);
    const witnessed = async (gw: RunningGateway): Promise<number> => Number((await gw.store.db.selectFrom('transparency_witness').select('tree_size').where('origin', '=', origin).executeTakeFirstOrThrow()).tree_size);
    const size = Number((await db.selectFrom('transparency_tree').select('size').where('log', '=', logId).executeTakeFirstOrThrow()).size);
    assert.equal(await witnessed(ex.leeds), size, 'both witnesses hold the latest size');
    assert.equal(await witnessed(dwp), size);
    // The register hides its last release: the record, its log entry, the subtrees over it, the
    // heads and cosignatures that counted it; the tree is set back one entry. Everything left is
    // self-consistent (verify-log on the store alone cannot tell).
    const last = size - 1;
    await db.deleteFrom('access_record').where('tlog_index', '=', last).execute();
    await db.deleteFrom('transparency_entry').where('log', '=', logId).where('seq', '=', last).execute();
    for (let level = 1; 2 ** level <= size; level++) {
      const idx = Math.floor(last / 2 ** level);
      if ((idx + 1) * 2 ** level === size) await db.deleteFrom('transparency_node').where('log', '=', logId).where('level', '=', level).where('idx', '=', idx).execute();
    }
    await db.deleteFrom('transparency_head').where('log', '=', logId).where('tree_size', '>=', last).execute();
    await db.deleteFrom('transparency_cosignature').where('log', '=', logId).execute();
    await db.updateTable('transparency_tree').set({ size: last }).where('log', '=', logId).execute();
    assert.equal((await verifyLog(db, logId)).ok, true, 'the store alone shows nothing');
    warnings.length = 0;
    // The tracker's request makes the register sign the shortened log and ask the witnesses.
    const r = await track(ex.people.alice, { dir: ex.dirs.leeds, client: PORTAL });
    const fromGro = r.records.filter((x) => x.record.provider === IDS.population);
    assert.ok(fromGro.length > 0);
    for (const x of fromGro) {
      assert.equal(x.verified, false);
      assert.match(x.check, /cosigned by 0 of the 2 witnesses trusted/);
    }
    assert.equal(await witnessed(ex.leeds), size, 'the witnesses kept the size they cosigned');
    assert.equal(await witnessed(dwp), size);
    assert.equal(warnings.filter((w) => /did not cosign/.test(w) && /has cosigned size \d+, larger than this checkpoint's/.test(w)).length, 2, warnings.join('\n'));
    assert.ok(warnings.every((w) => !w.includes(ex.people.alice) && !w.includes(ex.people.bob)), 'no person in the warnings');
  });
});
