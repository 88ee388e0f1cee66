/**
 * @module consent/routes.test
 * The consent API end to end through Fastify (`app.inject`), on both engines: a person gives,
 * lists, reads, withdraws and refuses their consents and gets a receipt that verifies; every bad
 * input is refused with its typed error and status; a missing or wrong credential is 401, another
 * person's records are 403 (by person id) or 404 (by record id).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateSigningKey } from '../core/crypto.ts';
import { createApp, type App } from '../core/http.ts';
import { eachEngine } from '../../test/support/stores.ts';
import { ConsentStore, verifyReceipt } from './consent.ts';
import { consentRoutes } from './routes.ts';
import { AGREEMENTS, ALICE, BLUE_BADGE, BOB, DWP_CARE, HOUR, PUBLIC_TASK, TestClock } from './test-helpers.ts';

const KEY = generateSigningKey();
const ALICE_TOKEN = 'alice-credential-0123456789';
const BOB_TOKEN = 'bob-credential-9876543210';

interface ConsentJson {
  id: string;
  person: string;
  state: string;
  dpvState: string;
  inForce: boolean;
  items: string[];
  expiresAt: string | null;
  history: { from: string | null; to: string }[];
}

eachEngine('consent API', (getStore) => {
  const clock = new TestClock();
  let app: App;
  let consents: ConsentStore;

  before(async () => {
    consents = new ConsentStore({ db: getStore().db, agreements: (id) => AGREEMENTS.get(id), now: clock.now });
    app = await createApp({ title: 'consent test' });
    await app.register(consentRoutes, { consents, credentials: [{ token: ALICE_TOKEN, person: ALICE }, { token: BOB_TOKEN, person: BOB }], receiptKey: KEY.privateKey, issuer: 'UK/GOV/DWP/gw1' });
    await app.ready();
  });
  after(() => app.close());

  // null: no credential at all (undefined would take the default).
  const as = (token: string | null) => (token === null ? {} : { authorization: `Bearer ${token}` });
  const call = (method: 'GET' | 'POST', url: string, token: string | null = ALICE_TOKEN, payload?: unknown) =>
    app.inject({ method, url, headers: as(token), ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
  const expectError = (res: { statusCode: number; json: <T>() => T }, status: number, type: string, field?: string): void => {
    const body = res.json<{ type: string; detail: { field?: string } }>();
    assert.equal(res.statusCode, status, JSON.stringify(body));
    assert.equal(body.type, type);
    if (field !== undefined) assert.equal(body.detail.field, field);
  };

  test('give, list, read, withdraw: the person\'s whole journey, and a receipt that verifies', async () => {
    let res = await call('POST', '/consents', ALICE_TOKEN, { person: ALICE, agreement: BLUE_BADGE.id, items: ['person.disabilityStatus'], expiresAt: clock.in(24 * HOUR) });
    assert.equal(res.statusCode, 201, res.body);
    const given = res.json<ConsentJson>();
    assert.equal(given.state, 'given');
    assert.equal(given.dpvState, 'dpv:ConsentGiven');
    assert.equal(given.inForce, true);
    assert.deepEqual(given.items, ['person.disabilityStatus']);

    res = await call('GET', `/consents?person=${ALICE}`);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json<ConsentJson[]>().map((c) => c.id), [given.id]);

    res = await call('GET', `/consents/${given.id}`);
    assert.equal(res.json<ConsentJson>().id, given.id);

    res = await call('GET', `/consents/${given.id}/receipt`);
    assert.equal(res.statusCode, 200);
    const signed = res.json<{ jws: string; receipt: { consentId: string; state: string; issuer: string }; publicKey: { kty: 'OKP'; crv: 'Ed25519'; x: string } }>();
    assert.equal(signed.receipt.consentId, given.id);
    assert.equal(signed.receipt.issuer, 'UK/GOV/DWP/gw1');
    const v = await verifyReceipt(signed.jws, KEY.publicKey);
    assert.ok(v.ok);
    assert.deepEqual(v.receipt, signed.receipt, 'the JSON is exactly what is signed');

    res = await call('POST', `/consents/${given.id}/withdraw`);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json<ConsentJson>().state, 'withdrawn');
    assert.equal(res.json<ConsentJson>().inForce, false);
    assert.equal(await consents.inForce({ person: ALICE, controller: BLUE_BADGE.client, purpose: BLUE_BADGE.purpose.id, agreement: BLUE_BADGE.id, items: ['person.disabilityStatus'] }), null);

    expectError(await call('POST', `/consents/${given.id}/withdraw`), 409, 'invalid_consent_transition', 'state');
  });

  test('a consent requested, then given through /give; another requested, then refused', async () => {
    let res = await call('POST', '/consents', ALICE_TOKEN, { person: ALICE, agreement: DWP_CARE.id, state: 'requested' });
    assert.equal(res.statusCode, 201, res.body);
    const asked = res.json<ConsentJson>();
    assert.equal(asked.state, 'requested');
    assert.equal(asked.inForce, false);
    res = await call('POST', `/consents/${asked.id}/give`, ALICE_TOKEN, { expiresAt: clock.in(HOUR) });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json<ConsentJson>().history.map((h) => h.to), ['requested', 'given']);
    expectError(await call('POST', `/consents/${asked.id}/refuse`), 409, 'invalid_consent_transition');

    res = await call('POST', '/consents', ALICE_TOKEN, { person: ALICE, agreement: BLUE_BADGE.id, state: 'requested' });
    const asked2 = res.json<ConsentJson>();
    res = await call('POST', `/consents/${asked2.id}/refuse`);
    assert.equal(res.json<ConsentJson>().state, 'refused');
    assert.equal(res.json<ConsentJson>().dpvState, 'dpv:ConsentRefused');
  });

  test('credentials: none or a wrong one is 401; another person\'s records are 403 by person, 404 by id', async () => {
    expectError(await call('GET', `/consents?person=${ALICE}`, null), 401, 'unauthorized', 'headers.authorization');
    expectError(await call('GET', `/consents?person=${ALICE}`, 'guess'), 401, 'unauthorized');
    expectError(await app.inject({ method: 'GET', url: `/consents?person=${ALICE}`, headers: { authorization: `Basic ${ALICE_TOKEN}` } }), 401, 'unauthorized');
    expectError(await call('POST', '/consents', null, { person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) }), 401, 'unauthorized');

    expectError(await call('GET', `/consents?person=${ALICE}`, BOB_TOKEN), 403, 'forbidden', 'query.person');
    expectError(await call('POST', '/consents', BOB_TOKEN, { person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) }), 403, 'forbidden', 'body.person');

    const mine = (await call('POST', '/consents', ALICE_TOKEN, { person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) })).json<ConsentJson>();
    for (const [method, url] of [['GET', `/consents/${mine.id}`], ['GET', `/consents/${mine.id}/receipt`], ['POST', `/consents/${mine.id}/withdraw`], ['POST', `/consents/${mine.id}/refuse`]] as const) {
      expectError(await call(method, url, BOB_TOKEN), 404, 'consent_not_found');
      expectError(await call(method, url, null), 401, 'unauthorized');
    }
    expectError(await call('POST', `/consents/${mine.id}/give`, BOB_TOKEN, { expiresAt: clock.in(HOUR) }), 404, 'consent_not_found');
    assert.equal((await consents.get(mine.id)).state, 'given', 'untouched by Bob');
    assert.deepEqual((await call('GET', `/consents?person=${BOB}`, BOB_TOKEN)).json<ConsentJson[]>(), []);
  });

  test('bad input: a typed error and status for each', async () => {
    const ok = { person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) };
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, expiresAt: undefined }), 422, 'invalid_expiry', 'body.expiresAt');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, expiresAt: clock.in(-HOUR) }), 422, 'invalid_expiry', 'expiresAt');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, expiresAt: '2031-01-01T00:00:00Z' }), 422, 'invalid_expiry', 'expiresAt');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, expiresAt: 'soon' }), 400, 'invalid_date', 'expiresAt');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, state: 'requested' }), 400, 'invalid_request', 'body.expiresAt');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, state: 'withdrawn' }), 400, 'invalid_request');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, items: ['person.birthDate'] }), 422, 'item_not_in_agreement', 'items');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, items: [] }), 400, 'invalid_request', 'body.items');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, agreement: 'nope' }), 400, 'unknown_agreement', 'agreement');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, agreement: PUBLIC_TASK.id }), 422, 'consent_not_applicable', 'agreement');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, person: 'P-123' }), 400, 'invalid_identifier', 'body.person');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { ...ok, extra: 1 }), 400, 'invalid_request');
    expectError(await call('POST', '/consents', ALICE_TOKEN, { agreement: BLUE_BADGE.id }), 400, 'invalid_request', 'body.person');
    expectError(await app.inject({ method: 'POST', url: '/consents', headers: { ...as(ALICE_TOKEN), 'content-type': 'application/json' }, payload: '{"person":' }), 400, 'invalid_request', 'body');
    expectError(await call('GET', '/consents'), 400, 'invalid_request', 'querystring.person');
    expectError(await call('GET', '/consents?person=alice'), 400, 'invalid_identifier', 'query.person');
    expectError(await call('GET', '/consents/00000000-0000-0000-0000-000000000000'), 404, 'consent_not_found');
    expectError(await call('GET', `/consents/${'x'.repeat(65)}`), 400, 'invalid_request');
    expectError(await call('POST', '/consents/nope/give', ALICE_TOKEN, {}), 400, 'invalid_request', 'body.expiresAt');
  });

  test('the API is described in OpenAPI', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    for (const p of ['/consents', '/consents/{id}', '/consents/{id}/withdraw', '/consents/{id}/refuse', '/consents/{id}/give', '/consents/{id}/receipt']) assert.ok(doc.paths[p], p);
  });
});
