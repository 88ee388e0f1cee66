/**
 * @module consent/consent.test
 * The consent store on both engines: the whole ISO/IEC TS 27560 / W3C DPV lifecycle with its
 * history and events, the release check (`inForce`) for given, withdrawn, expired, refused and
 * requested consents and for requests outside what was consented to, every illegal transition and
 * bad input as its own typed error, a failing event hook rolling the change back, concurrent
 * changes, and signed receipts that verify and stop verifying when anything is altered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateSigningKey, publicJwk } from '../core/crypto.ts';
import { eachEngine } from '../../test/support/stores.ts';
import { TransparencyLog } from '../transparency/log.ts';
import { ConsentStore, DPV_STATE, RECEIPT_TYP, verifyReceipt, type ConsentEvent } from './consent.ts';
import { AGREEMENTS, ALICE, BLUE_BADGE, BOB, DWP_CARE, ENDED, HOUR, PUBLIC_TASK, TestClock, rejectsWith } from './test-helpers.ts';

const KEY = generateSigningKey();
const OTHER = generateSigningKey();

eachEngine('consent store', (getStore) => {
  const clock = new TestClock();
  const events: ConsentEvent[] = [];
  let failHook = false;
  const store = (): ConsentStore =>
    new ConsentStore({
      db: getStore().db,
      agreements: (id) => AGREEMENTS.get(id),
      now: clock.now,
      onEvent: async (e, tx) => {
        // The hook runs inside the change's transaction: it already sees the new state.
        const row = await tx.selectFrom('consent_record').select('state').where('id', '=', e.id).executeTakeFirstOrThrow();
        assert.equal(row.state, e.to);
        if (failHook) throw new Error('transparency log unavailable');
        events.push(e);
      },
    });
  const query = { person: ALICE, controller: BLUE_BADGE.client, purpose: BLUE_BADGE.purpose.id, agreement: BLUE_BADGE.id, items: ['person.disabilityStatus'] };

  test('consent given is in force; withdrawn, it is refused at once; the history and events record both', async () => {
    const s = store();
    events.length = 0;
    const given = await s.give({ person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(24 * HOUR) });
    assert.equal(given.state, 'given');
    assert.equal(given.controller, 'UK/MUN/LEEDS/parking');
    assert.equal(given.provider, 'UK/GOV/DWP/disability');
    assert.deepEqual(given.purpose, BLUE_BADGE.purpose);
    assert.equal(given.legalBasis, BLUE_BADGE.legalBasis);
    assert.deepEqual(given.items, [...BLUE_BADGE.items].sort(), 'all of the agreement\'s items by default, sorted');
    assert.equal(given.givenAt, clock.now().toISOString());
    assert.deepEqual(given.history, [{ seq: 1, from: null, to: 'given', at: clock.now().toISOString(), actor: 'person' }]);
    assert.equal((await s.inForce(query))?.id, given.id);
    assert.equal(s.isInForce(given), true);

    clock.advance(HOUR);
    const withdrawn = await s.withdraw(given.id);
    assert.equal(withdrawn.state, 'withdrawn');
    // The very next check, with no cache in between, no longer finds it.
    assert.equal(await s.inForce(query), null);
    assert.deepEqual(withdrawn.history.map((h) => [h.seq, h.from, h.to]), [[1, null, 'given'], [2, 'given', 'withdrawn']]);
    assert.equal(withdrawn.history[1]!.at, clock.now().toISOString());

    assert.deepEqual(events.map((e) => [e.id, e.seq, e.from, e.to]), [[given.id, 1, null, 'given'], [given.id, 2, 'given', 'withdrawn']]);
    assert.deepEqual(events[1], {
      format: 'onceonly-consent-event-1',
      id: given.id,
      seq: 2,
      person: ALICE,
      controller: 'UK/MUN/LEEDS/parking',
      provider: 'UK/GOV/DWP/disability',
      purpose: 'blue-badge-concession',
      items: ['person.disabilityStatus', 'person.familyName', 'person.givenName'],
      agreement: BLUE_BADGE.id,
      from: 'given',
      to: 'withdrawn',
      at: clock.now().toISOString(),
      expiresAt: given.expiresAt,
      actor: 'person',
    });
    // Events are plain JSON: what goes into the transparency log is exactly this.
    assert.deepEqual(JSON.parse(JSON.stringify(events[1])), events[1]);
  });

  test('requested, then given or refused; only given is ever in force', async () => {
    const s = store();
    const asked = await s.request({ person: ALICE, agreement: DWP_CARE.id, actor: 'operator' });
    assert.equal(asked.state, 'requested');
    assert.equal(asked.expiresAt, null);
    assert.equal(await s.inForce({ ...query, controller: DWP_CARE.client, purpose: DWP_CARE.purpose.id, agreement: DWP_CARE.id }), null);
    clock.advance(1000);
    const given = await s.give({ id: asked.id, expiresAt: clock.in(HOUR) });
    assert.equal(given.state, 'given');
    assert.equal(given.givenAt, clock.now().toISOString());
    assert.deepEqual(given.history.map((h) => [h.from, h.to, h.actor]), [[null, 'requested', 'operator'], ['requested', 'given', 'person']]);
    assert.equal((await s.inForce({ ...query, controller: DWP_CARE.client, purpose: DWP_CARE.purpose.id, agreement: DWP_CARE.id }))?.id, given.id);

    const asked2 = await s.request({ person: BOB, agreement: DWP_CARE.id });
    const refused = await s.refuse(asked2.id);
    assert.equal(refused.state, 'refused');
    assert.equal(DPV_STATE[refused.state], 'dpv:ConsentRefused');
    assert.equal(await s.inForce({ ...query, person: BOB, controller: DWP_CARE.client, purpose: DWP_CARE.purpose.id, agreement: DWP_CARE.id }), null);
    await s.withdraw(given.id);
  });

  test('expiry: in force until it is reached, refused after, recorded as expired when first observed', async () => {
    const s = store();
    events.length = 0;
    const c = await s.give({ person: ALICE, agreement: BLUE_BADGE.id, items: ['person.disabilityStatus'], expiresAt: clock.in(2 * HOUR) });
    const expiresAt = c.expiresAt!;
    assert.equal((await s.inForce(query))?.id, c.id);
    // Asked about an instant after the expiry while the clock is before it: not in force then, but
    // nothing is recorded, because the expiry has not happened yet.
    assert.equal(await s.inForce({ ...query, at: clock.in(3 * HOUR) }), null);
    assert.equal((await s.get(c.id)).state, 'given');

    clock.advance(2 * HOUR);
    assert.equal(await s.inForce(query), null, 'expired exactly at its expiry');
    const after = await s.get(c.id);
    assert.equal(after.state, 'expired');
    assert.deepEqual(after.history.at(-1), { seq: 2, from: 'given', to: 'expired', at: expiresAt, actor: 'system' });
    assert.deepEqual(events.map((e) => e.to), ['given', 'expired']);
    // Observed once, recorded once.
    await s.get(c.id);
    await s.list(ALICE);
    assert.equal((await s.get(c.id)).history.length, 2);
    // An expired consent cannot be withdrawn: it is over already.
    const e = await rejectsWith(s.withdraw(c.id), 'invalid_consent_transition');
    assert.equal(e.detail['state'], 'expired');
  });

  test('expiry is recorded by list and by a refused change too, and never rolled back with it', async () => {
    const s = store();
    const c = await s.give({ person: BOB, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) });
    clock.advance(HOUR + 1);
    await rejectsWith(s.withdraw(c.id), 'invalid_consent_transition');
    assert.equal((await s.get(c.id)).state, 'expired');
    const d = await s.give({ person: BOB, agreement: DWP_CARE.id, expiresAt: clock.in(HOUR) });
    clock.advance(HOUR);
    const listed = await s.list(BOB);
    assert.equal(listed.find((x) => x.id === d.id)?.state, 'expired');
  });

  test('inForce covers only what was consented to: items, controller, purpose, agreement, person', async () => {
    const s = store();
    const c = await s.give({ person: ALICE, agreement: BLUE_BADGE.id, items: ['person.disabilityStatus', 'person.givenName'], expiresAt: clock.in(HOUR) });
    assert.equal((await s.inForce({ ...query, items: ['person.givenName', 'person.disabilityStatus'] }))?.id, c.id);
    assert.equal((await s.inForce({ ...query, items: ['person.givenName'] }))?.id, c.id, 'a subset is covered');
    assert.equal(await s.inForce({ ...query, items: ['person.disabilityStatus', 'person.familyName'] }), null, 'an item outside the consent');
    assert.equal(await s.inForce({ ...query, controller: 'UK/MUN/LEEDS/housing' }), null, 'another controller');
    assert.equal(await s.inForce({ ...query, purpose: 'something-else' }), null, 'another purpose');
    assert.equal(await s.inForce({ ...query, agreement: DWP_CARE.id }), null, 'another agreement');
    assert.equal(await s.inForce({ ...query, person: BOB }), null, 'another person');
    assert.equal(await s.inForce({ ...query, at: clock.in(-HOUR) }), null, 'before it was given');
    // With two covering consents, the one that runs longest is returned; withdrawing it leaves the other.
    const longer = await s.give({ person: ALICE, agreement: BLUE_BADGE.id, items: ['person.disabilityStatus'], expiresAt: clock.in(5 * HOUR) });
    assert.equal((await s.inForce(query))?.id, longer.id);
    await s.withdraw(longer.id);
    assert.equal((await s.inForce(query))?.id, c.id);
    await s.withdraw(c.id);
    assert.equal(await s.inForce(query), null);
    await rejectsWith(s.inForce({ ...query, person: 'P-1' }), 'invalid_identifier', 'person');
  });

  test('illegal transitions are refused with the state and what could follow it', async () => {
    const s = store();
    const asked = await s.request({ person: ALICE, agreement: BLUE_BADGE.id });
    let e = await rejectsWith(s.withdraw(asked.id), 'invalid_consent_transition', 'state');
    assert.match(String(e.detail.expected), /given or refused/);
    const refused = await s.refuse(asked.id);
    e = await rejectsWith(s.withdraw(refused.id), 'invalid_consent_transition');
    assert.equal(e.detail['state'], 'refused');
    assert.equal(e.detail['dpvState'], 'dpv:ConsentRefused');
    assert.match(String(e.detail.expected), /final/);
    await rejectsWith(s.give({ id: refused.id, expiresAt: clock.in(HOUR) }), 'invalid_consent_transition');
    await rejectsWith(s.refuse(refused.id), 'invalid_consent_transition');

    const given = await s.give({ person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) });
    await rejectsWith(s.refuse(given.id), 'invalid_consent_transition');
    await rejectsWith(s.give({ id: given.id, expiresAt: clock.in(2 * HOUR) }), 'invalid_consent_transition');
    await s.withdraw(given.id);
    await rejectsWith(s.withdraw(given.id), 'invalid_consent_transition');
    // A refused change leaves no trace.
    assert.equal((await s.get(given.id)).history.length, 2);
  });

  test('bad input: each its own typed error, naming the field', async () => {
    const s = store();
    const ok = { person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) };
    await rejectsWith(s.give({ ...ok, person: 'P-000001234' }), 'invalid_identifier', 'person');
    await rejectsWith(s.give({ ...ok, person: 'P-000001234-0' }), 'invalid_identifier', 'person');
    await rejectsWith(s.give({ ...ok, agreement: 'no-such-agreement' }), 'unknown_agreement', 'agreement');
    await rejectsWith(s.give({ ...ok, agreement: PUBLIC_TASK.id }), 'consent_not_applicable', 'agreement');
    await rejectsWith(s.give({ ...ok, agreement: ENDED.id }), 'agreement_not_in_force', 'agreement');
    const e = await rejectsWith(s.give({ ...ok, items: ['person.disabilityStatus', 'person.birthDate'] }), 'item_not_in_agreement', 'items');
    assert.deepEqual(e.detail['notInAgreement'], ['person.birthDate']);
    await rejectsWith(s.give({ ...ok, items: [] }), 'invalid_value', 'items');
    await rejectsWith(s.give({ ...ok, expiresAt: clock.in(-1000) }), 'invalid_expiry', 'expiresAt');
    await rejectsWith(s.give({ ...ok, expiresAt: clock.now().toISOString() }), 'invalid_expiry', 'expiresAt');
    await rejectsWith(s.give({ ...ok, expiresAt: '2030-01-01T00:00:00.001Z' }), 'invalid_expiry', 'expiresAt');
    await rejectsWith(s.give({ ...ok, expiresAt: 'next tuesday' }), 'invalid_date', 'expiresAt');
    await rejectsWith(s.give({ ...ok, actor: 'Robert; DROP TABLE' }), 'invalid_value', 'actor');
    await rejectsWith(s.request({ person: ALICE, agreement: PUBLIC_TASK.id }), 'consent_not_applicable');
    await rejectsWith(s.get('00000000-0000-0000-0000-000000000000'), 'consent_not_found', 'id');
    await rejectsWith(s.withdraw('nope'), 'consent_not_found');
    await rejectsWith(s.withdraw('x'.repeat(500)), 'consent_not_found');
    await rejectsWith(s.list('alice'), 'invalid_identifier', 'person');
    // The last moment of the agreement is allowed.
    const last = await s.give({ ...ok, expiresAt: '2030-01-01T00:00:00.000Z' });
    // Someone else's consent is not found, not forbidden: ids cannot be probed.
    await rejectsWith(s.withdraw(last.id, { person: BOB }), 'consent_not_found');
    await rejectsWith(s.receipt(last.id, KEY.privateKey, { person: BOB }), 'consent_not_found');
    assert.equal((await s.withdraw(last.id, { person: ALICE })).state, 'withdrawn');
  });

  test('a change whose event cannot be recorded does not happen', async () => {
    const s = store();
    const c = await s.give({ person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) });
    const before = await s.list(ALICE);
    failHook = true;
    try {
      await assert.rejects(s.withdraw(c.id), /transparency log unavailable/);
      await assert.rejects(s.give({ person: ALICE, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) }), /transparency log unavailable/);
    } finally {
      failHook = false;
    }
    assert.equal((await s.get(c.id)).state, 'given');
    assert.equal((await s.get(c.id)).history.length, 1);
    assert.equal((await s.list(ALICE)).length, before.length, 'no half-written record');
    await s.withdraw(c.id);
  });

  test('the hook as the gateway wires it: each event a transparency-log entry, in the same transaction', async () => {
    const log = new TransparencyLog({ db: getStore().db, dialect: getStore().dialect, logId: 'UK/consent-test' });
    let failAfterAppend = false;
    const s = new ConsentStore({
      db: getStore().db,
      agreements: (id) => AGREEMENTS.get(id),
      now: clock.now,
      onEvent: async (e, tx) => {
        await log.appendIn(tx, [e]);
        if (failAfterAppend) throw new Error('later failure');
      },
    });
    const c = await s.give({ person: ALICE, agreement: DWP_CARE.id, expiresAt: clock.in(HOUR) });
    await s.withdraw(c.id);
    assert.equal(await log.size(), 2);
    const entry = JSON.parse((await log.entry(1))!.entry) as { record: ConsentEvent };
    assert.equal(entry.record.id, c.id);
    assert.equal(entry.record.to, 'withdrawn');
    // A change that fails after its entry was appended leaves neither.
    failAfterAppend = true;
    await assert.rejects(s.give({ person: ALICE, agreement: DWP_CARE.id, expiresAt: clock.in(HOUR) }), /later failure/);
    failAfterAppend = false;
    assert.equal(await log.size(), 2);
    await s.give({ person: ALICE, agreement: DWP_CARE.id, expiresAt: clock.in(HOUR) }).then((x) => s.withdraw(x.id));
    assert.equal(await log.size(), 4);
  });

  test('concurrent withdrawals: exactly one applies', async () => {
    const s = store();
    const c = await s.give({ person: BOB, agreement: BLUE_BADGE.id, expiresAt: clock.in(HOUR) });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => s.withdraw(c.id)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { type?: string }).type, 'invalid_consent_transition');
    assert.equal((await s.get(c.id)).history.length, 2);
  });

  test('list: a person\'s records, newest first, with their histories', async () => {
    const s = store();
    clock.advance(HOUR);
    const a = await s.give({ person: BOB, agreement: DWP_CARE.id, expiresAt: clock.in(HOUR) });
    clock.advance(1000);
    const b = await s.request({ person: BOB, agreement: BLUE_BADGE.id });
    const list = await s.list(BOB);
    assert.deepEqual(list.slice(0, 2).map((c) => c.id), [b.id, a.id]);
    assert.ok(list.every((c) => c.person === BOB && c.history.length >= 1));
    assert.ok((await s.list(ALICE)).every((c) => c.person === ALICE), 'never another person\'s');
  });

  test('receipts: signed JSON that verifies with the key, and fails when anything is altered', async () => {
    const s = store();
    const c = await s.give({ person: ALICE, agreement: BLUE_BADGE.id, items: ['person.disabilityStatus'], expiresAt: clock.in(HOUR) });
    clock.advance(1000);
    await s.withdraw(c.id);
    const signed = await s.receipt(c.id, KEY.privateKey, { issuer: 'UK/GOV/DWP/gw1' });
    const r = signed.receipt;
    assert.equal(r.version, 'onceonly-consent-receipt-1');
    assert.match(r.receiptId, /^[0-9a-f-]{36}$/);
    assert.equal(r.timestamp, clock.now().toISOString());
    assert.equal(r.issuer, 'UK/GOV/DWP/gw1');
    assert.equal(r.consentId, c.id);
    assert.equal(r.principal, ALICE);
    assert.equal(r.controller, BLUE_BADGE.client);
    assert.equal(r.provider, BLUE_BADGE.provider);
    assert.equal(r.agreement, BLUE_BADGE.id);
    assert.equal(r.legalBasis, BLUE_BADGE.legalBasis);
    assert.deepEqual(r.purpose, BLUE_BADGE.purpose);
    assert.deepEqual(r.items, ['person.disabilityStatus']);
    assert.equal(r.state, 'withdrawn');
    assert.equal(r.dpvState, 'dpv:ConsentWithdrawn');
    assert.equal(r.expiresAt, c.expiresAt);
    assert.deepEqual(r.history.map((h) => h.to), ['given', 'withdrawn']);
    assert.deepEqual(signed.publicKey, publicJwk(KEY.publicKey));

    const header = JSON.parse(Buffer.from(signed.jws.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
    assert.deepEqual(header, { alg: 'EdDSA', typ: RECEIPT_TYP, kid: signed.keyId });
    const ok = await verifyReceipt(signed.jws, KEY.publicKey);
    assert.ok(ok.ok);
    assert.deepEqual(ok.receipt, JSON.parse(JSON.stringify(r)));
    assert.ok((await verifyReceipt(signed.jws, signed.publicKey)).ok, 'with the JWK too');

    const [h, p, sig] = signed.jws.split('.') as [string, string, string];
    const altered = Buffer.from(JSON.stringify({ ...r, state: 'given', dpvState: 'dpv:ConsentGiven' })).toString('base64url');
    const reasons = [
      await verifyReceipt(`${h}.${altered}.${sig}`, KEY.publicKey),
      await verifyReceipt(`${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BA' : 'AA'}`, KEY.publicKey),
      await verifyReceipt(signed.jws, OTHER.publicKey),
      await verifyReceipt(`${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT' })).toString('base64url')}.${p}.${sig}`, KEY.publicKey),
      await verifyReceipt(`${Buffer.from(JSON.stringify({ alg: 'none', typ: RECEIPT_TYP })).toString('base64url')}.${p}.`, KEY.publicKey),
      await verifyReceipt(`${h}.${p}`, KEY.publicKey),
      await verifyReceipt('', KEY.publicKey),
      await verifyReceipt(`${h}.${p}.${sig}`, { kty: 'OKP', crv: 'Ed25519', x: 'not-a-key' }),
    ].map((v) => (v.ok ? 'VALID' : v.reason));
    assert.ok(!reasons.includes('VALID'), reasons.join('; '));
    assert.match(reasons[0]!, /altered/);
    assert.match(reasons[2]!, /altered or signed by someone else/);
    assert.match(reasons[3]!, /typ/);
    assert.match(reasons[4]!, /alg/);
  });
});
