/**
 * @module catalogue/agreements.test
 * The register of data-sharing agreements: the shipped file, queries by date, and bad files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CATALOGUE_FILE, loadCatalogue } from './catalogue.ts';
import { DEFAULT_AGREEMENTS_FILE, loadAgreements, parseAgreements } from './agreements.ts';
import { expectError, problemsOf, tempFile } from './test-helpers.ts';

const catalogue = loadCatalogue(DEFAULT_CATALOGUE_FILE);
const register = loadAgreements(DEFAULT_AGREEMENTS_FILE, catalogue);

test('the shipped register loads, with the demo cases the other parts rely on', () => {
  const ids = register.list().map((a) => a.id);
  assert.deepEqual(ids, [
    'leeds-parking-population',
    'leeds-parking-addresses',
    'leeds-parking-dvla-keeper-2021',
    'leeds-parking-blue-badge',
    'dwp-benefits-population',
    'dwp-benefits-residence-history',
    'dwp-benefits-companies',
    'portal-tracker-population',
    'leeds-parking-changes',
    'dwp-benefits-changes',
    'portal-report-change',
    'portal-identity-match',
    'portal-own-data-population',
    'portal-own-data-addresses',
    'portal-own-data-companies',
    'portal-address-search',
    'portal-consents',
    'portal-previews',
    'leeds-parking-senior-concession',
  ]);
  const parking = register.get('leeds-parking-population');
  assert.deepEqual(parking?.items, ['person.givenName', 'person.familyName', 'person.address']);
  assert.equal(parking?.purpose.id, 'resident-parking-permit');
  assert.equal(parking?.consentRequired, false);
  assert.equal(parking?.previewRequired, false);
  assert.ok(register.list().some((a) => a.validUntil < '2025-01-01'), 'one agreement has expired');
  assert.ok(register.list().some((a) => a.consentRequired), 'one needs consent');
  assert.ok(register.list().some((a) => a.previewRequired), 'one needs a preview');
  for (const a of register.list()) {
    assert.ok(a.validFrom <= a.validUntil);
    for (const i of a.items) assert.equal(catalogue.get(i)?.owner, a.provider, `${a.id}: ${i}`);
  }
  assert.deepEqual(register.get('dwp-benefits-companies')?.items, ['business.name', 'business.status', 'business.registeredAddress', 'business.officers']);
  assert.equal(register.get('nope'), undefined);
});

test('inForce is inclusive at both ends', () => {
  const expired = 'leeds-parking-dvla-keeper-2021';
  assert.ok(register.inForce('2024-03-31').some((a) => a.id === expired));
  assert.ok(!register.inForce('2024-04-01').some((a) => a.id === expired));
  assert.ok(!register.inForce('2021-03-31').some((a) => a.id === expired));
  assert.ok(register.inForce('2021-04-01').some((a) => a.id === expired));
  assert.deepEqual(register.inForce('2020-01-01'), []);
  expectError(() => register.inForce('2024-02-30'), 'invalid_date');
});

test('forClientAndProvider and findCovering', () => {
  const found = register.forClientAndProvider('UK/GOV/DWP/benefits', 'UK/GOV/GRO/population', '2025-06-01').map((a) => a.id);
  assert.deepEqual(found, ['dwp-benefits-population', 'dwp-benefits-residence-history', 'dwp-benefits-changes']);
  // Before the residence-history agreement started.
  assert.deepEqual(
    register.forClientAndProvider('UK/GOV/DWP/benefits', 'UK/GOV/GRO/population', '2024-01-01').map((a) => a.id),
    ['dwp-benefits-population'],
  );
  const q = { client: 'UK/GOV/DWP/benefits', provider: 'UK/GOV/GRO/population', date: '2025-06-01' };
  assert.equal(register.findCovering({ ...q, items: ['person.birthDate', 'person.address'] })?.id, 'dwp-benefits-population');
  assert.equal(register.findCovering({ ...q, items: ['person.nationality'] })?.id, 'dwp-benefits-residence-history');
  // No one agreement covers items from two agreements.
  assert.equal(register.findCovering({ ...q, items: ['person.birthDate', 'person.nationality'] }), undefined);
  assert.equal(register.findCovering({ ...q, items: ['person.birthDate'], purposeId: 'benefit-entitlement' })?.id, 'dwp-benefits-population');
  assert.equal(register.findCovering({ ...q, items: ['person.birthDate'], purposeId: 'habitual-residence-test' }), undefined);
  assert.equal(register.findCovering({ ...q, items: ['person.nationalId'] }), undefined);
  // The expired DVLA agreement covers nothing today.
  const dvla = { client: 'UK/MUN/LEEDS/parking', provider: 'UK/GOV/DVLA/vehicles', items: ['vehicle.registrationNumber'] };
  assert.equal(register.findCovering({ ...dvla, date: '2025-06-01' }), undefined);
  assert.equal(register.findCovering({ ...dvla, date: '2023-06-01' })?.id, 'leeds-parking-dvla-keeper-2021');
  // A member-level client (X-Road allows one) has no agreements here; a malformed id is refused.
  assert.deepEqual(register.forClientAndProvider('UK/GOV/DWP', 'UK/GOV/GRO/population', '2025-06-01'), []);
  expectError(() => register.forClientAndProvider('UK/GOV', 'UK/GOV/GRO/population', '2025-06-01'), 'invalid_identifier');
});

function agreement(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'a-one',
    client: 'UK/MUN/LEEDS/parking',
    provider: 'UK/GOV/GRO/population',
    items: ['person.givenName'],
    purpose: { id: 'p', description: 'a purpose' },
    legalBasis: 'synthetic',
    validFrom: '2024-01-01',
    validUntil: '2026-01-01',
    ...over,
  };
}

test('an item the provider does not master is refused, naming the agreement, the item and its real owner', () => {
  const file = tempFile(`agreements:
  - id: leeds-dob
    client: UK/MUN/LEEDS/parking
    provider: UK/GOV/GEOPLACE/addresses
    items:
      - address.postcode
      - person.birthDate
    purpose: { id: x, description: y }
    legalBasis: synthetic
    validFrom: 2024-01-01
    validUntil: 2026-01-01
`);
  const e = expectError(() => loadAgreements(file, catalogue), 'invalid_file');
  assert.equal(e.detail.file, file);
  assert.equal(e.detail.field, 'agreements[0].items[1]');
  assert.equal(e.detail.line, 7);
  assert.match(e.message, /"leeds-dob"/);
  assert.match(e.message, /person\.birthDate/);
  assert.match(e.message, /its owner is UK\/GOV\/GRO\/population/);
});

test('an unknown item is refused', () => {
  const e = expectError(() => parseAgreements({ agreements: [agreement({ items: ['person.shoeSize'] })] }, 'a.yaml', catalogue), 'invalid_file');
  assert.equal(e.detail.field, 'agreements[0].items[0]');
  assert.match(e.message, /"person\.shoeSize", which is not an item of the catalogue/);
});

test('validUntil before validFrom is refused', () => {
  const e = expectError(() => parseAgreements({ agreements: [agreement({ validFrom: '2025-01-01', validUntil: '2024-12-31' })] }, 'a.yaml', catalogue), 'invalid_file');
  assert.equal(e.detail.field, 'agreements[0].validUntil');
  assert.match(e.message, /before validFrom 2025-01-01/);
  // One day is allowed: both ends are inclusive.
  const one = parseAgreements({ agreements: [agreement({ validFrom: '2025-01-01', validUntil: '2025-01-01' })] }, 'a.yaml', catalogue);
  assert.equal(one.inForce('2025-01-01').length, 1);
});

test('duplicates, typos, missing end dates, bad dates and empty item lists are all reported together', () => {
  const e = expectError(
    () =>
      parseAgreements(
        {
          agreements: [
            agreement(),
            agreement({ previewRequried: true }),
            agreement({ id: 'a-three', validUntil: undefined }),
            agreement({ id: 'a-four', validFrom: '2024-02-30', items: [] }),
            agreement({ id: 'a-five', client: 'UK/GOV/GRO/population', consentRequired: 'yes' }),
            agreement({ id: 'A Six', items: ['person.givenName', 'person.givenName'] }),
          ],
        },
        'a.yaml',
        catalogue,
      ),
    'invalid_file',
  );
  assert.deepEqual(
    problemsOf(e).map((p) => p.field),
    [
      'agreements[1].previewRequried',
      'agreements[1].id',
      'agreements[2].validUntil',
      'agreements[3].validFrom',
      'agreements[3].items',
      'agreements[4].provider',
      'agreements[4].consentRequired',
      'agreements[5].id',
      'agreements[5].items[1]',
    ],
  );
  assert.match(String(problemsOf(e)[1]?.message), /duplicate agreement id "a-one"/);
});

test('defaults: consent and preview are false unless set', () => {
  const r = parseAgreements({ agreements: [agreement({ consentRequired: true })] }, 'a.yaml', catalogue);
  assert.equal(r.get('a-one')?.consentRequired, true);
  assert.equal(r.get('a-one')?.previewRequired, false);
});
