/**
 * Consent and explicit request with preview, enforced by the provider gateway over the real
 * exchange: consent given -> released, withdrawn -> refused at the very next request, expired ->
 * refused; preview approve -> one release, decline -> refused, replayed approval -> refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { IDS, TEST_AGREEMENTS, startExchange, type Exchange } from '../../test/support/exchange.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConsentStore, consentLogRecord } from '../consent/consent.ts';
import { loadPrivateKey } from '../core/crypto.ts';
import { TransparencyLog } from '../transparency/log.ts';
import { transparencyLogId } from './node.ts';
import { issuePersonCredential } from '../consent/credentials.ts';

let ex: Exchange;
let consents: ConsentStore;
const CONSENT = { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'community-alerts' };
const PREVIEW = { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'blue-badge' };
/** onceonly's reason for a refusal (X-Road's type is AccessDenied for all of these). */
const typeOf = (body: string): { type: string; detail: Record<string, unknown> } => (JSON.parse(body) as { onceonly: { type: string; detail: Record<string, unknown> } }).onceonly;
const credentials: Record<string, string> = {};

describe('consent and preview at the provider gateway', () => {
  before(async () => {
    ex = await startExchange();
    await ex.central.publishAgreements({
      agreements: [
        ...TEST_AGREEMENTS.agreements,
        { id: 'leeds-alerts', client: IDS.parking, provider: IDS.population, items: ['person.givenName'], purpose: { id: 'community-alerts', description: 'Send alerts the person signed up for.' }, legalBasis: 'UK GDPR Art. 6(1)(a) consent (synthetic)', validFrom: '2020-01-01', validUntil: '2099-12-31', consentRequired: true },
        { id: 'leeds-blue-badge', client: IDS.parking, provider: IDS.population, items: ['person.birthDate'], purpose: { id: 'blue-badge', description: 'Check age for a blue badge.' }, legalBasis: 'UK GDPR Art. 6(1)(e) (synthetic)', validFrom: '2020-01-01', validUntil: '2099-12-31', previewRequired: true },
      ],
    });
    // Each person gets a credential at the register's gateway: they, not the agency, decide on a preview.
    credentials[ex.people.alice] = issuePersonCredential(ex.dirs.gro, ex.people.alice);
    credentials[ex.people.bob] = issuePersonCredential(ex.dirs.gro, ex.people.bob);
    await ex.restartGateway('gro');
    await ex.leeds.conf.fetch();
    // The operator's view of the store the provider gateway decides on, logging consent events to
    // the gateway's transparency log as `onceonly consent` does.
    const tlog = new TransparencyLog({ db: ex.gro.store.db, dialect: ex.gro.store.dialect, logId: transparencyLogId(IDS.groGw), signingKey: loadPrivateKey(readFileSync(join(ex.dirs.gro, 'signing.key.pem'), 'utf8')) });
    consents = new ConsentStore({ db: ex.gro.store.db, agreements: (id) => ex.gro.conf.held()?.agreements.find((a) => a.id === id), now: ex.now, onEvent: async (event, tx) => void (await tlog.appendIn(tx, [consentLogRecord(event, IDS.groGw)])) });
  });
  after(async () => {
    await ex.stop();
  });

  const alerts = (person: string): Promise<{ status: number; body: string }> => ex.call(`/r1/${IDS.population}/people/${person}?items=person.givenName`, CONSENT);
  const badge = (person: string): Promise<{ status: number; body: string }> => ex.call(`/r1/${IDS.population}/people/${person}?items=person.birthDate`, PREVIEW);

  test('consent given -> released; withdrawn -> refused at the very next request', async () => {
    const before_ = await alerts(ex.people.alice);
    assert.equal(before_.status, 500);
    assert.equal(typeOf(before_.body).type, 'consent_required');
    const c = await consents.give({ person: ex.people.alice, agreement: 'leeds-alerts', expiresAt: new Date(ex.now().getTime() + 86_400_000).toISOString() });
    const given = await alerts(ex.people.alice);
    assert.equal(given.status, 200, given.body);
    // Another person's consent covers nobody else.
    assert.equal((await alerts(ex.people.bob)).status, 500);
    await consents.withdraw(c.id);
    const withdrawn = await alerts(ex.people.alice);
    assert.equal(withdrawn.status, 500);
    assert.equal(typeOf(withdrawn.body).type, 'consent_required');
    // The consent events are in the gateway's transparency log, as digests: the log names neither
    // the person nor the items, and the person's record gives back exactly what was committed to.
    const entries = (await ex.gro.store.db.selectFrom('transparency_entry').select('entry').execute()).map((e) => e.entry);
    assert.ok(!entries.some((e) => e.includes(ex.people.alice) || e.includes('person.givenName')), 'no person id or item in the log');
    for (const event of await consents.events(c.id)) {
      const { digest } = consentLogRecord(event, IDS.groGw);
      assert.ok(entries.some((e) => e.includes(`"digest":"${digest}"`) && e.includes('"kind":"consent"')), `event ${event.seq} (${event.to}) is in the log`);
    }
  });

  test('an expired consent releases nothing', async () => {
    await consents.give({ person: ex.people.bob, agreement: 'leeds-alerts', expiresAt: new Date(ex.now().getTime() + 60_000).toISOString() });
    assert.equal((await alerts(ex.people.bob)).status, 200);
    ex.advance(120_000);
    try {
      const expired = await alerts(ex.people.bob);
      assert.equal(expired.status, 500);
      assert.equal(typeOf(expired.body).type, 'consent_required');
    } finally {
      ex.advance(-120_000);
    }
  });

  test('preview: the first request opens a preview; approval releases exactly one retry; a replayed approval is refused', async () => {
    const first = await badge(ex.people.alice);
    assert.equal(first.status, 500);
    const err = typeOf(first.body);
    assert.equal(err.type, 'preview_required');
    const url = String(err.detail['previewUrl']);
    assert.match(url, /\/preview\//);
    // The link shows nothing until the person confirms it is them; then the value, and the decision.
    const bare = await request(url);
    assert.doesNotMatch(await bare.body.text(), /1990-04-12/);
    const signIn = await request(`${url}/sign-in`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `code=${encodeURIComponent(credentials[ex.people.alice]!)}` });
    await signIn.body.text();
    assert.equal(signIn.statusCode, 303);
    const cookie = String(signIn.headers['set-cookie']).split(';')[0]!;
    const page = await request(url, { headers: { cookie } });
    const html = await page.body.text();
    assert.equal(page.statusCode, 200);
    assert.match(html, /1990-04-12/, 'the person sees the value that would be released');
    assert.doesNotMatch(html, /<script/i);
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
    const approve = await request(`${url}/approve`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${encodeURIComponent(csrf)}` });
    await approve.body.text();
    assert.equal(approve.statusCode, 200);
    const retry = await badge(ex.people.alice);
    assert.equal(retry.status, 200, retry.body);
    assert.match(retry.body, /1990-04-12/);
    const again = await badge(ex.people.alice);
    assert.equal(again.status, 500, 'single use');
    assert.equal(typeOf(again.body).type, 'preview_required');
    const replay = await request(`${url}/approve`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${encodeURIComponent(csrf)}` });
    await replay.body.text();
    assert.ok(replay.statusCode >= 400, `replayed approval answered ${replay.statusCode}`);
    assert.equal((await badge(ex.people.alice)).status, 500, 'the replayed approval released nothing');
  });

  test('preview declined -> refused with its own type', async () => {
    const first = await badge(ex.people.bob);
    const url = String(typeOf(first.body).detail['previewUrl']);
    const decline = await request(`${url}/decline`, { method: 'POST', headers: { authorization: `Bearer ${credentials[ex.people.bob]!}` } });
    const declined = await decline.body.text();
    assert.equal(decline.statusCode, 200, declined);
    const retry = await badge(ex.people.bob);
    assert.equal(retry.status, 500);
    assert.equal(typeOf(retry.body).type, 'preview_declined');
  });
});
