/**
 * The central over HTTP, on every store engine: the public configuration endpoint, bearer-token
 * authentication of the management API, typed refusals naming the field, and the audit log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { eachEngine } from '../../test/support/stores.ts';
import type { App } from '../core/http.ts';
import { Central, initCentral, type InitCentralResult } from './central.ts';
import { verifyGlobalConfiguration } from './conf.ts';
import { gatewayKeys } from './test-helpers.ts';
import { createCentralServer } from './server.ts';
import { verifyIssuedBy } from './pki.ts';

interface ErrorJson { type: string; message: string; detail: { field?: string } }
const enc = encodeURIComponent;

eachEngine('central HTTP', (getStore) => {
  let dir: string;
  let init: InitCentralResult;
  let central: Central;
  let app: App;
  let auth: Record<string, string>;

  before(async () => {
    dir = join(mkdtempSync(join(tmpdir(), 'onceonly-central-http-')), 'central');
    init = await initCentral({ dir, instance: 'UK', url: 'http://127.0.0.1:8500', store: getStore() });
    central = await Central.open({ dir, store: getStore() });
    app = await createCentralServer(central);
    auth = { authorization: `Bearer ${init.token}` };
  });
  after(async () => {
    await app.close();
    await central.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  });

  const audit = async (): Promise<{ entries: { seq: number; actor: string; action: string; target: string }[]; verification: { ok: boolean } }> => {
    const r = await app.inject({ method: 'GET', url: '/manage/audit', headers: auth });
    assert.equal(r.statusCode, 200);
    return r.json();
  };

  test('GET /global-conf serves a JWS that verifies with the anchor; /anchor and /health answer', async () => {
    const r = await app.inject({ method: 'GET', url: '/global-conf' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-type'], 'application/jose');
    const conf = await verifyGlobalConfiguration(r.body, init.anchor, new Date());
    assert.equal(r.headers['x-onceonly-conf-serial'], String(conf.serial));
    assert.deepEqual((await app.inject({ method: 'GET', url: '/anchor' })).json(), init.anchor);
    const h = (await app.inject({ method: 'GET', url: '/health' })).json<{ status: string; serial: number }>();
    assert.equal(h.status, 'ok');
    assert.equal(h.serial, conf.serial);
  });

  test('the management API needs the bearer token: missing or wrong is a typed 401', async () => {
    const body = { id: 'UK/GOV/GRO', name: 'Synthetic Register Office' };
    const cases: [Record<string, string>, string | undefined][] = [
      [{}, 'Bearer realm="onceonly-central"'],
      [{ authorization: 'Bearer oo1.000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, 'Bearer realm="onceonly-central", error="invalid_token"'],
      [{ authorization: `Bearer ${init.token}x` }, 'Bearer realm="onceonly-central", error="invalid_token"'],
      [{ authorization: `Basic ${init.token}` }, 'Bearer realm="onceonly-central", error="invalid_token"'],
    ];
    for (const [headers, challenge] of cases) {
      const r = await app.inject({ method: 'POST', url: '/manage/members', headers, payload: body });
      assert.equal(r.statusCode, 401);
      assert.equal(r.json<ErrorJson>().type, 'unauthorized');
      assert.equal(r.headers['www-authenticate'], challenge);
      assert.ok(!r.body.includes(init.token));
    }
    // Authentication comes before validation: an unauthenticated bad body is still a 401.
    assert.equal((await app.inject({ method: 'POST', url: '/manage/members', payload: {} })).statusCode, 401);
    assert.equal((await app.inject({ method: 'GET', url: '/manage/audit' })).statusCode, 401);
    const ok = await app.inject({ method: 'POST', url: '/manage/members', headers: auth, payload: body });
    assert.equal(ok.statusCode, 201);
    assert.deepEqual(ok.json(), { ...body, status: 'active' });
  });

  test('members, subsystems and gateways over the API; each action one audit entry by api:<token-id>', async () => {
    const before = (await audit()).entries.length;
    const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, headers: auth, payload: payload as Record<string, unknown> });
    assert.equal((await post('/manage/members', { id: 'UK/MUN/LEEDS', name: 'Synthetic City Council' })).statusCode, 201);
    assert.equal((await post('/manage/subsystems', { id: 'UK/GOV/GRO/population' })).statusCode, 201);
    const gw = await post('/manage/gateways', { id: 'UK/GOV/GRO/gw1', member: 'UK/GOV/GRO', address: 'https://127.0.0.1:8601', ...gatewayKeys() });
    assert.equal(gw.statusCode, 201, gw.body);
    const reg = gw.json<{ tlsCertificate: string; caCertificate: string; fingerprint: string }>();
    assert.equal(verifyIssuedBy(reg.tlsCertificate, reg.caCertificate), true);
    assert.equal((await post(`/manage/gateways/${enc('UK/GOV/GRO/gw1')}/suspend`, {})).statusCode, 200);
    assert.equal((await post(`/manage/members/${enc('UK/MUN/LEEDS')}/suspend`, {})).statusCode, 200);
    assert.equal((await post(`/manage/subsystems/${enc('UK/GOV/GRO/population')}/suspend`, {})).statusCode, 200);

    const log = await audit();
    assert.equal(log.verification.ok, true);
    const mine = log.entries.slice(before);
    assert.deepEqual(mine.map((e) => [e.action, e.target]), [
      ['member.add', 'UK/MUN/LEEDS'], ['subsystem.add', 'UK/GOV/GRO/population'], ['gateway.register', 'UK/GOV/GRO/gw1'],
      ['gateway.suspend', 'UK/GOV/GRO/gw1'], ['member.suspend', 'UK/MUN/LEEDS'], ['subsystem.suspend', 'UK/GOV/GRO/population'],
    ]);
    assert.ok(mine.every((e) => e.actor === `api:${init.tokenId}`));

    const conf = await verifyGlobalConfiguration((await app.inject({ method: 'GET', url: '/global-conf' })).body, init.anchor, new Date());
    assert.equal(conf.gateways.find((g) => g.id === 'UK/GOV/GRO/gw1')?.status, 'suspended');
    assert.equal(conf.members.find((m) => m.id === 'UK/MUN/LEEDS')?.status, 'suspended');
  });

  test('refusals are typed, name the field, and leave no audit entry', async () => {
    const before = (await audit()).entries.length;
    const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, headers: auth, payload: payload as Record<string, unknown> });
    const cases: [string, unknown, number, string, string][] = [
      ['/manage/members', { id: 'UK/GOV/GRO', name: 'Again' }, 409, 'conflict', 'body.id'],
      ['/manage/members', { id: 'UK/GOV', name: 'x' }, 400, 'invalid_identifier', 'body.id'],
      ['/manage/members', { id: 'UK/GOV/X', name: 'x', extra: 1 }, 400, 'invalid_request', 'body'],
      ['/manage/subsystems', { id: 'UK/GOV/NOBODY/x' }, 404, 'not_found', 'body.id'],
      ['/manage/gateways', { id: 'UK/GOV/NOBODY/gw1', address: 'https://127.0.0.1:8602', ...gatewayKeys() }, 404, 'not_found', 'body.member'],
      ['/manage/gateways', { id: 'UK/MUN/LEEDS/gw1', address: 'https://127.0.0.1:8602', ...gatewayKeys() }, 409, 'conflict', 'body.member'],
      ['/manage/gateways', { id: 'UK/GOV/GRO/gw2', address: 'https://127.0.0.1:8602', ...gatewayKeys(), tlsPublicKey: 'nope' }, 422, 'invalid_value', 'body.tlsPublicKey'],
      [`/manage/members/${enc('UK/GOV/NOBODY')}/suspend`, {}, 404, 'not_found', 'params.id'],
      [`/manage/members/${enc('UK/GOV/../etc')}/suspend`, {}, 400, 'invalid_identifier', 'params.id'],
      [`/manage/gateways/${enc('UK/GOV/GRO/gw1/x')}/activate`, {}, 400, 'invalid_identifier', 'params.id'],
    ];
    for (const [url, payload, status, type, field] of cases) {
      const r = await post(url, payload);
      assert.equal(r.statusCode, status, `${url}: ${r.body}`);
      const e = r.json<ErrorJson>();
      assert.equal(e.type, type, url);
      assert.equal(e.detail.field, field, url);
    }
    assert.equal((await audit()).entries.length, before);
  });

  test('PUT /manage/agreements: a bad document is a 422 naming the field and changes nothing; a good one publishes', async () => {
    const before = (await audit()).entries.length;
    const serialBefore = (await verifyGlobalConfiguration((await app.inject({ method: 'GET', url: '/global-conf' })).body, init.anchor, new Date())).serial;
    const agreement = { id: 'synthetic-agreement', client: 'UK/MUN/LEEDS/parking', provider: 'UK/GOV/GRO/population', items: ['person.givenName'], purpose: { id: 'synthetic-purpose', description: 'Synthetic.' }, legalBasis: 'Synthetic basis', validFrom: '2026-01-01', validUntil: '2027-01-01' };
    const bad = await app.inject({ method: 'PUT', url: '/manage/agreements', headers: auth, payload: { agreements: [{ ...agreement, validUntil: '2026-02-30' }] } });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json<ErrorJson>().type, 'invalid_value');
    assert.equal(bad.json<ErrorJson>().detail.field, 'body.agreements[0].validUntil');
    const notObj = await app.inject({ method: 'PUT', url: '/manage/agreements', headers: auth, payload: [1] });
    assert.equal(notObj.statusCode, 422);
    assert.equal((await audit()).entries.length, before);
    const same = await verifyGlobalConfiguration((await app.inject({ method: 'GET', url: '/global-conf' })).body, init.anchor, new Date());
    assert.equal(same.serial, serialBefore);

    const good = await app.inject({ method: 'PUT', url: '/manage/agreements', headers: auth, payload: { agreements: [agreement] } });
    assert.equal(good.statusCode, 200, good.body);
    assert.deepEqual(good.json(), { version: 2, agreements: 1 });
    const conf = await verifyGlobalConfiguration((await app.inject({ method: 'GET', url: '/global-conf' })).body, init.anchor, new Date());
    assert.ok(conf.serial > serialBefore);
    assert.deepEqual(conf.agreements.map((a) => a.id), ['synthetic-agreement']);
    const log = await audit();
    assert.equal(log.entries.length, before + 1);
    assert.equal(log.entries.at(-1)!.action, 'agreements.publish');
  });

  test('trust model: a registration token makes a pending gateway, absent from the configuration, until the operator approves it with what it serves', async () => {
    const post = (url: string, payload: unknown, headers = auth) => app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });
    await post('/manage/members', { id: 'UK/GOV/HMRC', name: 'Synthetic Revenue' });
    for (const id of ['UK/GOV/HMRC/tax', 'UK/GOV/HMRC/customs']) await post('/manage/subsystems', { id });
    const token = await central.createRegistrationToken('UK/GOV/HMRC', 'onboarding');
    const scoped = { authorization: `Bearer ${token.token}` };
    // A subsystem of another member cannot be asked for, even with a full token.
    const foreign = await post('/manage/gateways', { id: 'UK/GOV/HMRC/gwx', address: 'https://127.0.0.1:8702', subsystems: ['UK/GOV/GRO/population'], ...gatewayKeys() });
    assert.equal(foreign.statusCode, 422, foreign.body);
    assert.equal(foreign.json<ErrorJson>().detail.field, 'body.subsystems[0]');
    const reg = await post('/manage/gateways', { id: 'UK/GOV/HMRC/gw1', address: 'https://127.0.0.1:8701', subsystems: ['UK/GOV/HMRC/tax'], ...gatewayKeys() }, scoped);
    assert.equal(reg.statusCode, 201, reg.body);
    assert.equal(reg.json<{ status: string }>().status, 'pending');
    const conf = () => app.inject({ method: 'GET', url: '/global-conf' }).then((r) => verifyGlobalConfiguration(r.body, init.anchor, new Date()));
    assert.equal((await conf()).gateways.find((g) => g.id === 'UK/GOV/HMRC/gw1'), undefined, 'a pending gateway is not in the configuration: nobody trusts or calls it');
    // The registering organisation cannot approve itself, nor activate its way around approval.
    assert.equal((await post(`/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/approve`, {}, scoped)).statusCode, 401, 'the token is used up');
    const other = await central.createRegistrationToken('UK/GOV/HMRC', 'another');
    assert.equal((await post(`/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/approve`, {}, { authorization: `Bearer ${other.token}` })).statusCode, 403);
    const activate = await post(`/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/activate`, {});
    assert.equal(activate.statusCode, 409, activate.body);
    const list = await app.inject({ method: 'GET', url: '/manage/gateways', headers: auth });
    const listed = list.json<{ gateways: { id: string; status: string; subsystems: unknown[] }[] }>().gateways.find((g) => g.id === 'UK/GOV/HMRC/gw1');
    assert.equal(listed?.status, 'pending');
    assert.deepEqual(listed?.subsystems, [{ id: 'UK/GOV/HMRC/tax', status: 'pending' }]);
    assert.equal((await post(`/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/approve`, {})).statusCode, 200);
    assert.equal((await post(`/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/approve`, {})).statusCode, 409, 'approved once');
    let gw = (await conf()).gateways.find((g) => g.id === 'UK/GOV/HMRC/gw1');
    assert.equal(gw?.status, 'active');
    assert.deepEqual(gw?.subsystems, ['UK/GOV/HMRC/tax']);
    // The operator assigns and takes away what it serves.
    assert.equal((await post(`/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/subsystems`, { subsystem: 'UK/GOV/HMRC/customs' })).statusCode, 200);
    assert.equal((await post(`/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/subsystems`, { subsystem: 'UK/GOV/GRO/population' })).statusCode, 422);
    assert.equal((await app.inject({ method: 'DELETE', url: `/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/subsystems/${enc('UK/GOV/HMRC/tax')}`, headers: auth })).statusCode, 200);
    assert.equal((await app.inject({ method: 'DELETE', url: `/manage/gateways/${enc('UK/GOV/HMRC/gw1')}/subsystems/${enc('UK/GOV/HMRC/tax')}`, headers: auth })).statusCode, 404);
    gw = (await conf()).gateways.find((g) => g.id === 'UK/GOV/HMRC/gw1');
    assert.deepEqual(gw?.subsystems, ['UK/GOV/HMRC/customs']);
    const actions = (await audit()).entries.filter((e) => e.target === 'UK/GOV/HMRC/gw1').map((e) => e.action);
    assert.deepEqual(actions, ['gateway.register', 'gateway.approve', 'gateway.assign', 'gateway.unassign']);
  });

  test('the OpenAPI description lists the public and management routes', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    for (const p of ['/global-conf', '/manage/members', '/manage/gateways', '/manage/agreements', '/manage/audit', '/manage/gateways/{id}/suspend']) assert.ok(p in doc.paths, p);
  });
});
