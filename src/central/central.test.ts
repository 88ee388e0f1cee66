/**
 * The central authority as a library, on every store engine: init, the member registry, gateway
 * registration, suspension, agreements, the signed configuration and the admin audit log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { eachEngine } from '../../test/support/stores.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { Central, initCentral, type InitCentralResult } from './central.ts';
import { gatewayKeys } from './test-helpers.ts';
import { verifyGlobalConfiguration } from './conf.ts';
import { verifyIssuedBy } from './pki.ts';
import type { Anchor } from './types.ts';

const isErr = (type: string, field?: string) => (e: unknown): boolean => e instanceof OnceOnlyError && e.type === type && (field === undefined || e.detail.field === field);

eachEngine('central', (getStore) => {
  let dir: string;
  let init: InitCentralResult;
  let central: Central;
  let clock = new Date('2026-03-01T12:00:00Z');

  before(async () => {
    dir = join(mkdtempSync(join(tmpdir(), 'onceonly-central-')), 'central');
    init = await initCentral({ dir, instance: 'UK', url: 'http://127.0.0.1:8500/', store: getStore(), now: clock });
    central = await Central.open({ dir, store: getStore(), clock: () => clock });
  });
  after(async () => {
    await central.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  });

  const auditCount = async (): Promise<number> => (await central.auditLog({ limit: 10000 })).length;

  test('init writes the keys 0600 in a 0700 directory and an anchor', () => {
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of ['ca.key.pem', 'signing.key.pem']) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    const anchor = JSON.parse(readFileSync(join(dir, 'anchor.json'), 'utf8')) as Anchor;
    assert.deepEqual(anchor, init.anchor);
    assert.equal(anchor.kind, 'onceonly-anchor');
    assert.equal(anchor.instance, 'UK');
    assert.equal(anchor.centralUrl, 'http://127.0.0.1:8500');
    assert.equal(anchor.publicKey.crv, 'Ed25519');
    assert.match(init.token, /^oo1\.[0-9a-f]{12}\./);
    assert.ok(init.agreements > 0);
  });

  test('the token is stored only as a hash', async () => {
    const rows = await getStore().db.selectFrom('central_token').selectAll().execute();
    assert.equal(rows.length, 1);
    assert.notEqual(rows[0]!.hash, init.token);
    assert.ok(!JSON.stringify(rows).includes(init.token.split('.')[2]!));
    assert.equal(await central.authenticate(init.token), init.tokenId);
    await assert.rejects(central.authenticate(`${init.token.slice(0, -1)}x`), isErr('unauthorized'));
    await assert.rejects(central.authenticate(undefined), isErr('unauthorized'));
  });

  test('init refuses to overwrite a central, in the same directory or the same store', async () => {
    await assert.rejects(initCentral({ dir, instance: 'UK', url: 'http://127.0.0.1:8500', store: getStore() }), isErr('conflict'));
    const other = join(dir, '..', 'other');
    await assert.rejects(initCentral({ dir: other, instance: 'UK', url: 'http://127.0.0.1:8500', store: getStore() }), isErr('conflict', 'store'));
    // Nothing secret is left behind by the refused init.
    assert.throws(() => statSync(join(other, 'ca.key.pem')));
    assert.equal(statSync(join(dir, 'anchor.json')).isFile(), true);
  });

  test('members, subsystems and gateways are added; the certificate verifies against the CA', async () => {
    const before = await auditCount();
    assert.deepEqual(await central.addMember({ id: 'UK/GOV/GRO', name: 'Synthetic Register Office' }), { id: 'UK/GOV/GRO', name: 'Synthetic Register Office', status: 'active' });
    await central.addMember({ id: 'UK/MUN/LEEDS', name: 'Synthetic City Council' });
    await central.addSubsystem({ id: 'UK/GOV/GRO/population' });
    await central.addSubsystem({ id: 'UK/MUN/LEEDS/parking' });
    const reg = await central.registerGateway({ id: 'UK/GOV/GRO/gw1', member: 'UK/GOV/GRO', address: 'https://127.0.0.1:8601', ...gatewayKeys() });
    assert.equal(verifyIssuedBy(reg.tlsCertificate, central.caCertificate), true);
    assert.equal(reg.caCertificate, central.caCertificate);
    assert.match(reg.fingerprint, /^[0-9a-f]{64}$/);
    await central.registerGateway({ id: 'UK/MUN/LEEDS/gw1', address: 'https://127.0.0.1:8602/', ...gatewayKeys() });
    assert.equal(await auditCount(), before + 6);

    const { conf } = await central.currentConfiguration(clock);
    assert.deepEqual(conf.gateways.map((g) => [g.id, g.address, g.status]), [['UK/GOV/GRO/gw1', 'https://127.0.0.1:8601', 'active'], ['UK/MUN/LEEDS/gw1', 'https://127.0.0.1:8602', 'active']]);
    assert.equal(conf.gateways[0]!.tlsFingerprint, reg.fingerprint);
  });

  test('refusals: duplicates, unknown or suspended member, bad ids, other instance; none leaves an audit entry', async () => {
    const before = await auditCount();
    const keys = gatewayKeys();
    await assert.rejects(central.addMember({ id: 'UK/GOV/GRO', name: 'Again' }), isErr('conflict', 'id'));
    await assert.rejects(central.addMember({ id: 'UK/GOV', name: 'Short' }), isErr('invalid_identifier', 'id'));
    await assert.rejects(central.addMember({ id: 'EE/GOV/RIK', name: 'Other instance' }), isErr('invalid_identifier', 'id'));
    await assert.rejects(central.addMember({ id: 'UK/GOV/../x', name: 'Traversal' }), isErr('invalid_identifier'));
    await assert.rejects(central.addSubsystem({ id: 'UK/GOV/NOBODY/x' }), isErr('not_found', 'id'));
    await assert.rejects(central.registerGateway({ id: 'UK/GOV/NOBODY/gw1', address: 'https://127.0.0.1:8603', ...keys }), isErr('not_found', 'member'));
    await assert.rejects(central.registerGateway({ id: 'UK/GOV/GRO/gw2', member: 'UK/MUN/LEEDS', address: 'https://127.0.0.1:8603', ...keys }), isErr('invalid_value', 'member'));
    await assert.rejects(central.registerGateway({ id: 'UK/GOV/GRO/gw2', address: 'http://127.0.0.1:8603', ...keys }), isErr('invalid_value', 'address'));
    await assert.rejects(central.registerGateway({ id: 'UK/GOV/GRO/gw2', address: 'https://127.0.0.1:8603', ...keys, signingKey: { kty: 'OKP', crv: 'Ed25519', x: 'abc' } }), isErr('invalid_value', 'signingKey'));
    await assert.rejects(central.registerGateway({ id: 'UK/GOV/GRO/gw1', address: 'https://127.0.0.1:8603', ...keys }), isErr('conflict', 'id'));

    await central.addMember({ id: 'UK/GOV/CH', name: 'Synthetic Companies Registry' });
    await central.suspendMember('UK/GOV/CH');
    const mid = await auditCount();
    await assert.rejects(central.registerGateway({ id: 'UK/GOV/CH/gw1', address: 'https://127.0.0.1:8604', ...keys }), isErr('conflict', 'member'));
    await assert.rejects(central.suspendGateway('UK/GOV/CH/nope'), isErr('not_found', 'id'));
    assert.equal(await auditCount(), mid);
    assert.equal(mid, before + 2);
    const gws = await getStore().db.selectFrom('central_gateway').select('id').execute();
    assert.ok(!gws.some((g) => g.id.startsWith('UK/GOV/CH/')));
  });

  test('the configuration verifies with the anchor; it is re-used while fresh and re-signed on change or age', async () => {
    const a = await central.currentConfiguration(clock);
    const again = await central.currentConfiguration(new Date(clock.getTime() + 60_000));
    assert.equal(again.jws, a.jws);
    assert.deepEqual(await verifyGlobalConfiguration(a.jws, init.anchor, clock), a.conf);
    assert.equal(a.conf.caCertificate, central.caCertificate);
    assert.ok(a.conf.agreements.length > 0);

    // Older than half the validity: a new document with the next serial.
    const later = await central.currentConfiguration(new Date(clock.getTime() + 301_000));
    assert.equal(later.conf.serial, a.conf.serial + 1);
    // A second Central over the same store (another process) serves the same one.
    const twin = await Central.open({ dir, store: getStore() });
    assert.equal((await twin.currentConfiguration(new Date(clock.getTime() + 302_000))).jws, later.jws);
  });

  test('a suspension shows in the next configuration, and activation undoes it', async () => {
    clock = new Date('2026-03-01T13:00:00Z');
    const before = await central.currentConfiguration(clock);
    await central.suspendGateway('UK/GOV/GRO/gw1');
    await central.suspendSubsystem('UK/MUN/LEEDS/parking');
    const after1 = await central.currentConfiguration(clock);
    assert.ok(after1.conf.serial > before.conf.serial);
    const conf = await verifyGlobalConfiguration(after1.jws, init.anchor, clock, { minSerial: before.conf.serial });
    assert.equal(conf.gateways.find((g) => g.id === 'UK/GOV/GRO/gw1')!.status, 'suspended');
    assert.equal(conf.subsystems.find((s) => s.id === 'UK/MUN/LEEDS/parking')!.status, 'suspended');
    assert.equal(conf.members.find((m) => m.id === 'UK/GOV/CH')!.status, 'suspended');
    // The older document is now a rollback for a gateway holding the new one.
    await assert.rejects(verifyGlobalConfiguration(before.jws, init.anchor, clock, { minSerial: conf.serial }), isErr('invalid_global_conf'));

    await central.activateGateway('UK/GOV/GRO/gw1');
    await central.activateSubsystem('UK/MUN/LEEDS/parking');
    await central.activateMember('UK/GOV/CH');
    const after2 = (await central.currentConfiguration(clock)).conf;
    assert.ok([...after2.gateways, ...after2.subsystems, ...after2.members].every((e) => e.status === 'active'));
  });

  test('agreements: a bad document is refused naming the field and changes nothing; a good one is published', async () => {
    const { conf: before } = await central.currentConfiguration(clock);
    const auditBefore = await auditCount();
    const good = { agreements: [{ id: 'leeds-parking-population', client: 'UK/MUN/LEEDS/parking', provider: 'UK/GOV/GRO/population', items: ['person.givenName'], purpose: { id: 'resident-parking-permit', description: 'Synthetic purpose.' }, legalBasis: 'Synthetic basis', validFrom: '2026-01-01', validUntil: '2027-01-01' }] };
    const bad = { agreements: [{ ...good.agreements[0], items: ['person.givenName', 'business.name'] }] };
    await assert.rejects(central.publishAgreements(bad, { source: 'test' }), isErr('invalid_file', 'agreements[0].items[1]'));
    assert.equal(await auditCount(), auditBefore);
    assert.equal((await central.currentConfiguration(clock)).conf.serial, before.serial);

    const r = await central.publishAgreements(good);
    assert.deepEqual(r, { version: 2, agreements: 1 });
    const { conf } = await central.currentConfiguration(clock);
    assert.deepEqual(conf.agreements.map((a) => a.id), ['leeds-parking-population']);
    assert.equal(conf.agreements[0]!.consentRequired, false);
    assert.equal(await auditCount(), auditBefore + 1);
  });

  test('every action left one audit entry; the chain verifies, and fails after a direct UPDATE or DELETE', async () => {
    const log = await central.auditLog({ limit: 10000 });
    assert.deepEqual(log.map((e) => e.action), [
      'central.init', 'member.add', 'member.add', 'subsystem.add', 'subsystem.add', 'gateway.register', 'gateway.register',
      'member.add', 'member.suspend', 'gateway.suspend', 'subsystem.suspend', 'gateway.activate', 'subsystem.activate', 'member.activate', 'agreements.publish',
    ]);
    assert.ok(log.every((e) => e.actor === (e.seq === 1 ? 'init' : 'cli')));
    assert.equal(log[5]!.target, 'UK/GOV/GRO/gw1');
    const ok = await central.verifyAdminLog();
    assert.deepEqual(ok, { ok: true, entries: log.length, head: log.at(-1)!.hash });

    const db = getStore().db;
    await db.updateTable('central_audit').set({ target: 'UK/GOV/OTHER' }).where('seq', '=', 6).execute();
    const edited = await central.verifyAdminLog();
    assert.equal(edited.ok, false);
    assert.equal(!edited.ok && edited.seq, 6);
    await db.updateTable('central_audit').set({ target: 'UK/GOV/GRO/gw1' }).where('seq', '=', 6).execute();
    assert.equal((await central.verifyAdminLog()).ok, true);

    // Removing the last entry is caught by the counter; removing one in the middle by the gap.
    const last = log.at(-1)!;
    await db.deleteFrom('central_audit').where('seq', '=', last.seq).execute();
    const truncated = await central.verifyAdminLog();
    assert.equal(!truncated.ok && truncated.seq, last.seq);
    await db.deleteFrom('central_audit').where('seq', '=', 3).execute();
    const gap = await central.verifyAdminLog();
    assert.equal(!gap.ok && gap.seq, 3);
  });
});
