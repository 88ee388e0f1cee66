/**
 * The citizen portal over the real demo (issue 13): a synthetic person signs in at the demo
 * identity provider (password and one-time code) through OpenID Connect, is matched to the
 * population register through the exchange, and sees their own data read through the portal's
 * gateway. Then what a hostile browser would try: a replayed callback, a wrong state, a callback
 * with no sign-in started here, a tampered session cookie, a form without its CSRF token or with
 * another session's, a session id kept across sign-in, a signed-out session used again, and a
 * wrong password. Each is refused with a page that shows nobody's data.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import SQLite from 'better-sqlite3';
import { populate } from '../registry/populate.ts';
import { startDemo, type RunningDemo } from '../demo/demo.ts';
import { Browser, signIn as signInAt, toCallback as toCallbackAt } from '../../test/support/portal.ts';
import type { TestAccount } from '../demo/portal.ts';

const dir = mkdtempSync(join(tmpdir(), 'onceonly-portal-'));
let demo: RunningDemo;

before(async () => {
  demo = await startDemo({ dataDir: dir, basePort: 0, people: 300, generate: (store, people) => populate(store, { people, seed: 1 }) });
});
after(async () => {
  await demo?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const toCallback = (b: Browser, account?: TestAccount, code?: string): ReturnType<typeof toCallbackAt> => toCallbackAt(demo.portal, b, account, code);
const signIn = (b: Browser): Promise<void> => signInAt(demo.portal, b);

const csrfOf = (html: string): string => /name="_csrf" value="([^"]+)"/.exec(html)![1]!;

/** The signed-in person's register id, which no page shows: from the proof bundle of their own first record. */
async function registerIdOf(b: Browser): Promise<string> {
  await b.get(`${demo.portal.url}/your-data`);
  const list = await b.get(`${demo.portal.url}/who-used-your-data`);
  const key = decodeURIComponent(/proof\/([^"]+)"/.exec(list.body)![1]!);
  return (JSON.parse((await b.get(`${demo.portal.url}/who-used-your-data/proof/${encodeURIComponent(key)}`)).body) as { record: { person: string } }).record.person;
}

describe('citizen portal', () => {
  test('a person signs in with a password and a one-time code and sees what the registers hold about them', async () => {
    const b = new Browser();
    await signIn(b);
    const page = await b.get(`${demo.portal.url}/your-data`);
    assert.equal(page.status, 200);
    assert.match(page.body, new RegExp(`This is what the public registers hold about you, ${demo.portal.accounts[0]!.name}`));
    assert.match(page.body, /General Register Office \(population register\)/);
    assert.match(page.body, /GeoPlace \(address register\)/);
    assert.match(page.body, /Companies House \(business register\)/);
    assert.match(page.body, /Director|Company secretary|not an officer of any company/);
    assert.match(page.body, /Date of birth/);
    // Security headers: a CSP with no inline script but the Design System's own, pinned by hash.
    const head = await request(`${demo.portal.url}/`);
    const csp = String(head.headers['content-security-policy']);
    await head.body.text();
    assert.match(csp, /script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.equal(head.headers['x-frame-options'], 'SAMEORIGIN');
    // The match decision is recorded and shown to the person.
    const how = await b.get(`${demo.portal.url}/how-we-found-you`);
    assert.equal(how.status, 200);
    assert.match(how.body, /matched/);
    assert.match(how.body, /Match score: (9\d|100)/);
  });

  test('who has used your data: the portal\'s own reads, then a council\'s, each verified, with a proof bundle; nothing of anyone else', async () => {
    const b = new Browser();
    await signIn(b);
    await b.get(`${demo.portal.url}/your-data`);
    const page = await b.get(`${demo.portal.url}/who-used-your-data`);
    assert.equal(page.status, 200, page.body.slice(0, 300));
    assert.match(page.body, /Government Digital Service citizen portal/);
    assert.match(page.body, /Read Given name, Family name/);
    assert.match(page.body, /Verified/);
    assert.doesNotMatch(page.body, /Not verified/);
    assert.doesNotMatch(page.body, /did not answer/);
    assert.match(page.body, /Show a signed-in person what the population register holds about them/);
    const key = decodeURIComponent(/proof\/([^"]+)"/.exec(page.body)![1]!);
    const proof = await b.get(`${demo.portal.url}/who-used-your-data/proof/${encodeURIComponent(key)}`);
    assert.equal(proof.status, 200);
    const bundle = JSON.parse(proof.body) as { verified: boolean; record: { person: string; client: string }; proof: unknown };
    assert.equal(bundle.verified, true);
    assert.ok(bundle.proof);
    const person = bundle.record.person;
    // A council reads the person's name through its own gateway: the use appears, by name.
    const leeds = demo.endpoints.find((e) => e.name === 'gateway-leeds')!.url;
    const read = await request(`${leeds}/r1/UK/GOV/GRO/population/people/${person}?items=person.givenName,person.familyName,person.address`, { headers: { accept: 'application/json', 'x-road-client': 'UK/MUN/LEEDS/parking', 'x-onceonly-purpose': 'resident-parking-permit' } });
    assert.equal(read.statusCode, 200, await read.body.text());
    const after = await b.get(`${demo.portal.url}/who-used-your-data?org=UK%2FMUN%2FLEEDS`);
    assert.equal(after.status, 200);
    assert.match(after.body, /Leeds City Council/);
    assert.match(after.body, /1 record, newest first/);
    // Hostile addresses: another key, a bad page, an organisation not in the records, an extra parameter.
    assert.equal((await b.get(`${demo.portal.url}/who-used-your-data/proof/${encodeURIComponent('UK/GOV/GRO/gw1~999999~0')}`)).status, 404);
    assert.equal((await b.get(`${demo.portal.url}/who-used-your-data?page=0`)).status, 400);
    assert.equal((await b.get(`${demo.portal.url}/who-used-your-data?page=abc`)).status, 400);
    assert.equal((await b.get(`${demo.portal.url}/who-used-your-data?page=99`)).status, 404);
    assert.equal((await b.get(`${demo.portal.url}/who-used-your-data?org=UK%2FGOV%2FHMRC`)).status, 400);
    assert.equal((await b.get(`${demo.portal.url}/who-used-your-data?person=${person}`)).status, 400);
    // Signed out, none of it opens.
    assert.equal((await new Browser().get(`${demo.portal.url}/who-used-your-data`)).status, 401);
    assert.equal((await new Browser().get(`${demo.portal.url}/who-used-your-data/proof/${encodeURIComponent(key)}`)).status, 401);
  });

  test('report a move once: the register records it, and the council that serves the person is told', async () => {
    const b = new Browser();
    await signIn(b);
    // Who the person is at the register, from their own proof bundle (the portal never shows ids).
    const person = await registerIdOf(b);
    // The council serves this person: it puts them on its subscription's interest list.
    const leeds = demo.endpoints.find((e) => e.name === 'gateway-leeds')!.url;
    const sub = demo.tellUsOnce.receivers.find((r) => r.subsystem === 'UK/MUN/LEEDS/parking')!.subscription;
    const put = await request(`${leeds}/r1/UK/GOV/GRO/population/subscriptions/${sub}/interests/${person}`, { method: 'PUT', headers: { accept: 'application/json', 'x-road-client': 'UK/MUN/LEEDS/parking', 'x-onceonly-purpose': 'change-notification' } });
    assert.ok(put.statusCode < 300, await put.body.text());
    // A postcode from the address register, in the way a person might type it.
    const db = new SQLite(join(dir, 'onceonly.sqlite'), { readonly: true });
    const postcode = JSON.parse((db.prepare("SELECT value FROM fact WHERE item = 'address.postcode' AND superseded_at IS NULL ORDER BY subject LIMIT 1 OFFSET 7").get() as { value: string }).value) as string;
    db.close();
    const typed = postcode.replace(' ', '').toLowerCase();
    const choose = await b.get(`${demo.portal.url}/report-a-change/address?postcode=${encodeURIComponent(typed)}`);
    assert.equal(choose.status, 200, choose.body.slice(0, 300));
    assert.match(choose.body, new RegExp(`Addresses at ${postcode}`));
    const addressId = /name="addressId" type="radio" value="([^"]+)"/.exec(choose.body)![1]!;
    const csrf = csrfOf(choose.body);
    const url = `${demo.portal.url}/report-a-change/address`;
    // Bad answers: the Design System's error summary, nothing recorded.
    const future = new Date(Date.now() + 86_400_000 * 3);
    const cases: [Record<string, string>, RegExp][] = [
      [{ _csrf: csrf, postcode, addressId }, /Enter the date of the change/],
      [{ _csrf: csrf, postcode, addressId, day: '31', month: '2', year: '2025' }, /must be a real date/],
      [{ _csrf: csrf, postcode, addressId, day: String(future.getUTCDate()), month: String(future.getUTCMonth() + 1), year: String(future.getUTCFullYear()) }, /today or in the past/],
      [{ _csrf: csrf, postcode, addressId: 'A-000000001-0', day: '1', month: '1', year: '2025' }, /Select your new address/],
      [{ _csrf: csrf, postcode, addressId, day: '1', month: '1', year: '1850' }, /born|lifetime|before/],
    ];
    for (const [form, why] of cases) {
      const r = await b.post(url, form);
      assert.equal(r.status, 400, `${JSON.stringify(form)}: ${r.status}`);
      assert.match(r.body, /govuk-error-summary/);
      assert.match(r.body, why, JSON.stringify(form));
    }
    // Each message on its own field only: a missing date does not mark the address.
    const dateOnly = await b.post(url, { _csrf: csrf, postcode, addressId });
    assert.doesNotMatch(dateOnly.body, /Select your new address/);
    assert.equal((await b.post(url, { postcode, addressId, day: '1', month: '1', year: '2025' })).status, 403);
    assert.equal((await b.get(`${demo.portal.url}/report-a-change/address?postcode=NOTAPOSTCODE`)).status, 400);
    // The move, once.
    const today = new Date();
    const doneRes = await b.post(url, { _csrf: csrf, postcode, addressId, day: String(today.getUTCDate()), month: String(today.getUTCMonth() + 1), year: String(today.getUTCFullYear()) });
    assert.equal(doneRes.status, 200, doneRes.body.slice(0, 500));
    assert.match(doneRes.body, /Change reported/);
    assert.match(doneRes.body, /Leeds City Council/);
    // The register holds the new address: Your data shows it.
    const data = await b.get(`${demo.portal.url}/your-data`);
    assert.match(data.body, new RegExp(postcode));
  });

  test('report a change of name: recorded at the register, shown in Your data; bad input gets field errors', async () => {
    const b = new Browser();
    await signIn(b);
    const form = await b.get(`${demo.portal.url}/report-a-change/name`);
    assert.equal(form.status, 200);
    const csrf = csrfOf(form.body);
    const url = `${demo.portal.url}/report-a-change/name`;
    const none = await b.post(url, { _csrf: csrf, day: '1', month: '1', year: '2025' });
    assert.equal(none.status, 400);
    assert.match(none.body, /Enter your new given name, family name or both/);
    const long = await b.post(url, { _csrf: csrf, familyName: 'x'.repeat(101), day: '1', month: '1', year: '2025' });
    assert.equal(long.status, 400);
    assert.match(long.body, /Family name must be 100 characters or fewer/);
    const today = new Date();
    const ok = await b.post(url, { _csrf: csrf, familyName: 'Featherstonehaugh', day: String(today.getUTCDate()), month: String(today.getUTCMonth() + 1), year: String(today.getUTCFullYear()) });
    assert.equal(ok.status, 200, ok.body.slice(0, 400));
    assert.match(ok.body, /Change reported/);
    assert.match((await b.get(`${demo.portal.url}/your-data`)).body, /Featherstonehaugh/);
  });

  test('your permissions: give one, the council may then read; withdraw it, the next read is refused; nobody else\'s can be touched', async () => {
    const b = new Browser();
    await signIn(b);
    const person = await registerIdOf(b);
    const leeds = demo.endpoints.find((e) => e.name === 'gateway-leeds')!.url;
    const gds = demo.endpoints.find((e) => e.name === 'gateway-gds')!.url;
    const councilRead = async (): Promise<{ status: number; type: string }> => {
      const r = await request(`${leeds}/r1/UK/GOV/GRO/population/people/${person}?items=person.birthDate`, { headers: { accept: 'application/json', 'x-road-client': 'UK/MUN/LEEDS/parking', 'x-onceonly-purpose': 'senior-concession' } });
      const j = (await r.body.json()) as { onceonly?: { type?: string } };
      return { status: r.statusCode, type: j.onceonly?.type ?? '' };
    };
    assert.deepEqual(await councilRead(), { status: 500, type: 'consent_required' }); // X-Road: a provider's refusal reaches the client as 500 with its type
    const page = await b.get(`${demo.portal.url}/permissions`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Permissions you can give/);
    assert.match(page.body, /reduced permit fee/);
    const csrf = csrfOf(page.body);
    // Only an agreement that asks for consent, of this register: another is refused.
    assert.equal((await b.post(`${demo.portal.url}/permissions/give`, { _csrf: csrf, agreement: 'leeds-parking-population' })).status, 400);
    assert.equal((await b.post(`${demo.portal.url}/permissions/give`, { agreement: 'leeds-parking-senior-concession' })).status, 403);
    const given = await b.post(`${demo.portal.url}/permissions/give`, { _csrf: csrf, agreement: 'leeds-parking-senior-concession' });
    assert.equal(given.status, 303, given.body.slice(0, 300));
    const after = await b.get(`${demo.portal.url}/permissions`);
    assert.match(after.body, /Given/);
    assert.doesNotMatch(after.body, /Permissions you can give/);
    const id = /action="\/permissions\/([^/]+)\/withdraw"/.exec(after.body)![1]!;
    assert.equal((await councilRead()).status, 200);
    const receipt = await b.get(`${demo.portal.url}/permissions/${id}/receipt`);
    assert.equal(receipt.status, 200);
    assert.ok((JSON.parse(receipt.body) as { jws: string }).jws.split('.').length === 3);
    // Someone else cannot withdraw it, see its receipt, or list it.
    const other = new Browser();
    await signInAt(demo.portal, other, demo.portal.accounts[2]);
    const otherCsrf = csrfOf((await other.get(`${demo.portal.url}/permissions`)).body);
    assert.equal((await other.post(`${demo.portal.url}/permissions/${id}/withdraw`, { _csrf: otherCsrf })).status, 404);
    assert.equal((await other.get(`${demo.portal.url}/permissions/${id}/receipt`)).status, 404);
    assert.doesNotMatch((await other.get(`${demo.portal.url}/permissions`)).body, new RegExp(id));
    assert.equal((await councilRead()).status, 200);
    // Withdrawn: the next read is refused.
    assert.equal((await b.post(`${demo.portal.url}/permissions/${id}/withdraw`, { _csrf: csrf })).status, 303);
    assert.deepEqual(await councilRead(), { status: 500, type: 'consent_required' }); // X-Road: a provider's refusal reaches the client as 500 with its type
    assert.match((await b.get(`${demo.portal.url}/permissions`)).body, /Withdrawn/);
    // At the exchange: only the portal may speak for a person, and only with a person's id.
    const call = async (gw: string, client: string, userId?: string): Promise<{ status: number; type: string }> => {
      const r = await request(`${gw}/r1/UK/GOV/GRO/population/person-consents`, { headers: { accept: 'application/json', 'x-road-client': client, 'x-onceonly-purpose': 'citizen-consent-management', ...(userId !== undefined ? { 'x-road-userid': userId } : {}) } });
      const j = (await r.body.json()) as { onceonly?: { type?: string } };
      return { status: r.statusCode, type: j.onceonly?.type ?? '' };
    };
    assert.equal((await call(leeds, 'UK/MUN/LEEDS/parking', person)).type, 'no_agreement');
    assert.match((await call(gds, 'UK/GOV/GDS/citizen-portal')).type, /^invalid_/);
    assert.match((await call(gds, 'UK/GOV/GDS/citizen-portal', 'P-123')).type, /^invalid_/);
    assert.equal((await call(gds, 'UK/GOV/GDS/citizen-portal', person)).status, 200);
  });

  test('requests waiting for you: the benefits agency asks, the person sees the values and approves, then declines the next', async () => {
    const b = new Browser();
    await signIn(b);
    const person = await registerIdOf(b);
    const dwp = demo.endpoints.find((e) => e.name === 'gateway-dwp')!.url;
    const ask = async (): Promise<{ status: number; type: string }> => {
      const r = await request(`${dwp}/r1/UK/GOV/GRO/population/people/${person}?items=person.previousAddresses,person.nationality`, { headers: { accept: 'application/json', 'x-road-client': 'UK/GOV/DWP/benefits', 'x-onceonly-purpose': 'habitual-residence-test' } });
      const j = (await r.body.json()) as { onceonly?: { type?: string } };
      return { status: r.statusCode, type: j.onceonly?.type ?? '' };
    };
    assert.equal((await ask()).type, 'preview_required');
    const page = await b.get(`${demo.portal.url}/requests`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Department for Work and Pensions/);
    assert.match(page.body, /habitually resident/);
    assert.match(page.body, /Nationality/);
    const id = /action="\/requests\/([^/]+)\/approve"/.exec(page.body)![1]!;
    const csrf = csrfOf(page.body);
    // Another person cannot answer it; a made-up id is not found; no CSRF token, no answer.
    const other = new Browser();
    await signInAt(demo.portal, other, demo.portal.accounts[2]);
    const otherPage = await other.get(`${demo.portal.url}/requests`);
    assert.doesNotMatch(otherPage.body, new RegExp(id));
    assert.equal((await other.post(`${demo.portal.url}/requests/${id}/approve`, { _csrf: csrfOf(otherPage.body) })).status, 404);
    assert.equal((await b.post(`${demo.portal.url}/requests/${'x'.repeat(22)}/approve`, { _csrf: csrf })).status, 404);
    assert.equal((await b.post(`${demo.portal.url}/requests/${id}/approve`, {})).status, 403);
    const approved = await b.post(`${demo.portal.url}/requests/${id}/approve`, { _csrf: csrf });
    assert.equal(approved.status, 200, approved.body.slice(0, 300));
    assert.match(approved.body, /You approved the request/);
    assert.equal((await b.post(`${demo.portal.url}/requests/${id}/decline`, { _csrf: csrf })).status, 409);
    assert.equal((await ask()).status, 200);
    // Asked again: a new request; declined, the retry is refused.
    assert.equal((await ask()).type, 'preview_required');
    const again = await b.get(`${demo.portal.url}/requests`);
    const id2 = /action="\/requests\/([^/]+)\/decline"/.exec(again.body)![1]!;
    assert.notEqual(id2, id);
    assert.match((await b.post(`${demo.portal.url}/requests/${id2}/decline`, { _csrf: csrfOf(again.body) })).body, /You declined the request/);
    assert.equal((await ask()).type, 'preview_declined');
    assert.match((await b.get(`${demo.portal.url}/requests`)).body, /No requests are waiting for you/);
  });

  test('a replayed callback, a wrong state and a callback that did not start here are refused, showing nobody\'s data', async () => {
    const b = new Browser();
    const { callback } = await toCallback(b);
    const login = b.jar.get('portal_login')!;
    // Wrong state first: the sign-in under way is used up by the attempt.
    const wrong = new URL(callback);
    wrong.searchParams.set('state', 'not-the-state');
    const w = await b.get(wrong.href);
    assert.equal(w.status, 400);
    assert.match(w.body, /problem signing you in/);
    assert.doesNotMatch(w.body, /hold about you/);
    // The right callback with the (now used) sign-in cookie: refused too.
    b.jar.set('portal_login', login);
    const again = await b.get(callback);
    assert.equal(again.status, 400);
    // A fresh sign-in, then its callback replayed after it succeeded.
    const c = new Browser();
    const second = await toCallback(c);
    const saved = c.jar.get('portal_login')!;
    assert.equal((await c.get(second.callback)).status, 303);
    c.jar.set('portal_login', saved);
    assert.equal((await c.get(second.callback)).status, 400);
    // Someone else's callback URL in a browser that started no sign-in.
    const other = new Browser();
    const r = await other.get(second.callback);
    assert.equal(r.status, 400);
    assert.match(r.body, /did not start here/);
  });

  test('sessions: a tampered cookie, fixation, CSRF, and sign-out', async () => {
    const b = new Browser();
    await signIn(b);
    const first = b.jar.get('portal_session')!;
    // A tampered cookie is no session.
    const t = new Browser();
    t.jar.set('portal_session', `${first.slice(0, -2)}xx`);
    const tampered = await t.get(`${demo.portal.url}/your-data`);
    assert.equal(tampered.status, 401);
    assert.doesNotMatch(tampered.body, /hold about you/);
    // Signing in again gives a new session id, never the one the browser held (no fixation).
    await signIn(b);
    assert.notEqual(b.jar.get('portal_session'), first);
    const page = await b.get(`${demo.portal.url}/your-data`);
    const token = csrfOf(page.body);
    // No token, a made-up token, and another session's token are refused.
    assert.equal((await b.post(`${demo.portal.url}/sign-out`, {})).status, 403);
    assert.equal((await b.post(`${demo.portal.url}/sign-out`, { _csrf: 'x'.repeat(40) })).status, 403);
    const other = new Browser();
    await signIn(other);
    const otherToken = csrfOf((await other.get(`${demo.portal.url}/your-data`)).body);
    assert.equal((await b.post(`${demo.portal.url}/sign-out`, { _csrf: otherToken })).status, 403);
    // The right one signs out; the old cookie then opens nothing.
    const kept = b.jar.get('portal_session')!;
    const out = await b.post(`${demo.portal.url}/sign-out`, { _csrf: token });
    assert.equal(out.status, 303);
    assert.equal(out.location, `${demo.portal.url}/signed-out`);
    b.jar.set('portal_session', kept);
    assert.equal((await b.get(`${demo.portal.url}/your-data`)).status, 401);
  });

  test('a wrong password or code is refused at the identity provider without saying which', async () => {
    const b = new Browser();
    const wrong = await toCallback(b, { ...demo.portal.accounts[1]!, password: 'not-the-password' });
    assert.equal(wrong.callback, '');
    assert.match(wrong.loginPage, /The username, password or code is not right/);
    assert.match(wrong.loginPage, /govuk-error-summary/);
    // The one message, on the username field; the other fields are not marked.
    assert.doesNotMatch(wrong.loginPage, /Enter your password|Enter the 6-digit code/);
    const code = await toCallback(new Browser(), demo.portal.accounts[1], '000000');
    assert.match(code.loginPage, /The username, password or code is not right/);
  });
});
