/**
 * The event format and the webhook signature scheme (Standard Webhooks): the JSON Schema shipped
 * in docs/ is the one the code checks with, and a subscriber's check refuses whatever was not
 * signed with its secret, for this body, under this id, recently.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { changeEventJsonSchema, newWebhookSecret, SeenEvents, signWebhook, verifyWebhook, type ChangeEvent } from './format.ts';

const EVENT: ChangeEvent = {
  id: '0b6e4c8e-2f0a-4f6b-9d52-3f1b7a0c9e11',
  type: 'move',
  timestamp: '2026-12-07T10:00:00.000Z',
  data: {
    provider: 'UK/GOV/GRO/population', subscription: 'sub-1', sequence: 3, subject: 'P-000000001-X', changeId: 'c-1', effectiveDate: '2026-12-06',
    agreement: 'leeds-parking-changes', purpose: 'change-notification',
    items: { 'person.address': { value: { lines: ['1 Synthetic Street'], postcode: 'LS1 1AA' }, source: 'UK/GOV/GRO/population', lastUpdated: '2026-12-07T10:00:00.000Z', classification: 'personal' } },
  },
};

test('docs/schemas/change-event.json is the schema the code checks events with, and a delivered event satisfies it', () => {
  const shipped = JSON.parse(readFileSync(new URL('../../docs/schemas/change-event.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(shipped, changeEventJsonSchema(), 'regenerate docs/schemas/change-event.json from events/format.ts');
  const validate = new Ajv2020({ strict: false }).compile(shipped);
  assert.ok(validate(EVENT), JSON.stringify(validate.errors));
  assert.equal(validate({ ...EVENT, extra: 1 }), false, 'no key beside the documented ones');
  assert.equal(validate({ ...EVENT, data: { ...EVENT.data, sequence: 0 } }), false);
});

test('a signed webhook verifies; a changed body, another secret, another id, or an old timestamp does not', () => {
  const secret = newWebhookSecret();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  const body = JSON.stringify(EVENT);
  const headers = signWebhook(secret, EVENT.id, body, new Date());
  assert.match(headers['webhook-signature']!, /^v1,[A-Za-z0-9+/]+={0,2}$/);
  assert.deepEqual(verifyWebhook(secret, headers, body), EVENT);
  assert.deepEqual(verifyWebhook(secret, headers, Buffer.from(body)), EVENT);
  const refused = (h: Record<string, string | undefined>, b: string, type: string, s = secret): void =>
    assert.throws(() => verifyWebhook(s, h, b), (e: Error & { type?: string }) => e.type === type, `${type} expected`);
  refused(headers, body.replace('LS1 1AA', 'LS9 9ZZ'), 'invalid_signature');
  refused(headers, body, 'invalid_signature', newWebhookSecret());
  refused({ ...headers, 'webhook-id': 'another' }, body, 'invalid_signature');
  refused({ ...headers, 'webhook-signature': undefined }, body, 'invalid_signature');
  // Older than the scheme's five-minute tolerance: a replay of a captured delivery.
  const old = new Date(Date.now() - 10 * 60_000);
  refused(signWebhook(secret, EVENT.id, body, old), body, 'invalid_signature');
  // Signed correctly, but under an id that is not the body's event's: refused too.
  const other = { ...EVENT, id: '1b6e4c8e-2f0a-4f6b-9d52-3f1b7a0c9e11' };
  refused(signWebhook(secret, EVENT.id, JSON.stringify(other), new Date()), JSON.stringify(other), 'invalid_request');
  // Signed, but not an event.
  refused(signWebhook(secret, EVENT.id, '{"id":1}', new Date()), '{"id":1}', 'invalid_request');
});

test('SeenEvents drops a repeated event id and forgets the oldest past its capacity', () => {
  const seen = new SeenEvents(2);
  assert.equal(seen.first('a'), true);
  assert.equal(seen.first('a'), false);
  assert.equal(seen.first('b'), true);
  assert.equal(seen.first('c'), true);
  assert.equal(seen.first('a'), true, 'a was forgotten');
  assert.equal(seen.first('c'), false);
});
