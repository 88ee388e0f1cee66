/**
 * The address register's postcode search and the business register's officer search (issue 13),
 * over a generated register in a real store through the registries' HTTP apps: what a person
 * types finds the addresses at that postcode; a person who is an officer finds their companies,
 * and nobody else's appointments come back; bad input is refused by field.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadCatalogue } from '../catalogue/catalogue.ts';
import { isOnceOnlyError } from '../core/errors.ts';
import { packagePath } from '../core/files.ts';
import type { App } from '../core/http.ts';
import { openStore, type Store } from '../store/db.ts';
import { populate } from './populate.ts';
import { createRegistries, REGISTRY_IDS } from './registries.ts';
import { RegistryRepository } from './repository.ts';
import { createRegistryServer } from './routes.ts';
import { addressSearchRoutes, normalisePostcode, officerSearchRoutes } from './search.ts';

const dir = mkdtempSync(join(tmpdir(), 'onceonly-search-'));
let store: Store;
let addresses: App;
let companies: App;

before(async () => {
  store = await openStore({ dataDir: dir });
  await populate(store, { people: 1000, seed: 3 });
  const regs = createRegistries(store.db, loadCatalogue(packagePath('config/catalogue.yaml')));
  const repo = new RegistryRepository(store.db);
  addresses = await createRegistryServer(regs.addresses);
  addressSearchRoutes(addresses, regs.addresses, repo);
  companies = await createRegistryServer(regs.companies);
  officerSearchRoutes(companies, regs.companies, repo);
});
after(async () => {
  await addresses.close();
  await companies.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('postcodes are normalised as typed, and what is not a postcode is refused', () => {
  assert.equal(normalisePostcode('ls11ur'), 'LS1 1UR');
  assert.equal(normalisePostcode(' sw1a  2aa '), 'SW1A 2AA');
  for (const bad of ['', 'LS1', 'NOTAPOSTCODE', '12345', 'LS1 1UR%']) {
    assert.throws(() => normalisePostcode(bad), (e: unknown) => isOnceOnlyError(e) && e.detail.field === 'query.postcode', bad);
  }
});

test('the addresses at a postcode, found however it is typed', async () => {
  const row = await store.db.selectFrom('fact').select(['subject', 'value']).where('registry', '=', REGISTRY_IDS.addresses).where('item', '=', 'address.postcode').where('superseded_at', 'is', null).orderBy('subject').limit(1).executeTakeFirstOrThrow();
  const postcode = JSON.parse(row.value) as string;
  const res = await addresses.inject({ method: 'GET', url: `/address-search?postcode=${encodeURIComponent(postcode.replace(' ', '').toLowerCase())}` });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json<{ postcode: string; addresses: { id: string; lines: string[] }[] }>();
  assert.equal(body.postcode, postcode);
  assert.ok(body.addresses.some((a) => a.id === row.subject && a.lines.length > 0));
  assert.equal((await addresses.inject({ method: 'GET', url: '/address-search?postcode=ZZ' })).statusCode, 422);
  assert.equal((await addresses.inject({ method: 'GET', url: '/address-search?postcode=LS11UR&other=1' })).statusCode, 400);
});

test('a person\'s company appointments, and only theirs', async () => {
  const row = await store.db.selectFrom('fact').select(['subject', 'value']).where('registry', '=', REGISTRY_IDS.companies).where('item', '=', 'business.officers').where('superseded_at', 'is', null).orderBy('subject').limit(1).executeTakeFirstOrThrow();
  const officer = (JSON.parse(row.value) as { personId: string }[])[0]!.personId;
  const res = await companies.inject({ method: 'GET', url: `/officer-appointments?person=${officer}` });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json<{ person: string; appointments: { id: string; name: string; role: string }[] }>();
  assert.equal(body.person, officer);
  assert.ok(body.appointments.some((a) => a.id === row.subject && a.name.length > 0));
  // Every appointment returned really names this person as an officer.
  for (const a of body.appointments) {
    const f = await store.db.selectFrom('fact').select('value').where('registry', '=', REGISTRY_IDS.companies).where('subject', '=', a.id).where('item', '=', 'business.officers').where('superseded_at', 'is', null).where('valid_to', 'is', null).executeTakeFirstOrThrow();
    assert.ok((JSON.parse(f.value) as { personId: string }[]).some((o) => o.personId === officer));
  }
  // A wildcard or a malformed id is refused, not matched against everyone.
  for (const bad of ['%', 'P-%', 'P-000000001-0%22']) assert.equal((await companies.inject({ method: 'GET', url: `/officer-appointments?person=${bad}` })).statusCode, 400, bad);
});
