/**
 * @module preview/routes.test
 * The preview pages through Fastify (`app.inject`): the link alone shows only a sign-in form, and
 * only the person it is about, with their credential, sees the data and decides (issue 10, hole 5);
 * the page lists exactly the items and values of the request, escapes every value (a register
 * holding markup must not inject it), contains no script, is never cached, framed or sent as a
 * referrer, and posts its decision through plain forms with a CSRF token; decisions, replays,
 * expired and invalid links answer HTML pages with their status; the plugin's HTML errors stay
 * inside it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateSigningKey } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { createApp, type App } from '../core/http.ts';
import { openStore, type Store } from '../store/db.ts';
import { ALICE, BOB, MINUTE, PREVIEWED, TestClock } from '../consent/test-helpers.ts';
import { PreviewStore } from './preview.ts';
import { escapeHtml, previewRoutes, renderValue } from './routes.ts';

const KEY = generateSigningKey();
const ALICE_CODE = 'alice-credential-0123456789';
const BOB_CODE = 'bob-credential-0123456789ab';
const clock = new TestClock();
const HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>';
let store: Store;
let previews: PreviewStore;
let app: App;

before(async () => {
  store = await openStore({ sqliteFile: ':memory:' });
  previews = new PreviewStore({
    db: store.db,
    signingKey: KEY.privateKey,
    baseUrl: 'https://gro.example',
    now: clock.now,
    itemLabel: (id) => (id === 'person.givenName' ? 'Given name <b>' : undefined),
    clientName: () => 'Leeds "City" Council',
    fetchValues: (_person, items) =>
      Promise.resolve(
        Object.fromEntries(
          items.map((i) => [
            i,
            i === 'person.givenName'
              ? { value: HOSTILE, source: PREVIEWED.provider, lastUpdated: '2026-01-01T00:00:00.000Z', classification: 'personal' }
              : i === 'person.familyName'
                ? { value: null, source: PREVIEWED.provider, lastUpdated: null, classification: 'personal', unavailable: true }
                : { lines: ['1 Mill Lane', `Flat "2" & ${HOSTILE}`], postTown: 'Leeds', postcode: 'LS1 4AP' },
          ]),
        ),
      ),
  });
  app = await createApp({ title: 'preview test' });
  await app.register(previewRoutes, { previews, serviceName: 'General Register Office', authenticate: (c) => (c === ALICE_CODE ? ALICE : c === BOB_CODE ? BOB : undefined) });
  app.get('/json-elsewhere', () => {
    throw new OnceOnlyError('conflict', 'an error of another route');
  });
  await app.ready();
});

after(async () => {
  await app.close();
  await store.close();
});

const open = (items = ['person.givenName', 'person.address']) =>
  previews.open({ client: PREVIEWED.client, provider: PREVIEWED.provider, person: ALICE, items, agreement: PREVIEWED, requestFingerprint: 'r' });
const post = (url: string, o: { cookie?: string; csrf?: string; authorization?: string } = {}) =>
  app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(o.cookie ? { cookie: o.cookie } : {}), ...(o.authorization ? { authorization: o.authorization } : {}) },
    payload: o.csrf ? `csrf=${encodeURIComponent(o.csrf)}` : '',
  });

/** Signs in to a preview with a code; returns the session cookie. */
async function signIn(token: string, code = ALICE_CODE): Promise<string> {
  const res = await app.inject({ method: 'POST', url: `/preview/${token}/sign-in`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `code=${encodeURIComponent(code)}` });
  assert.equal(res.statusCode, 303, res.body);
  assert.equal(res.headers['location'], `./${token}`);
  const cookie = String(res.headers['set-cookie']);
  assert.match(cookie, /^oo_preview=[^;]+; Path=\/preview\/; Max-Age=900; HttpOnly; SameSite=Strict/);
  return cookie.split(';')[0]!;
}

const csrfOf = (body: string): string => /name="csrf" value="([^"]+)"/.exec(body)?.[1] ?? '';

function assertSafeHtml(res: { statusCode: number; headers: Record<string, unknown>; body: string }): void {
  assert.match(String(res.headers['content-type']), /^text\/html; charset=utf-8/);
  assert.match(String(res.headers['cache-control']), /no-store/);
  assert.equal(res.headers['referrer-policy'], 'no-referrer');
  assert.equal(res.headers['x-frame-options'], 'DENY');
  assert.match(String(res.headers['content-security-policy']), /default-src 'none'.*frame-ancestors 'none'/);
  assert.doesNotMatch(String(res.headers['content-security-policy']), /script-src/);
  assert.doesNotMatch(res.body, /<script/i, 'no script at all');
  assert.doesNotMatch(res.body, /\son[a-z]+=/i, 'no event handler attributes');
  assert.match(res.body, /^<!DOCTYPE html>\n<html lang="en">/);
}

test('the link alone shows a sign-in form and nothing of the person; it decides nothing', async () => {
  const p = await open();
  const res = await app.inject({ method: 'GET', url: `/preview/${p.token}` });
  assert.equal(res.statusCode, 200, res.body);
  assertSafeHtml(res);
  assert.match(res.body, /Confirm it is you/);
  assert.ok(!res.body.includes(escapeHtml(HOSTILE)) && !res.body.includes('Mill Lane') && !res.body.includes(ALICE), 'no value, no person id');
  assert.match(res.body, new RegExp(`<form method="post" action="./${p.token}/sign-in"`));
  for (const what of ['approve', 'decline']) {
    const r = await post(`/preview/${p.token}/${what}`);
    assert.equal(r.statusCode, 401, r.body);
    assertSafeHtml(r);
  }
  // A wrong code and another person's code are the same refusal.
  for (const code of ['guess-0123456789abcdef', BOB_CODE]) {
    const r = await app.inject({ method: 'POST', url: `/preview/${p.token}/sign-in`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `code=${code}` });
    assert.equal(r.statusCode, 401);
    assert.match(r.body, /The code is not right for this request/);
    assert.equal(r.headers['set-cookie'], undefined);
  }
  // Another person's credential as a bearer answers nothing either.
  assert.equal((await post(`/preview/${p.token}/approve`, { authorization: `Bearer ${BOB_CODE}` })).statusCode, 403);
  // A session of this person for another link is no session for this one.
  const other = await open(['person.familyName']);
  const cookie = await signIn(other.token);
  const page = await app.inject({ method: 'GET', url: `/preview/${p.token}`, headers: { cookie } });
  assert.match(page.body, /Confirm it is you/);
  // A forged cookie (another person in a payload without a valid signature) is no session.
  const forged = `oo_preview=${Buffer.from(JSON.stringify({ l: 'x', p: ALICE, e: Date.now() + 60_000 })).toString('base64url')}.AAAA`;
  assert.match((await app.inject({ method: 'GET', url: `/preview/${p.token}`, headers: { cookie: forged } })).body, /Confirm it is you/);
  assert.equal(await previews.consume({ client: PREVIEWED.client, provider: PREVIEWED.provider, person: ALICE, items: ['person.givenName', 'person.address'], agreement: PREVIEWED.id }), 'none', 'nothing was decided');
});

test('signed in, the person sees exactly the items and values, escaped, to whom and why, with two POST forms', async () => {
  const p = await open();
  const cookie = await signIn(p.token);
  const res = await app.inject({ method: 'GET', url: `/preview/${p.token}`, headers: { cookie } });
  assert.equal(res.statusCode, 200, res.body);
  assertSafeHtml(res);
  const body = res.body;
  assert.ok(body.includes(escapeHtml(HOSTILE)), 'the hostile value is shown as text');
  assert.ok(body.includes('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;'));
  assert.ok(body.includes('Given name &#60;b&#62;'), 'labels are escaped too');
  assert.ok(body.includes('Leeds &#34;City&#34; Council (UK/MUN/LEEDS/parking)'));
  assert.ok(body.includes('Flat &#34;2&#34; &#38; &#60;script'), 'nested values are escaped');
  assert.ok(body.includes('Post town'), 'object keys become words');
  assert.ok(body.includes(escapeHtml(PREVIEWED.purpose.description)));
  assert.ok(body.includes(escapeHtml(PREVIEWED.legalBasis)));
  // Exactly two items, in a summary list: nothing that was not asked for.
  assert.equal((body.match(/class="govuk-summary-list__row"/g) ?? []).length, 2);
  assert.doesNotMatch(body, /familyName|birthDate/);
  const forms = [...body.matchAll(/<form method="post" action="([^"]+)">/g)].map((m) => m[1]);
  assert.deepEqual(forms, [`./${p.token}/approve`, `./${p.token}/decline`]);
  assert.match(body, /<button type="submit" class="govuk-button">Approve and share<\/button>/);
  assert.match(body, /<main class="govuk-main-wrapper" id="main-content" role="main">/);
  assert.match(body, /<a href="#main-content" class="govuk-skip-link">/);
  const csrf = csrfOf(body);
  assert.ok(csrf.length > 20);

  // The session without the form's CSRF token decides nothing (a cross-site post carries no token).
  assert.equal((await post(`/preview/${p.token}/approve`, { cookie })).statusCode, 401);
  assert.equal((await post(`/preview/${p.token}/approve`, { cookie, csrf: 'x'.repeat(43) })).statusCode, 401);
  const approved = await post(`/preview/${p.token}/approve`, { cookie, csrf });
  assert.equal(approved.statusCode, 200, approved.body);
  assertSafeHtml(approved);
  assert.match(approved.body, /You approved sharing/);
  assert.equal(await previews.consume({ client: PREVIEWED.client, provider: PREVIEWED.provider, person: ALICE, items: ['person.givenName', 'person.address'], agreement: PREVIEWED.id }), 'approved');

  for (const again of [await post(`/preview/${p.token}/approve`, { cookie, csrf }), await post(`/preview/${p.token}/decline`, { cookie, csrf }), await app.inject({ method: 'GET', url: `/preview/${p.token}`, headers: { cookie } })]) {
    assert.equal(again.statusCode, 409);
    assertSafeHtml(again);
    assert.match(again.body, /already been answered/);
    assert.match(again.body, /Reference: preview_already_decided/);
  }
});

test('decline through the form; a register without the value says so; an API caller decides with the person\'s credential', async () => {
  const p = await open(['person.familyName']);
  const cookie = await signIn(p.token);
  const page = await app.inject({ method: 'GET', url: `/preview/${p.token}`, headers: { cookie } });
  assert.match(page.body, /Not held by the register/);
  const res = await post(`/preview/${p.token}/decline`, { cookie, csrf: csrfOf(page.body) });
  assert.equal(res.statusCode, 200, res.body);
  const api = await open(['person.givenName']);
  const byApi = await post(`/preview/${api.token}/approve`, { authorization: `Bearer ${ALICE_CODE}` });
  assert.equal(byApi.statusCode, 200, byApi.body);
  assert.match(byApi.body, /You approved sharing/);
  assert.match(res.body, /You declined sharing/);
  assert.match(res.body, /Nothing has been shared/);
});

test('invalid and expired links are HTML pages with their status; other routes keep JSON errors', async () => {
  let res = await app.inject({ method: 'GET', url: '/preview/not-a-token' });
  assert.equal(res.statusCode, 403);
  assertSafeHtml(res);
  assert.match(res.body, /This link is not valid/);
  // Longer than any token this gateway issues: the router refuses it before the plugin (414).
  res = await post(`/preview/${'x'.repeat(201)}/approve`);
  assert.equal(res.statusCode, 414);

  const p = await open();
  clock.advance(16 * MINUTE);
  res = await app.inject({ method: 'GET', url: `/preview/${p.token}` });
  assert.equal(res.statusCode, 410);
  assertSafeHtml(res);
  assert.match(res.body, /This link has expired/);

  res = await app.inject({ method: 'GET', url: '/json-elsewhere' });
  assert.equal(res.statusCode, 409);
  assert.equal(res.json<{ type: string }>().type, 'conflict');
});

test('renderValue: every kind of value, escaped', () => {
  assert.equal(renderValue('<a href="x">'), '&#60;a href&#61;&#34;x&#34;&#62;');
  assert.equal(renderValue(42), '42');
  assert.equal(renderValue(false), 'false');
  assert.match(renderValue(null), /Not held/);
  assert.match(renderValue([]), /None/);
  assert.equal(renderValue(['a', '<b>']), '<ul><li>a</li><li>&#60;b&#62;</li></ul>');
  assert.equal(renderValue({ '<k>': 'v' }), '<dl><div><dt class="govuk-hint">&#60;k&#62;</dt><dd>v</dd></div></dl>');
  assert.equal(renderValue({ value: 'x', source: 's', classification: 'personal', lastUpdated: null }), 'x');
});
