/**
 * @module catalogue/catalogue.test
 * The catalogue loader: the shipped file, and each way a catalogue file can be wrong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CATALOGUE_FILE, loadCatalogue, parseCatalogue } from './catalogue.ts';
import { expectError, problemsOf, tempFile } from './test-helpers.ts';

const GOOD_ITEM = `
  - id: person.givenName
    label: Given name
    schema: { type: string }
    classification: personal
    owner: UK/GOV/GRO/population
`;

test('the shipped catalogue loads with exactly the agreed items and owners', () => {
  const c = loadCatalogue(DEFAULT_CATALOGUE_FILE);
  const byOwner = (o: string) => c.ownedBy(o).map((i) => i.id).sort();
  assert.deepEqual(byOwner('UK/GOV/GRO/population'), [
    'person.address',
    'person.birthDate',
    'person.deathDate',
    'person.familyName',
    'person.givenName',
    'person.nationalId',
    'person.nationality',
    'person.previousAddresses',
    'person.status',
    'person.usageRecords',
  ]);
  assert.deepEqual(byOwner('UK/GOV/GEOPLACE/addresses'), ['address.lines', 'address.location', 'address.postcode', 'address.town']);
  assert.deepEqual(byOwner('UK/GOV/CH/companies'), [
    'business.incorporationDate',
    'business.name',
    'business.officers',
    'business.registeredAddress',
    'business.status',
  ]);
  assert.deepEqual(byOwner('UK/GOV/DVLA/vehicles'), ['vehicle.keeper', 'vehicle.registrationNumber']);
  assert.deepEqual(byOwner('UK/GOV/DWP/disability'), ['person.disabilityStatus', 'person.disabilityUsageRecords']);
  assert.equal(c.list().length, 23);
  assert.equal(c.get('person.disabilityStatus')?.classification, 'special-category');
  assert.equal(c.get('business.officers')?.classification, 'personal');
  assert.equal(c.get('business.name')?.classification, 'public');
  assert.equal(c.get('address.postcode')?.classification, 'public');
  assert.ok(c.get('person.birthDate')?.synonyms.includes('DOB'));
});

test('shipped item schemas accept the agreed value shapes and refuse others', () => {
  const c = loadCatalogue(DEFAULT_CATALOGUE_FILE);
  const address = { addressId: 'A-123456789-1', lines: ['1 Park Row'], town: 'Leeds', postcode: 'LS1 5AB' };
  c.validateValue('person.nationalId', 'P-123456789-X', 'value');
  c.validateValue('person.address', address, 'value');
  c.validateValue('business.registeredAddress', address, 'value');
  c.validateValue('person.previousAddresses', [{ ...address, from: '2019-01-01', to: '2021-06-30' }], 'value');
  c.validateValue('person.status', 'deceased', 'value');
  c.validateValue('person.nationality', 'GB', 'value');
  c.validateValue('address.postcode', 'LS1 5AB', 'value');
  c.validateValue('address.location', { latitude: 53.8, longitude: -1.55 }, 'value');
  c.validateValue('business.officers', [{ personId: 'P-000000001-7', role: 'director', appointedOn: '2020-02-29' }], 'value');

  let e = expectError(() => c.validateValue('person.nationalId', 'P-12-3', 'body.value'), 'invalid_value');
  assert.equal(e.detail.field, 'body.value');
  assert.match(e.message, /must match pattern/);
  e = expectError(() => c.validateValue('person.address', { lines: ['x'] }, 'body.value'), 'invalid_value');
  assert.equal(e.detail.field, 'body.value.addressId');
  e = expectError(() => c.validateValue('person.birthDate', '2023-02-30', 'value'), 'invalid_value');
  assert.match(e.message, /format "date"/);
  e = expectError(() => c.validateValue('address.location', { latitude: 91, longitude: 0 }, 'value'), 'invalid_value');
  assert.equal(e.detail.field, 'value.latitude');
  e = expectError(() => c.validateValue('business.status', 'bankrupt', 'value'), 'invalid_value');
  e = expectError(() => c.validateValue('person.shoeSize', 42, 'body.item'), 'unknown_item');
  assert.equal(e.detail.field, 'body.item');
});

test('require names the field; ownedBy refuses a malformed subsystem id', () => {
  const c = loadCatalogue(DEFAULT_CATALOGUE_FILE);
  assert.equal(c.require('person.birthDate', 'x').label, 'Date of birth');
  const e = expectError(() => c.require('person.nope', 'query.items[2]'), 'unknown_item');
  assert.equal(e.detail.field, 'query.items[2]');
  assert.match(e.message, /person\.nope/);
  expectError(() => c.ownedBy('UK/GOV/GRO'), 'invalid_identifier');
});

test('a YAML syntax error is invalid_file with the file and the line', () => {
  const file = tempFile(`items:\n  - id: person.givenName\n    label: Given name\n    schema: { type: string\n    owner: UK/GOV/GRO/population\n`);
  const e = expectError(() => loadCatalogue(file), 'invalid_file');
  assert.equal(e.detail.file, file);
  assert.equal(typeof e.detail.line, 'number');
  assert.ok((e.detail.line ?? 0) >= 4, `line ${e.detail.line} points at or after the open brace`);
  assert.match(e.message, new RegExp(`${file}:\\d+`));
  const misindented = tempFile(`items:\n  - id: a.b\n    label: x\n   bad: - y\n`);
  const e2 = expectError(() => loadCatalogue(misindented), 'invalid_file');
  assert.equal(e2.detail.line, 4);
  assert.equal(e2.detail.field, '(document)');
});

test('an unknown key is refused, with its path and line', () => {
  const file = tempFile(`items:${GOOD_ITEM}  - id: person.familyName\n    label: Family name\n    synonim: [Surname]\n    schema: { type: string }\n    classification: personal\n    owner: UK/GOV/GRO/population\n`);
  const e = expectError(() => loadCatalogue(file), 'invalid_file');
  assert.equal(e.detail.field, 'items[1].synonim');
  assert.equal(e.detail.line, 9);
  assert.match(e.message, /unknown key "synonim"/);
  assert.match(String(e.detail.expected), /synonyms/);
});

test('one item with two owners is refused, naming both', () => {
  const file = tempFile(`items:${GOOD_ITEM}  - id: person.givenName\n    label: First name\n    schema: { type: string }\n    classification: personal\n    owner: UK/MUN/LEEDS/people\n`);
  const e = expectError(() => loadCatalogue(file), 'invalid_file');
  assert.equal(e.detail.field, 'items[1].owner');
  assert.match(e.message, /two owners/);
  assert.match(e.message, /UK\/GOV\/GRO\/population/);
  assert.match(e.message, /UK\/MUN\/LEEDS\/people/);
  assert.equal(e.detail.line, 11);
});

test('a duplicate id with the same owner is refused too', () => {
  const e = expectError(() => parseCatalogue({ items: [item(), item()] }, 'mem.yaml'), 'invalid_file');
  assert.equal(e.detail.field, 'items[1].id');
  assert.match(e.message, /duplicate item id "person.givenName"/);
  assert.equal(e.detail.file, 'mem.yaml');
});

test('a bad owner id, a bad classification and a bad item id are each named', () => {
  const e = expectError(
    () => parseCatalogue({ items: [item({ owner: 'UK/GOV/GRO' }), item({ id: 'person.b', classification: 'secret' }), item({ id: 'Person.Name' })] }, 'c.yaml'),
    'invalid_file',
  );
  // All problems are collected, not only the first.
  const fields = problemsOf(e).map((p) => p.field);
  assert.deepEqual(fields, ['items[0].owner', 'items[1].classification', 'items[2].id']);
  assert.equal(e.detail.field, 'items[0].owner');
  assert.match(String(problemsOf(e)[1]?.message), /"secret" is not a classification/);
});

test('an invalid JSON Schema is refused: bad type, unknown keyword, unknown format, not an object', () => {
  const e = expectError(
    () =>
      parseCatalogue(
        {
          items: [
            item({ id: 'a.one', schema: { type: 'strng' } }),
            item({ id: 'a.two', schema: { type: 'string', patern: '^x$' } }),
            item({ id: 'a.three', schema: { type: 'string', format: 'dat' } }),
            item({ id: 'a.four', schema: 'string' }),
          ],
        },
        'c.json',
      ),
    'invalid_file',
  );
  assert.deepEqual(
    problemsOf(e).map((p) => p.field),
    ['items[0].schema', 'items[1].schema', 'items[2].schema', 'items[3].schema'],
  );
  assert.match(e.message, /not a valid JSON Schema/);
});

test('missing required keys and a non-list items are reported', () => {
  let e = expectError(() => parseCatalogue({ items: [{ id: 'a.b', label: 'x' }] }, 'c.yaml'), 'invalid_file');
  assert.deepEqual(problemsOf(e).map((p) => p.field), ['items[0].schema', 'items[0].classification', 'items[0].owner']);
  e = expectError(() => parseCatalogue({ items: 'none' }, 'c.yaml'), 'invalid_file');
  assert.equal(e.detail.field, 'items');
  e = expectError(() => parseCatalogue({ item: [] }, 'c.yaml'), 'invalid_file');
  assert.deepEqual(problemsOf(e).map((p) => p.field), ['items', 'item']);
});

test('JSON files load; a JSON syntax error gives the line; other extensions are refused', () => {
  const json = tempFile(JSON.stringify({ items: [item()] }, null, 2), 'json');
  assert.equal(loadCatalogue(json).list().length, 1);
  const broken = tempFile('{\n  "items": [\n    {"id": "a.b",}\n  ]\n}\n', 'json');
  const e = expectError(() => loadCatalogue(broken), 'invalid_file');
  assert.equal(e.detail.file, broken);
  assert.equal(e.detail.line, 3);
  expectError(() => loadCatalogue(tempFile('items: []', 'txt')), 'invalid_file');
  const missing = expectError(() => loadCatalogue('/nonexistent/catalogue.yaml'), 'invalid_file');
  assert.match(missing.message, /ENOENT/);
});

test('synonyms default to an empty list and x- extension keys are allowed at the top', () => {
  const c = parseCatalogue({ 'x-shapes': { a: 1 }, items: [item()] }, 'c.yaml');
  assert.deepEqual(c.get('person.givenName')?.synonyms, []);
  assert.equal(c.get('person.givenName')?.description, undefined);
});

function item(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { id: 'person.givenName', label: 'Given name', schema: { type: 'string' }, classification: 'personal', owner: 'UK/GOV/GRO/population', ...over };
}
