/**
 * Registry behaviour on every engine: enveloped reads, typed refusals, bitemporal history,
 * changes and corrections, and that a failed write leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { sql } from 'kysely';
import { eachEngine } from '../../test/support/stores.ts';
import { loadCatalogue } from '../catalogue/catalogue.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { createRegistries, REGISTRY_IDS, type Registries } from './registries.ts';
import { makeId } from '../core/subjects.ts';
import type { Store } from '../store/db.ts';
import { readShape } from './facts.ts';
import { currentValueQuery } from './repository.ts';

const catalogue = loadCatalogue(new URL('../../config/catalogue.yaml', import.meta.url).pathname);

/** Fixed clock so dates in assertions do not depend on the day the test runs. */
let clock = new Date('2026-06-01T09:00:00.000Z');
const now = (): Date => clock;

async function rejectsWith(p: Promise<unknown>, type: string, field?: string): Promise<OnceOnlyError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof OnceOnlyError, `expected OnceOnlyError, got ${String(e)}`);
    assert.equal(e.type, type, e.message);
    if (field) assert.equal(e.detail.field, field);
    return e;
  }
  assert.fail(`expected ${type}`);
}

async function counts(store: Store): Promise<string> {
  const r = await sql<{ s: number; f: number; c: number }>`select (select count(*) from subject) as s, (select count(*) from fact) as f, (select count(*) from change) as c`.execute(store.db);
  const row = r.rows[0]!;
  return `${Number(row.s)}/${Number(row.f)}/${Number(row.c)}`;
}

eachEngine('registries', (getStore, engine) => {
  let reg: Registries;
  let home: string;
  let flat: string;
  let alice: string;

  before(async () => {
    clock = new Date('2026-06-01T09:00:00.000Z');
    reg = createRegistries(getStore().db, catalogue, { now });
    clock = new Date('2020-01-01T09:00:00.000Z');
    home = (await reg.addresses.register({ lines: ['1 Mill Lane'], town: 'Leeds', postcode: 'ls1 4ap', location: { latitude: 53.8, longitude: -1.55 } })).id;
    flat = (await reg.addresses.register({ lines: ['Flat 2', '9 Park Row'], town: 'Leeds', postcode: 'LS1 5HD' })).id;
    alice = (await reg.population.register({ givenName: 'Alice', familyName: 'Ashworth', birthDate: '1990-04-12', nationality: 'GB', addressId: home })).id;
    clock = new Date('2026-06-01T09:00:00.000Z');
  });

  test('a read returns only the items asked for, each in an envelope', async () => {
    const r = await reg.population.read(alice, 'person.givenName,person.familyName,person.birthDate,person.address,person.nationalId');
    assert.deepEqual(Object.keys(r.items).sort(), ['person.address', 'person.birthDate', 'person.familyName', 'person.givenName', 'person.nationalId']);
    assert.deepEqual(r.items['person.givenName'], { value: 'Alice', source: REGISTRY_IDS.population, lastUpdated: '2020-01-01T09:00:00.000Z', classification: 'personal' });
    assert.equal(r.items['person.nationalId']!.value, alice);
    assert.deepEqual(r.items['person.address']!.value, { addressId: home, lines: ['1 Mill Lane'], town: 'Leeds', postcode: 'LS1 4AP' });
    assert.equal(r.asAt, '2026-06-01');
  });

  test('an item the registry does not hold for the person is marked unavailable, not invented', async () => {
    const r = await reg.population.read(alice, ['person.deathDate', 'person.status']);
    assert.deepEqual(r.items['person.deathDate'], { value: null, source: REGISTRY_IDS.population, lastUpdated: null, classification: 'personal', unavailable: true, reason: 'not-held' });
    assert.equal(r.items['person.status']!.value, 'alive');
    const before = await reg.population.read(alice, ['person.givenName'], { asAt: '1980-01-01' });
    assert.equal(before.items['person.givenName']!.unavailable, true);
    assert.equal(before.items['person.givenName']!.reason, 'not-valid-at-date');
  });

  test('refusals are typed and name the field', async () => {
    await rejectsWith(reg.population.read(makeId('person', 999_999_998), 'person.givenName'), 'unknown_subject', 'params.id');
    const bad = alice.slice(0, -1) + (alice.endsWith('1') ? '2' : '1');
    const e = await rejectsWith(reg.population.read(bad, 'person.givenName'), 'invalid_identifier', 'params.id');
    assert.equal(e.detail['reason'], 'check-digit');
    await rejectsWith(reg.population.read('P-12', 'person.givenName'), 'invalid_identifier', 'params.id');
    await rejectsWith(reg.population.read(alice, 'person.shoeSize'), 'unknown_item', 'query.items');
    const other = await rejectsWith(reg.population.read(alice, 'address.postcode'), 'unknown_item', 'query.items');
    assert.equal(other.detail['owner'], REGISTRY_IDS.addresses);
    await rejectsWith(reg.population.read(alice, ''), 'invalid_request', 'query.items');
    await rejectsWith(reg.population.read(alice, 'person.givenName', { asAt: '2023-02-30' }), 'invalid_date', 'query.asAt');
    await rejectsWith(reg.population.read(alice, 'person.givenName', { asAt: 'yesterday' }), 'invalid_date', 'query.asAt');
    await rejectsWith(reg.population.read(alice, 'person.givenName', { knownAt: '2020-01-01' }), 'invalid_date', 'query.knownAt');
  });

  test('exists answers without releasing data', async () => {
    assert.deepEqual(await reg.population.exists(alice), { exists: true });
    assert.deepEqual(await reg.population.exists(makeId('person', 999_999_997)), { exists: false });
    await rejectsWith(reg.population.exists('nope'), 'invalid_identifier');
  });

  test('a move keeps history: read as at a date sees the address of that date', async () => {
    const res = await reg.population.change(alice, { type: 'move', addressId: flat, effectiveDate: '2024-09-01' });
    assert.deepEqual(res.items, ['person.address']);
    const then = await reg.population.read(alice, 'person.address', { asAt: '2024-08-31' });
    assert.equal((then.items['person.address']!.value as { addressId: string }).addressId, home);
    const nowR = await reg.population.read(alice, 'person.address,person.previousAddresses');
    assert.equal((nowR.items['person.address']!.value as { addressId: string }).addressId, flat);
    assert.deepEqual(nowR.items['person.previousAddresses']!.value, [
      { addressId: home, lines: ['1 Mill Lane'], town: 'Leeds', postcode: 'LS1 4AP', from: '2020-01-01', to: '2024-09-01' },
    ]);
    await rejectsWith(reg.population.change(alice, { type: 'move', addressId: flat, effectiveDate: '2025-01-01' }), 'invalid_change', 'body.addressId');
    await rejectsWith(reg.population.change(alice, { type: 'move', addressId: makeId('address', 123), effectiveDate: '2025-01-01' }), 'invalid_change', 'body.addressId');
    await rejectsWith(reg.population.change(alice, { type: 'move', addressId: home, effectiveDate: '2099-01-01' }), 'invalid_change', 'body.effectiveDate');
    await rejectsWith(reg.population.change(alice, { type: 'teleport' }), 'invalid_change', 'body.type');
    await rejectsWith(reg.population.change(alice, { type: '__proto__' }), 'invalid_change', 'body.type');
  });

  test('a correction is kept apart from changes and the old belief stays answerable', async () => {
    clock = new Date('2026-06-02T10:00:00.000Z');
    await reg.population.correct(alice, { item: 'person.givenName', value: 'Alicia', reason: 'typo at registration' });
    clock = new Date('2026-06-03T10:00:00.000Z');
    const r = await reg.population.read(alice, 'person.givenName', { asAt: '2021-01-01' });
    assert.equal(r.items['person.givenName']!.value, 'Alicia', 'a correction applies to the whole period');
    const known = await reg.population.read(alice, 'person.givenName', { asAt: '2021-01-01', knownAt: '2026-06-01T12:00:00Z' });
    assert.equal(known.items['person.givenName']!.value, 'Alice', 'what we believed before the correction');
    const h = await reg.population.history(alice, 'person.givenName');
    assert.deepEqual(h.facts.map((f) => [f.value, f.kind, f.supersededAt !== null]), [['Alice', 'initial', true], ['Alicia', 'correction', false]]);
    await rejectsWith(reg.population.correct(alice, { item: 'person.givenName', value: 42, reason: 'x' }), 'invalid_value', 'body.value');
    await rejectsWith(reg.population.correct(alice, { item: 'person.givenName', value: 'A' }), 'invalid_request', 'body.reason');
    await rejectsWith(reg.population.correct(alice, { item: 'person.previousAddresses', value: [], reason: 'x' }), 'invalid_change', 'body.item');
  });

  test('a name change and a death are recorded with their dates; a second death is a conflict', async () => {
    await reg.population.change(alice, { type: 'name', familyName: 'Brook', effectiveDate: '2025-05-05' });
    const r = await reg.population.read(alice, 'person.familyName', { asAt: '2025-05-04' });
    assert.equal(r.items['person.familyName']!.value, 'Ashworth');
    await rejectsWith(reg.population.change(alice, { type: 'name', effectiveDate: '2025-05-05' }), 'invalid_request', 'body.givenName');
    await rejectsWith(reg.population.change(alice, { type: 'death', deathDate: '1985-01-01' }), 'invalid_change', 'body.effectiveDate');
    await reg.population.change(alice, { type: 'death', deathDate: '2026-05-30' });
    const d = await reg.population.read(alice, 'person.status,person.deathDate');
    assert.equal(d.items['person.status']!.value, 'deceased');
    assert.equal(d.items['person.deathDate']!.value, '2026-05-30');
    const alive = await reg.population.read(alice, 'person.status', { asAt: '2026-05-29' });
    assert.equal(alive.items['person.status']!.value, 'alive');
    await rejectsWith(reg.population.change(alice, { type: 'death', deathDate: '2026-05-31' }), 'conflict');
    await rejectsWith(reg.population.change(alice, { type: 'move', addressId: home, effectiveDate: '2026-05-31' }), 'invalid_change', 'body.effectiveDate');
  });

  test('companies resolve their registered address and officers must be people', async () => {
    const bob = (await reg.population.register({ givenName: 'Bob', familyName: 'Carter', birthDate: '1970-02-02', addressId: flat })).id;
    const c = await reg.companies.register({ name: 'Carter Joinery Ltd', incorporationDate: '2001-03-03', registeredAddressId: home, officers: [{ personId: bob, role: 'director', appointedOn: '2001-03-03' }] });
    const r = await reg.companies.read(c.id, 'business.name,business.registeredAddress,business.officers,business.status');
    assert.equal((r.items['business.registeredAddress']!.value as { postcode: string }).postcode, 'LS1 4AP');
    assert.equal(r.items['business.officers']!.classification, 'personal');
    assert.equal(r.items['business.name']!.classification, 'public');
    await rejectsWith(reg.companies.register({ name: 'Ghost Ltd', incorporationDate: '2001-03-03', registeredAddressId: home, officers: [{ personId: makeId('person', 5), role: 'director' }] }), 'invalid_change', 'body.officers[0].personId');
  });

  test('a request that fails writes nothing', async () => {
    const before = await counts(getStore());
    await rejectsWith(reg.population.register({ givenName: 'Carl', familyName: 'Dunn', birthDate: '1990-01-01', addressId: makeId('address', 77) }), 'invalid_change', 'body.addressId');
    await rejectsWith(reg.population.register({ givenName: '', familyName: 'Dunn', birthDate: '1990-01-01', addressId: home }), 'invalid_request', 'body.givenName');
    await rejectsWith(reg.addresses.register({ lines: ['x'], town: 'Leeds', postcode: 'NOT A POSTCODE' }), 'invalid_value', 'body.postcode');
    assert.equal(await counts(getStore()), before);
  });

  test('a failure inside the transaction rolls back the facts already written', async () => {
    // Injected at the database: the journal insert, which runs after the fact rows, is refused.
    const store = getStore();
    if (engine === 'sqlite') {
      await sql`CREATE TRIGGER refuse_journal BEFORE INSERT ON change WHEN NEW.type = 'name' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`.execute(store.db);
    } else {
      await sql`CREATE FUNCTION refuse_journal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.type = 'name' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$`.execute(store.db);
      await sql`CREATE TRIGGER refuse_journal BEFORE INSERT ON change FOR EACH ROW EXECUTE FUNCTION refuse_journal()`.execute(store.db);
    }
    const carl = (await reg.population.register({ givenName: 'Carl', familyName: 'Dunn', birthDate: '1991-01-01', addressId: home })).id;
    const before = await counts(store);
    await assert.rejects(reg.population.change(carl, { type: 'name', givenName: 'Carlos', familyName: 'Dunne', effectiveDate: '2020-01-01' }), /injected failure/);
    assert.equal(await counts(store), before);
    const r = await reg.population.read(carl, 'person.givenName,person.familyName');
    assert.equal(r.items['person.givenName']!.value, 'Carl');
    assert.equal(r.items['person.familyName']!.value, 'Dunn');
    await sql`DROP TRIGGER refuse_journal${engine === 'postgres' ? sql` ON change` : sql``}`.execute(store.db);
  });

  test('every read shape, "as known at" included, seeks an index rather than scanning the facts', async () => {
    // Reads as known at an instant cannot use the partial index of current rows; before the
    // fact_history index (migration 0011) they scanned every fact of every register.
    await getStore().db.transaction().execute(async (trx) => {
      // PostgreSQL plans by statistics and may rightly scan a small table: with sequential scans
      // priced out, it still picks one only when no index can answer the query.
      if (engine === 'postgres') await sql`SET LOCAL enable_seqscan = off`.execute(trx);
      for (const n of [1, 3])
        for (const knownAt of [false, true]) {
          const q = readShape(trx, n, knownAt);
          const plan = await trx.executeQuery<Record<string, string>>({ ...q, sql: `EXPLAIN ${engine === 'sqlite' ? 'QUERY PLAN ' : ''}${q.sql}`, parameters: q.parameters.map(() => 'x') });
          const details = plan.rows.map((r) => r['detail'] ?? r['QUERY PLAN']).join('; ');
          const what = `${n} items, knownAt ${knownAt}: ${details}`;
          if (engine === 'sqlite') assert.match(details, /^SEARCH fact USING (COVERING )?INDEX fact_(current|history)/, what);
          else {
            assert.match(details, /Index (Only )?Scan using fact_(current|history)|Bitmap Index Scan on fact_(current|history)/, what);
            assert.doesNotMatch(details, /Seq Scan/, what);
          }
        }
    });
  });

  test('identity matching and address search seek their partial indexes (fact_birth_date, fact_postcode)', async () => {
    await getStore().db.transaction().execute(async (trx) => {
      // With statistics, PostgreSQL sees that one birth date or postcode is a small part of a
      // register; on a table it has never analysed every index looks the same to it.
      if (engine === 'postgres') await sql`ANALYZE fact`.execute(trx);
      if (engine === 'postgres') await sql`SET LOCAL enable_seqscan = off`.execute(trx);
      for (const [item, index] of [['person.birthDate', 'fact_birth_date'], ['address.postcode', 'fact_postcode']] as const) {
        const q = currentValueQuery(trx, 'UK/GOV/GRO/population', item, 'x', 10).compile();
        const plan = await trx.executeQuery<Record<string, string>>({ ...q, sql: `EXPLAIN ${engine === 'sqlite' ? 'QUERY PLAN ' : ''}${q.sql}`, parameters: q.parameters });
        const details = plan.rows.map((r) => r['detail'] ?? r['QUERY PLAN']).join('; ');
        if (engine === 'sqlite') assert.match(details, new RegExp(`SEARCH fact USING (COVERING )?INDEX ${index}`), `${item}: ${details}`);
        else assert.match(details, new RegExp(`(Index (Only )?Scan using|Bitmap Index Scan on) ${index}`), `${item}: ${details}`);
      }
    });
  });
});
