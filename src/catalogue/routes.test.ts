/**
 * @module catalogue/routes.test
 * The catalogue's HTTP routes, through Fastify's inject (no socket needed).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { App } from '../core/http.ts';
import { createCatalogueServer } from './routes.ts';

let app: App;
before(async () => {
  app = await createCatalogueServer();
});
after(async () => {
  await app.close();
});

const exampleForm = (name: string): unknown =>
  parse(readFileSync(fileURLToPath(new URL(`../../examples/forms/${name}.yaml`, import.meta.url)), 'utf8'));

test('GET /catalogue/items lists every item with its schema and owner', async () => {
  const res = await app.inject({ method: 'GET', url: '/catalogue/items' });
  assert.equal(res.statusCode, 200);
  const items = res.json<{ id: string; owner: string; schema: Record<string, unknown> }[]>();
  assert.equal(items.length, 23);
  const dob = items.find((i) => i.id === 'person.birthDate');
  assert.equal(dob?.owner, 'UK/GOV/GRO/population');
  assert.deepEqual(dob?.schema, { type: 'string', format: 'date' });
});

test('GET /catalogue/items/:id returns one item; an unknown id is a typed 404', async () => {
  const ok = await app.inject({ method: 'GET', url: '/catalogue/items/person.address' });
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json<{ label: string }>().label, 'Home address');
  const res = await app.inject({ method: 'GET', url: '/catalogue/items/person.shoeSize' });
  assert.equal(res.statusCode, 404);
  assert.match(String(res.headers['content-type']), /application\/json/);
  const body = res.json<{ type: string; message: string; detail: { field: string } }>();
  assert.equal(body.type, 'not_found');
  assert.equal(body.detail.field, 'params.id');
  assert.match(body.message, /person\.shoeSize/);
});

test('GET /agreements filters by client, provider and date in force', async () => {
  const all = await app.inject({ method: 'GET', url: '/agreements' });
  assert.equal(all.json<unknown[]>().length, 19);
  const res = await app.inject({ method: 'GET', url: '/agreements?client=UK/MUN/LEEDS/parking&inForce=2025-06-01' });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(
    res.json<{ id: string }[]>().map((a) => a.id),
    ['leeds-parking-population', 'leeds-parking-addresses', 'leeds-parking-blue-badge', 'leeds-parking-changes', 'leeds-parking-senior-concession'],
  );
  const byProvider = await app.inject({ method: 'GET', url: '/agreements?provider=UK%2FGOV%2FCH%2Fcompanies' });
  assert.deepEqual(byProvider.json<{ id: string }[]>().map((a) => a.id), ['dwp-benefits-companies', 'portal-own-data-companies']);
  const bad = await app.inject({ method: 'GET', url: '/agreements?inForce=2025-02-30' });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json<{ type: string }>().type, 'invalid_date');
  const badId = await app.inject({ method: 'GET', url: '/agreements?client=UK/GOV' });
  assert.equal(badId.json<{ type: string; detail: { field: string } }>().detail.field, 'query.client');
});

test('GET /agreements/:id', async () => {
  const res = await app.inject({ method: 'GET', url: '/agreements/leeds-parking-blue-badge' });
  assert.equal(res.statusCode, 200);
  const a = res.json<{ consentRequired: boolean; items: string[] }>();
  assert.equal(a.consentRequired, true);
  assert.deepEqual(a.items, ['person.disabilityStatus']);
  const missing = await app.inject({ method: 'GET', url: '/agreements/nope' });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json<{ type: string }>().type, 'not_found');
});

test('POST /catalogue/check returns the report', async () => {
  const res = await app.inject({ method: 'POST', url: '/catalogue/check?date=2025-06-01', payload: exampleForm('resident-parking-permit') as object });
  assert.equal(res.statusCode, 200);
  const report = res.json<{ ok: boolean; date: string; findings: { questionId: string; agreement: string | null }[] }>();
  assert.equal(report.ok, false);
  assert.equal(report.date, '2025-06-01');
  assert.deepEqual(
    report.findings.map((f) => f.questionId),
    ['first-name', 'surname', 'date-of-birth', 'home-address', 'postcode', 'vehicle-registration'],
  );
  assert.equal(report.findings.find((f) => f.questionId === 'vehicle-registration')?.agreement, null);
  const clean = await app.inject({ method: 'POST', url: '/catalogue/check', payload: exampleForm('contact-preferences') as object });
  assert.equal(clean.statusCode, 200);
  assert.equal(clean.json<{ ok: boolean }>().ok, true);
});

test('POST /catalogue/check with a malformed form is a 422 naming the field', async () => {
  const form = exampleForm('resident-parking-permit') as { questions: Record<string, unknown>[] };
  form.questions[2] = { id: 'dob', label: 'Date of birth', item: 'person.dob' };
  const res = await app.inject({ method: 'POST', url: '/catalogue/check', payload: form });
  assert.equal(res.statusCode, 422);
  const body = res.json<{ type: string; detail: { field: string; file: string } }>();
  assert.equal(body.type, 'invalid_file');
  assert.equal(body.detail.field, 'questions[2].item');
  assert.equal(body.detail.file, 'request body');
  const notJson = await app.inject({ method: 'POST', url: '/catalogue/check', payload: '{"id":', headers: { 'content-type': 'application/json' } });
  assert.equal(notJson.statusCode, 400);
  const missing = await app.inject({ method: 'POST', url: '/catalogue/check', payload: { id: 'f', title: 't', service: 'UK/MUN/LEEDS/parking' } });
  assert.equal(missing.statusCode, 422);
  assert.equal(missing.json<{ detail: { field: string } }>().detail.field, 'questions');
});

test('/openapi.json lists the routes with their schemas', async () => {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  assert.equal(res.statusCode, 200);
  const doc = res.json<{ paths: Record<string, Record<string, { parameters?: { name: string }[]; requestBody?: unknown }>> }>();
  for (const path of ['/catalogue/items', '/catalogue/items/{id}', '/agreements', '/agreements/{id}']) assert.ok(doc.paths[path]?.['get'], path);
  assert.ok(doc.paths['/catalogue/check']?.['post']?.requestBody, 'check documents its body');
  assert.deepEqual(doc.paths['/agreements']?.['get']?.parameters?.map((p) => p.name).sort(), ['client', 'inForce', 'provider']);
});
