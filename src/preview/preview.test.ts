/**
 * @module preview/preview.test
 * Explicit request and preview on both engines: a preview opened, viewed (exactly the items asked
 * for, with their values), approved, and consumed once ('approved' then 'none'); declined and
 * consumed as `preview_declined` once; replayed decisions, expired and tampered links, links signed
 * by another key or for another preview each refused with their typed error; decisions that
 * expire unused; concurrent retries of which exactly one gets the approval; the latest decision
 * winning; and links that anyone can verify with the gateway's public key.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompactSign, compactVerify } from 'jose';
import { generateSigningKey } from '../core/crypto.ts';
import { eachEngine } from '../../test/support/stores.ts';
import { ALICE, BOB, HOUR, MINUTE, PREVIEWED, TestClock, rejectsWith } from '../consent/test-helpers.ts';
import { PREVIEW_TYP, PreviewStore, type PreviewEvent } from './preview.ts';

const KEY = generateSigningKey();
const OTHER = generateSigningKey();
const ITEMS = ['person.givenName', 'person.address'];

eachEngine('preview store', (getStore) => {
  const clock = new TestClock();
  const events: PreviewEvent[] = [];
  const fetched: { person: string; items: readonly string[] }[] = [];
  const make = (signingKey = KEY.privateKey): PreviewStore =>
    new PreviewStore({
      db: getStore().db,
      signingKey,
      baseUrl: 'https://gro.example:8620/',
      now: clock.now,
      itemLabel: (id) => ({ 'person.givenName': 'Given name', 'person.address': 'Home address' })[id],
      clientName: (c) => (c === PREVIEWED.client ? 'Leeds City Council' : undefined),
      fetchValues: (person, items) => {
        fetched.push({ person, items });
        return Promise.resolve({ 'person.givenName': { value: 'Alice', source: PREVIEWED.provider, lastUpdated: null, classification: 'personal' }, 'person.address': { lines: ['1 Mill Lane'], postcode: 'LS1 4AP' }, 'person.birthDate': 'never asked for' });
      },
      onEvent: (e) => {
        events.push(e);
      },
    });
  const request = (person = ALICE) => ({ client: PREVIEWED.client, provider: PREVIEWED.provider, person, items: ITEMS, agreement: PREVIEWED.id });
  const open = (s: PreviewStore, person = ALICE) => s.open({ ...request(person), agreement: PREVIEWED, requestFingerprint: 'sha256:request-1' });

  test('open, view, approve: the retry is released once, then no decision is left', async () => {
    const s = make();
    events.length = 0;
    fetched.length = 0;
    const p = await open(s);
    assert.match(p.id, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(p.url, `https://gro.example:8620/preview/${p.token}`);
    assert.ok(p.token.length <= 200, `the token fits a default path parameter (${p.token.length} characters)`);
    assert.equal(p.expiresAt, clock.in(15 * MINUTE));
    assert.equal(await s.consume(request()), 'none', 'no decision yet');

    const v = await s.view(p.token, ALICE);
    assert.deepEqual(fetched, [{ person: ALICE, items: ['person.address', 'person.givenName'] }], 'the registry is asked for exactly the items of the request');
    assert.deepEqual(v.items.map((i) => [i.id, i.label]), [['person.address', 'Home address'], ['person.givenName', 'Given name']]);
    assert.deepEqual(v.items[0]!.value, { lines: ['1 Mill Lane'], postcode: 'LS1 4AP' });
    assert.equal(v.clientName, 'Leeds City Council');
    assert.deepEqual(v.purpose, PREVIEWED.purpose);
    assert.equal(v.legalBasis, PREVIEWED.legalBasis);
    assert.equal(v.person, ALICE);
    assert.equal(v.decisionMinutes, 15);
    // Viewing again before deciding is fine (a refreshed page).
    await s.view(p.token, ALICE);

    clock.advance(MINUTE);
    const d = await s.approve(p.token, ALICE);
    assert.equal(d.state, 'approved');
    assert.equal(d.validUntil, clock.in(15 * MINUTE));
    assert.equal(await s.consume({ ...request(), items: ['person.givenName'] }), 'none', 'another set of items is another request');
    assert.equal(await s.consume({ ...request(), client: 'UK/GOV/DWP/benefits' }), 'none', 'another client');
    assert.equal(await s.consume(request(BOB)), 'none', 'another person');
    assert.equal(await s.consume({ ...request(), items: [...ITEMS].reverse() }), 'approved', 'the same items in another order');
    assert.equal(await s.consume(request()), 'none', 'single use');
    assert.deepEqual(events.map((e) => [e.event, e.outcome]), [['opened', undefined], ['approved', undefined], ['consumed', 'released']]);
    assert.equal(events[0]!.format, 'onceonly-preview-event-1');
    assert.deepEqual(events[0]!.items, ['person.address', 'person.givenName']);

    // The approval is spent: the link no longer works either.
    await rejectsWith(s.view(p.token, ALICE), 'preview_already_decided', 'token');
  });

  test('decline: the retry is refused as preview_declined, once; then a new preview is needed', async () => {
    const s = make();
    const p = await open(s);
    const d = await s.decline(p.token, ALICE);
    assert.equal(d.state, 'declined');
    const e = await rejectsWith(s.consume(request()), 'preview_declined');
    assert.equal(e.status, 403);
    assert.equal(await s.consume(request()), 'none');
  });

  test('a replayed approval, a decision after a decision, and a view after one are refused', async () => {
    const s = make();
    const p = await open(s);
    await s.approve(p.token, ALICE);
    await rejectsWith(s.approve(p.token, ALICE), 'preview_already_decided', 'token');
    await rejectsWith(s.decline(p.token, ALICE), 'preview_already_decided');
    await rejectsWith(s.view(p.token, ALICE), 'preview_already_decided');
    // Two clicks at once: exactly one decides.
    const q = await open(s, BOB);
    const both = await Promise.allSettled([s.approve(q.token, BOB), s.decline(q.token, BOB), s.approve(q.token, BOB)]);
    assert.equal(both.filter((r) => r.status === 'fulfilled').length, 1);
    assert.equal(await s.consume(request()), 'approved');
    await s.consume(request(BOB)).catch(() => 'declined');
  });

  test('the link is the person\'s only: anyone else (the agency that asked included) cannot view or decide', async () => {
    const s = make();
    const p = await open(s);
    for (const op of [() => s.view(p.token, BOB), () => s.approve(p.token, BOB), () => s.decline(p.token, BOB), () => s.approve(p.token, '')]) {
      await rejectsWith(op(), 'invalid_preview_link', 'token');
    }
    assert.equal(await s.personOf(p.token), ALICE);
    assert.equal(await s.consume(request()), 'none', 'nothing was decided');
    await s.approve(p.token, ALICE);
    assert.equal(await s.consume(request()), 'approved');
  });

  test('expired links and expired decisions', async () => {
    const s = make();
    const p = await open(s);
    clock.advance(15 * MINUTE);
    const e = await rejectsWith(s.view(p.token, ALICE), 'preview_link_expired', 'token');
    assert.equal(e.status, 410);
    await rejectsWith(s.approve(p.token, ALICE), 'preview_link_expired');
    await rejectsWith(s.decline(p.token, ALICE), 'preview_link_expired');

    const q = await open(s);
    await s.approve(q.token, ALICE);
    clock.advance(15 * MINUTE);
    assert.equal(await s.consume(request()), 'none', 'an approval not used in time lapses');
  });

  test('tampered, foreign and malformed links are refused as invalid_preview_link', async () => {
    const s = make();
    const p = await open(s);
    const [h, payload, sig] = p.token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { jti: string; exp: number };
    const sign = (c: unknown, key = KEY.privateKey, header: Record<string, unknown> = { alg: 'EdDSA', typ: PREVIEW_TYP }) =>
      new CompactSign(new TextEncoder().encode(JSON.stringify(c))).setProtectedHeader(header as { alg: string }).sign(key);
    const other = await open(s, BOB);
    const otherClaims = JSON.parse(Buffer.from(other.token.split('.')[1]!, 'base64url').toString()) as { jti: string; exp: number };
    const bad: [string, string][] = [
      ['a later expiry, same signature', `${h}.${Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 3600 })).toString('base64url')}.${sig}`],
      ['another preview id, same signature', `${h}.${Buffer.from(JSON.stringify({ ...claims, jti: otherClaims.jti })).toString('base64url')}.${sig}`],
      ['a flipped signature byte', `${h}.${payload}.${sig.slice(0, 10)}${sig[10] === 'A' ? 'B' : 'A'}${sig.slice(11)}`],
      ['signed by another key', await sign(claims, OTHER.privateKey)],
      ['genuinely signed, for a preview this store does not hold', await sign({ jti: 'AAAAAAAAAAAAAAAAAAAAAA', exp: claims.exp })],
      ['genuinely signed, for another preview\'s id with this expiry', await sign({ jti: otherClaims.jti, exp: claims.exp - 1 })],
      ['genuinely signed, but not a preview token', await sign(claims, KEY.privateKey, { alg: 'EdDSA', typ: 'JWT' })],
      ['genuinely signed, malformed claims', await sign({ jti: 42, exp: 'soon' })],
      ['alg none', `${Buffer.from(JSON.stringify({ alg: 'none', typ: PREVIEW_TYP })).toString('base64url')}.${payload}.`],
      ['not a JWS', 'hello'],
      ['empty', ''],
      ['huge', 'a.b.'.padEnd(5000, 'c')],
    ];
    for (const [what, token] of bad) {
      for (const op of [() => s.view(token, ALICE), () => s.approve(token, ALICE), () => s.decline(token, ALICE)]) {
        await rejectsWith(op(), 'invalid_preview_link', 'token').catch((e: unknown) => assert.fail(`${what}: ${String(e)}`));
      }
    }
    // None of them decided anything: the genuine links still work.
    await s.approve(p.token, ALICE);
    await s.decline(other.token, BOB);
    assert.equal(await s.consume(request()), 'approved');
  });

  test('the link verifies as the gateway\'s with nothing but its public key', async () => {
    const s = make();
    const p = await open(s);
    const { payload, protectedHeader } = await compactVerify(p.token, KEY.publicKey, { algorithms: ['EdDSA'] });
    assert.equal(protectedHeader.typ, PREVIEW_TYP);
    const claims = JSON.parse(new TextDecoder().decode(payload)) as { jti: string; exp: number };
    assert.equal(claims.jti, p.id);
    assert.equal(claims.exp * 1000, Date.parse(p.expiresAt));
    await assert.rejects(compactVerify(p.token, OTHER.publicKey, { algorithms: ['EdDSA'] }));
    // A store with another key (another gateway) refuses this gateway's links.
    await rejectsWith(make(OTHER.privateKey).view(p.token, ALICE), 'invalid_preview_link');
    await s.decline(p.token, ALICE);
    await s.consume(request()).catch(() => undefined);
  });

  test('concurrent retries: exactly one gets the approval', async () => {
    const s = make();
    const p = await open(s);
    await s.approve(p.token, ALICE);
    const results = await Promise.all(Array.from({ length: 6 }, () => s.consume(request())));
    assert.deepEqual(results.filter((r) => r === 'approved').length, 1, results.join(','));
  });

  test('the latest decision wins, and spends the earlier ones with it', async () => {
    const s = make();
    const first = await open(s);
    const second = await open(s);
    await s.approve(first.token, ALICE);
    clock.advance(1000);
    await s.decline(second.token, ALICE);
    await rejectsWith(s.consume(request()), 'preview_declined');
    assert.equal(await s.consume(request()), 'none', 'the earlier approval does not outlive the later "no"');
    // And the other way round.
    const third = await open(s);
    const fourth = await open(s);
    await s.decline(third.token, ALICE);
    clock.advance(1000);
    await s.approve(fourth.token, ALICE);
    assert.equal(await s.consume(request()), 'approved');
    assert.equal(await s.consume(request()), 'none');
  });

  test('open refuses what the agreement does not cover', async () => {
    const s = make();
    const base = { ...request(), agreement: PREVIEWED, requestFingerprint: 'x' };
    await rejectsWith(s.open({ ...base, items: ['person.birthDate'] }), 'item_not_in_agreement', 'items');
    await rejectsWith(s.open({ ...base, items: [] }), 'item_not_in_agreement', 'items');
    await rejectsWith(s.open({ ...base, client: 'UK/GOV/DWP/benefits' }), 'invalid_request', 'agreement');
    await rejectsWith(s.open({ ...base, client: 'not an id' }), 'invalid_identifier', 'client');
    await rejectsWith(s.open({ ...base, person: 'P-1' }), 'invalid_identifier', 'person');
    await rejectsWith(s.open({ ...base, requestFingerprint: 'x'.repeat(600) }), 'invalid_value', 'requestFingerprint');
    clock.advance(HOUR);
  });
});
