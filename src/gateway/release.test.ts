/**
 * The registry contract at the provider gateway's border (gateway/release): what a read may ask
 * (each parameter once, nothing else; a future time never) and what may come back (exactly the
 * documented answer to exactly this read). And the history rule of the access decision
 * (gateway/access): the past of an item only where an agreement grants it, and only as far back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectError } from '../../test/support/errors.ts';
import { checkRegistryAnswer, parseRegistryRead, readTime } from './release.ts';
import { historyNotGranted } from './access.ts';
import type { Agreement } from '../catalogue/agreements.ts';

const P = 'UK/GOV/GRO/population';
const TODAY = '2026-12-07';
const env = (value: unknown) => ({ value, source: P, lastUpdated: '2026-01-01T00:00:00.000Z', classification: 'personal' });
const answer = (doc: unknown, status = 200, contentType = 'application/json; charset=utf-8') => ({ status, contentType, body: Buffer.from(JSON.stringify(doc)) });

test('parseRegistryRead: the two operations, each parameter once, nothing else', () => {
  assert.deepEqual(parseRegistryRead('/P-000000001-X', 'items=person.givenName,person.address'), { id: 'P-000000001-X', exists: false, items: ['person.givenName', 'person.address'] });
  assert.deepEqual(parseRegistryRead('/P-000000001-X/exists', ''), { id: 'P-000000001-X', exists: true, items: [] });
  assert.deepEqual(parseRegistryRead('/x', 'items=person.address&asAt=2016-01-01&knownAt=2020-01-01T00:00:00Z'), { id: 'x', exists: false, items: ['person.address'], asAt: '2016-01-01', knownAt: '2020-01-01T00:00:00Z' });
  // HTTP parameter pollution: two readers could read two queries two ways.
  expectError(() => parseRegistryRead('/x', 'items=person.address&items=person.birthDate'), 'invalid_request', 'query.items');
  expectError(() => parseRegistryRead('/x', 'items=person.address&asAt=2016-01-01&asAt=2026-01-01'), 'invalid_request', 'query.asAt');
  expectError(() => parseRegistryRead('/x', 'items=person.address&item=person.birthDate'), 'invalid_request', 'query.item');
  expectError(() => parseRegistryRead('/x', 'items=person.address&as_at=2016-01-01'), 'invalid_request', 'query.as_at');
  expectError(() => parseRegistryRead('/x/exists', 'items=person.address'), 'invalid_request', 'query.items');
  expectError(() => parseRegistryRead('/x', ''), 'invalid_request', 'query.items');
  expectError(() => parseRegistryRead('/x', 'items=person.address,person.address'), 'invalid_request', 'query.items');
  expectError(() => parseRegistryRead('/x', 'items=person.address,../etc'), 'invalid_request', 'query.items');
  expectError(() => parseRegistryRead('/x', 'items=person.address&asAt=2016-02-30'), 'invalid_date', 'query.asAt');
  expectError(() => parseRegistryRead('/x', 'items=person.address&knownAt=yesterday'), 'invalid_date', 'query.knownAt');
  for (const path of ['/x/history', '/x/changes', '', '/', '/x/exists/more']) expectError(() => parseRegistryRead(path, ''), 'unknown_service', 'path');
});

test('readTime: today is the present; the past is history; the future is refused', () => {
  const now = new Date(`${TODAY}T12:00:00Z`);
  const read = (q: string) => parseRegistryRead('/x', `items=person.address${q}`);
  assert.equal(readTime(read(''), TODAY, now), undefined);
  assert.equal(readTime(read(`&asAt=${TODAY}`), TODAY, now), undefined, 'asAt today needs no grant');
  assert.deepEqual(readTime(read('&asAt=2016-01-01'), TODAY, now), { asAt: '2016-01-01' });
  assert.deepEqual(readTime(read('&knownAt=2026-12-07T11:00:00%2B01:00'), TODAY, now), { knownAt: '2026-12-07T10:00:00.000Z' }, 'any knownAt reads what the register believed then');
  expectError(() => readTime(read('&asAt=2026-12-08'), TODAY, now), 'history_not_granted', 'query.asAt');
  expectError(() => readTime(read('&knownAt=2026-12-07T13:00:00Z'), TODAY, now), 'history_not_granted', 'query.knownAt');
});

test('historyNotGranted: per item, and no further back than the years granted (29 February included)', () => {
  const a = { history: [{ item: 'person.address', years: 5 }, { item: 'person.familyName' }] } as unknown as Agreement;
  assert.deepEqual(historyNotGranted(a, ['person.address', 'person.givenName'], { asAt: '2024-01-01' }, TODAY), ['person.givenName']);
  assert.deepEqual(historyNotGranted(a, ['person.address'], { asAt: '2021-12-07' }, TODAY), []);
  assert.deepEqual(historyNotGranted(a, ['person.address'], { asAt: '2021-12-06' }, TODAY), ['person.address'], 'one day beyond five years');
  assert.deepEqual(historyNotGranted(a, ['person.familyName'], { asAt: '1900-01-01' }, TODAY), [], 'no years: no limit');
  assert.deepEqual(historyNotGranted(a, ['person.address'], { knownAt: '2020-01-01T00:00:00.000Z' }, TODAY), ['person.address'], 'knownAt is bounded the same way');
  assert.deepEqual(historyNotGranted(a, ['person.address'], { asAt: '2023-01-01', knownAt: '2019-01-01T00:00:00.000Z' }, TODAY), ['person.address'], 'the earlier of the two counts');
  const leap = { history: [{ item: 'person.address', years: 1 }] } as unknown as Agreement;
  assert.deepEqual(historyNotGranted(leap, ['person.address'], { asAt: '2023-03-01' }, '2024-02-29'), []);
  assert.deepEqual(historyNotGranted(leap, ['person.address'], { asAt: '2023-02-28' }, '2024-02-29'), ['person.address']);
});

test('checkRegistryAnswer: the documented answer to exactly this read passes', () => {
  const read = parseRegistryRead('/P-000000001-X', 'items=person.givenName,person.address');
  checkRegistryAnswer(read, P, TODAY, answer({ id: 'P-000000001-X', asAt: TODAY, knownAt: null, items: { 'person.givenName': env('Alice'), 'person.address': { ...env(null), value: null, lastUpdated: null, unavailable: true, reason: 'not-held' } } }));
  checkRegistryAnswer(parseRegistryRead('/P-000000001-X/exists', ''), P, TODAY, answer({ exists: false }));
  checkRegistryAnswer(read, P, TODAY, answer({ type: 'unknown_subject', message: 'no record with this id', detail: { field: 'params.id', expected: 'the id of a record' } }, 404));
  const past = parseRegistryRead('/P-000000001-X', 'items=person.address&asAt=2016-01-01&knownAt=2020-01-01T00:00:00Z');
  checkRegistryAnswer(past, P, TODAY, answer({ id: 'P-000000001-X', asAt: '2016-01-01', knownAt: '2020-01-01T00:00:00.000Z', items: { 'person.address': env({ lines: ['1 Old Street'] }) } }));
});

test('checkRegistryAnswer: anything else is withheld whole (response_not_allowed)', () => {
  const read = parseRegistryRead('/P-000000001-X', 'items=person.givenName');
  const good = { id: 'P-000000001-X', asAt: TODAY, knownAt: null, items: { 'person.givenName': env('Alice') } };
  const cases: [string, ReturnType<typeof answer>][] = [
    ['a field beside items', answer({ ...good, leak: { 'person.birthDate': '1990-04-12' } })],
    ['an item not asked for', answer({ ...good, items: { ...good.items, 'person.birthDate': env('1990-04-12') } })],
    ['an item missing', answer({ ...good, items: {} })],
    ['a key beside the envelope', answer({ ...good, items: { 'person.givenName': { ...env('Alice'), birthDate: '1990-04-12' } } })],
    ['another record', answer({ ...good, id: 'P-000000002-8' })],
    ['another date', answer({ ...good, asAt: '2016-01-01' })],
    ['a time not asked for', answer({ ...good, knownAt: '2020-01-01T00:00:00.000Z' })],
    ['another source', answer({ ...good, items: { 'person.givenName': { ...env('Alice'), source: 'UK/GOV/DWP/benefits' } } })],
    ['not JSON', { status: 200, contentType: 'application/json', body: Buffer.from('Alice, 1990-04-12') }],
    ['another media type', answer(good, 200, 'text/html')],
    ['an array', answer([good])],
    ['a redirect', answer(good, 302)],
    ['a server error', answer({ type: 'internal_error', message: 'x', detail: {} }, 500)],
    ['an undocumented refusal', answer({ type: 'conflict', message: 'x', detail: {} }, 409)],
    ['a refusal with a status not its own', answer({ type: 'unknown_subject', message: 'x', detail: {} }, 400)],
    ['a refusal carrying data', answer({ type: 'unknown_subject', message: 'x', detail: { field: 'params.id', birthDate: '1990-04-12' } }, 404)],
    ['a refusal with a long message', answer({ type: 'unknown_subject', message: 'x'.repeat(501), detail: {} }, 404)],
  ];
  for (const [what, a] of cases) expectError(() => checkRegistryAnswer(read, P, TODAY, a), 'response_not_allowed', undefined, what);
  expectError(() => checkRegistryAnswer(parseRegistryRead('/x/exists', ''), P, TODAY, answer({ exists: true, person: 'Alice' })), 'response_not_allowed');
});
