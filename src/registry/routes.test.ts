/**
 * The registry over HTTP: status codes and JSON error bodies for every kind of bad input, and
 * that the OpenAPI description lists the routes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { freshStore } from '../../test/support/stores.ts';
import { loadCatalogue } from '../catalogue/catalogue.ts';
import { createRegistries, type Registries } from './registries.ts';
import { createRegistryServer } from './routes.ts';
import type { App } from '../core/http.ts';

const catalogue = loadCatalogue(new URL('../../config/catalogue.yaml', import.meta.url).pathname);
let dispose: () => Promise<void>;
let reg: Registries;
let app: App;
let person: string;

before(async () => {
  const h = await freshStore('sqlite');
  dispose = h.dispose;
  reg = createRegistries(h.store.db, catalogue);
  const a = await reg.addresses.register({ lines: ['4 Kirkgate'], town: 'Bradford', postcode: 'BD1 1QN' });
  person = (await reg.population.register({ givenName: 'Dana', familyName: 'Evans', birthDate: '1985-07-07', addressId: a.id })).id;
  app = await createRegistryServer(reg.population);
});
after(async () => {
  await app.close();
  await dispose();
});

test('GET a person returns enveloped items', async () => {
  const r = await app.inject({ method: 'GET', url: `/people/${person}?items=person.givenName,person.birthDate` });
  assert.equal(r.statusCode, 200);
  const body = r.json<{ items: Record<string, { value: unknown; source: string }> }>();
  assert.equal(body.items['person.givenName']!.value, 'Dana');
  assert.equal(body.items['person.birthDate']!.source, 'UK/GOV/GRO/population');
});

test('bad input gets a status and a JSON body naming the field', async () => {
  const cases: [string, number, string, string][] = [
    [`/people/${person}`, 400, 'invalid_request', 'querystring.items'],
    [`/people/${person}?items=person.nope`, 400, 'unknown_item', 'query.items'],
    [`/people/${person}?items=person.givenName&asAt=2020-13-01`, 400, 'invalid_date', 'query.asAt'],
    [`/people/P-000000001-0?items=person.givenName`, 400, 'invalid_identifier', 'params.id'],
    [`/people/P-000000001-X?items=person.givenName`, 404, 'unknown_subject', 'params.id'],
    [`/people/${encodeURIComponent('../../etc/passwd')}?items=person.givenName`, 400, 'invalid_identifier', 'params.id'],
  ];
  for (const [url, status, type, field] of cases) {
    const r = await app.inject({ method: 'GET', url });
    assert.equal(r.statusCode, status, url);
    const body = r.json<{ type: string; message: string; detail: { field: string } }>();
    assert.equal(body.type, type, url);
    assert.equal(body.detail.field, field, url);
    assert.ok(body.message.length > 0);
  }
});

test('writes: typed errors for bad bodies, 201 for a change', async () => {
  const notJson = await app.inject({ method: 'POST', url: `/people/${person}/changes`, headers: { 'content-type': 'application/json' }, payload: '{"type":' });
  assert.equal(notJson.statusCode, 400);
  assert.equal(notJson.json<{ type: string }>().type, 'invalid_request');
  const noType = await app.inject({ method: 'POST', url: `/people/${person}/changes`, payload: { effectiveDate: '2020-01-01' } });
  assert.equal(noType.statusCode, 400);
  assert.equal(noType.json<{ detail: { field: string } }>().detail.field, 'body.type');
  const badDate = await app.inject({ method: 'POST', url: `/people/${person}/changes`, payload: { type: 'name', givenName: 'Di', effectiveDate: '01/02/2020' } });
  assert.equal(badDate.statusCode, 400);
  assert.equal(badDate.json<{ detail: { field: string } }>().detail.field, 'body.effectiveDate');
  const big = await app.inject({ method: 'POST', url: `/people/${person}/changes`, payload: { type: 'name', givenName: 'x'.repeat(2_000_000), effectiveDate: '2020-01-01' } });
  assert.equal(big.statusCode, 413);
  assert.equal(big.json<{ type: string }>().type, 'payload_too_large');
  const ok = await app.inject({ method: 'POST', url: `/people/${person}/changes`, payload: { type: 'name', givenName: 'Di', effectiveDate: '2020-01-01' } });
  assert.equal(ok.statusCode, 201);
  const exists = await app.inject({ method: 'GET', url: `/people/${person}/exists` });
  assert.deepEqual(exists.json(), { exists: true });
});

test('change events carry their values as each change recorded them when asked; a bad values flag is refused by name', async () => {
  const first = await reg.addresses.register({ lines: ['1 First Street'], town: 'Bradford', postcode: 'BD1 1AA' });
  const second = await reg.addresses.register({ lines: ['2 Second Street'], town: 'Bradford', postcode: 'BD1 1AB' });
  const start = await reg.population.latestEvent();
  // Both on the same day: only what the register knew when each was recorded tells them apart.
  const today = new Date().toISOString().slice(0, 10);
  await reg.population.change(person, { type: 'move', addressId: first.id, effectiveDate: today });
  await reg.population.change(person, { type: 'move', addressId: second.id, effectiveDate: today });
  type Page = { events: { subject: string; items: string[]; values?: Record<string, { value: { lines: string[] }; source: string }> }[] };
  const withValues = (await app.inject({ method: 'GET', url: `/events?after=${start}&values=1` })).json<Page>();
  assert.equal(withValues.events.length, 2);
  // Read after both moves, each event still carries the address its own change recorded.
  assert.deepEqual(withValues.events.map((e) => e.values?.['person.address']?.value.lines), [['1 First Street'], ['2 Second Street']]);
  for (const e of withValues.events) {
    assert.deepEqual(Object.keys(e.values!).sort(), [...e.items].sort(), 'exactly the items the change wrote');
    assert.equal(e.values!['person.address']!.source, 'UK/GOV/GRO/population');
  }
  const without = (await app.inject({ method: 'GET', url: `/events?after=${start}` })).json<Page>();
  assert.equal(without.events.length, 2);
  assert.ok(without.events.every((e) => e.values === undefined), 'no values unless asked for');
  for (const bad of ['2', 'yes', '11']) {
    const r = await app.inject({ method: 'GET', url: `/events?after=${start}&values=${bad}` });
    assert.equal(r.statusCode, 400, bad);
    assert.equal(r.json<{ detail: { field: string } }>().detail.field.replace(/^querystring\./, 'query.'), 'query.values', bad);
  }
});

test('OpenAPI description lists the routes', async () => {
  const r = await app.inject({ method: 'GET', url: '/openapi.json' });
  const doc = r.json<{ openapi: string; paths: Record<string, unknown> }>();
  assert.equal(doc.openapi, '3.1.0');
  for (const p of ['/people/{id}', '/people/{id}/exists', '/people/{id}/changes', '/people/{id}/corrections', '/people/{id}/history', '/people']) {
    assert.ok(p in doc.paths, p);
  }
});
