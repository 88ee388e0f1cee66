/**
 * @module preview/routes.test
 * The preview pages through Fastify (`app.inject`): the page lists exactly the items and values of
 * the request, escapes every value (a register holding markup must not inject it), contains no
 * script, is never cached, framed or sent as a referrer, and posts its decision through plain
 * forms; decisions, replays, expired and invalid links answer HTML pages with their status; the
 * plugin's HTML errors stay inside it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { generateSigningKey } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { createApp, type App } from '../core/http.ts';
import { openStore, type Store } from '../store/db.ts';
import { ALICE, MINUTE, PREVIEWED, TestClock } from '../consent/test-helpers.ts';
import { PreviewStore } from './preview.ts';
import { escapeHtml, previewRoutes, renderValue } from './routes.ts';

const KEY = generateSigningKey();
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
  await app.register(previewRoutes, { previews, serviceName: 'General Register Office' });
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
const post = (url: string) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: '' });

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

test('the page shows exactly the items and values, escaped, to whom and why, with two POST forms', async () => {
  const p = await open();
  const res = await app.inject({ method: 'GET', url: `/preview/${p.token}` });
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

  const approved = await post(`/preview/${p.token}/approve`);
  assert.equal(approved.statusCode, 200, approved.body);
  assertSafeHtml(approved);
  assert.match(approved.body, /You approved sharing/);
  assert.equal(await previews.consume({ client: PREVIEWED.client, provider: PREVIEWED.provider, person: ALICE, items: ['person.givenName', 'person.address'], agreement: PREVIEWED.id }), 'approved');

  for (const again of [await post(`/preview/${p.token}/approve`), await post(`/preview/${p.token}/decline`), await app.inject({ method: 'GET', url: `/preview/${p.token}` })]) {
    assert.equal(again.statusCode, 409);
    assertSafeHtml(again);
    assert.match(again.body, /already been answered/);
    assert.match(again.body, /Reference: preview_already_decided/);
  }
});

test('decline through the form; a register without the value says so', async () => {
  const p = await open(['person.familyName']);
  const page = await app.inject({ method: 'GET', url: `/preview/${p.token}` });
  assert.match(page.body, /Not held by the register/);
  // A browser posting the form with no body at all works too.
  const res = await app.inject({ method: 'POST', url: `/preview/${p.token}/decline` });
  assert.equal(res.statusCode, 200, res.body);
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
