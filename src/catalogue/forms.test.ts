/**
 * @module catalogue/forms.test
 * The duplicate-collection check on the example forms, the label matcher, and bad form files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CATALOGUE_FILE, loadCatalogue } from './catalogue.ts';
import { DEFAULT_AGREEMENTS_FILE, loadAgreements } from './agreements.ts';
import { checkForm, loadForm, matchLabel, parseForm, tokens, type FormReport } from './forms.ts';
import { expectError, problemsOf, tempFile } from './test-helpers.ts';

const catalogue = loadCatalogue(DEFAULT_CATALOGUE_FILE);
const agreements = loadAgreements(DEFAULT_AGREEMENTS_FILE, catalogue);
const example = (name: string) => fileURLToPath(new URL(`../../examples/forms/${name}.yaml`, import.meta.url));
const DAY = '2025-06-01';

/** questionId -> [item, certainty, agreement] for a compact comparison. */
function summary(r: FormReport): Record<string, [string, string, string | null]> {
  return Object.fromEntries(r.findings.map((f) => [f.questionId, [f.item, f.certainty, f.agreement]]));
}

test('the resident parking form is flagged, explicit and probable, with the agreements that allow re-use', () => {
  const form = loadForm(example('resident-parking-permit'), catalogue);
  const r = checkForm(form, catalogue, agreements, DAY);
  assert.equal(r.ok, false);
  assert.equal(r.service, 'UK/MUN/LEEDS/parking');
  assert.equal(r.questions, 8);
  assert.deepEqual(summary(r), {
    'first-name': ['person.givenName', 'explicit', 'leeds-parking-population'],
    surname: ['person.familyName', 'explicit', 'leeds-parking-population'],
    'date-of-birth': ['person.birthDate', 'probably', 'leeds-parking-senior-concession'],
    'home-address': ['person.address', 'explicit', 'leeds-parking-population'],
    postcode: ['address.postcode', 'probably', 'leeds-parking-addresses'],
    'vehicle-registration': ['vehicle.registrationNumber', 'probably', null],
  });
  const vehicle = r.findings.find((f) => f.questionId === 'vehicle-registration');
  assert.equal(vehicle?.owner, 'UK/GOV/DVLA/vehicles');
  assert.match(String(vehicle?.advice), /leeds-parking-dvla-keeper-2021 covered it from 2021-04-01 to 2024-03-31/);
  const dob = r.findings.find((f) => f.questionId === 'date-of-birth');
  assert.equal(dob?.matched, 'Date of birth');
  assert.match(String(dob?.advice), /item: person\.birthDate/);
  assert.match(String(r.findings[0]?.advice), /Do not ask.*leeds-parking-population/);
});

test('on a day the DVLA agreement was in force, the vehicle question could re-use it', () => {
  const r = checkForm(loadForm(example('resident-parking-permit'), catalogue), catalogue, agreements, '2023-06-01');
  assert.equal(summary(r)['vehicle-registration']?.[2], 'leeds-parking-dvla-keeper-2021');
});

test('the benefit application is flagged, including special-category data; bank and income pass', () => {
  const r = checkForm(loadForm(example('benefit-application'), catalogue), catalogue, agreements, DAY);
  assert.equal(r.ok, false);
  assert.deepEqual(summary(r), {
    'given-names': ['person.givenName', 'probably', 'dwp-benefits-population'],
    'family-name': ['person.familyName', 'probably', 'dwp-benefits-population'],
    dob: ['person.birthDate', 'explicit', 'dwp-benefits-population'],
    'national-id': ['person.nationalId', 'explicit', null],
    address: ['person.address', 'probably', 'dwp-benefits-population'],
    'previous-addresses': ['person.previousAddresses', 'probably', 'dwp-benefits-residence-history'],
    nationality: ['person.nationality', 'explicit', 'dwp-benefits-residence-history'],
    disability: ['person.disabilityStatus', 'probably', null],
  });
  const disability = r.findings.find((f) => f.questionId === 'disability');
  assert.equal(disability?.classification, 'special-category');
  assert.match(String(disability?.advice), /Art\. 9/);
  assert.match(String(r.findings.find((f) => f.questionId === 'nationality')?.advice), /previews the data/);
});

test('the contact preferences form passes', () => {
  const r = checkForm(loadForm(example('contact-preferences'), catalogue), catalogue, agreements, DAY);
  assert.equal(r.ok, true);
  assert.deepEqual(r.findings, []);
  assert.equal(r.questions, 4);
});

test('a form of the registry that masters an item may ask for it: that is where it is collected once', () => {
  const form = parseForm(
    { id: 'register-birth', title: 'Register a birth', service: 'UK/GOV/GRO/population', questions: [{ id: 'dob', label: 'Date of birth', item: 'person.birthDate' }, { id: 'pc', label: 'Postcode' }] },
    'mem',
    catalogue,
  );
  const r = checkForm(form, catalogue, agreements, DAY);
  assert.deepEqual(summary(r), { pc: ['address.postcode', 'probably', null] });
});

test('"Email address" and its kin are never taken for a home address', () => {
  for (const label of ['Email address', 'E-mail address', 'Your email address:', 'EMAIL ADDRESS', 'Web address', 'Correspondence address', 'Email addresses']) {
    assert.equal(matchLabel(label, catalogue), undefined, label);
  }
  assert.equal(matchLabel('Home address and email address', catalogue)?.item.id, 'person.address');
  assert.equal(matchLabel('Email address and date of birth', catalogue)?.item.id, 'person.birthDate');
});

test('the matcher: whole phrases, normalised, longest first', () => {
  const m = (label: string) => matchLabel(label, catalogue)?.item.id;
  assert.equal(m('What is your date of birth?'), 'person.birthDate');
  assert.equal(m('D.O.B.'), 'person.birthDate');
  assert.equal(m('FORENAME(S)'), 'person.givenName');
  assert.equal(m('Forenames'), 'person.givenName');
  assert.equal(m('Surname'), 'person.familyName');
  assert.equal(m('Previous addresses'), 'person.previousAddresses');
  assert.equal(m('Address line 1'), 'address.lines');
  assert.equal(m('Your address'), 'person.address');
  assert.equal(m('Registered office address of your employer'), 'business.registeredAddress');
  assert.equal(m('Name of your employer'), 'business.name');
  assert.equal(m('Number plate'), 'vehicle.registrationNumber');
  // Not whole tokens, or nothing mastered.
  assert.equal(m('Addressee'), undefined);
  assert.equal(m('Full name'), undefined);
  assert.equal(m('Marital status'), undefined);
  assert.equal(m('Preferred contact time'), undefined);
  assert.equal(m('Name of your bank'), undefined);
  assert.equal(m(''), undefined);
  assert.deepEqual(tokens("Forename(s) — Résumé's Addresses"), ['forename', 'resume', 'address']);
});

test('a question naming an unknown item is refused, naming the question', () => {
  const file = tempFile(`id: f
title: A form
service: UK/MUN/LEEDS/parking
questions:
  - id: contact-email
    label: Email
    item: person.email
`);
  const e = expectError(() => loadForm(file, catalogue), 'invalid_file');
  assert.equal(e.detail.field, 'questions[0].item');
  assert.equal(e.detail.file, file);
  assert.equal(e.detail.line, 7);
  assert.match(e.message, /question "contact-email" names "person\.email"/);
});

test('malformed forms report every problem', () => {
  const e = expectError(
    () =>
      parseForm(
        {
          id: 'Bad Id',
          title: '',
          service: 'LEEDS/parking',
          colour: 'red',
          questions: [{ id: 'a', label: 'x' }, { id: 'a', label: 'y' }, { label: 'z', item: 7 }, 'q'],
        },
        'f.json',
        catalogue,
      ),
    'invalid_file',
  );
  assert.deepEqual(
    problemsOf(e).map((p) => p.field),
    ['colour', 'id', 'title', 'service', 'questions[1].id', 'questions[2].id', 'questions[2].item', 'questions[3]'],
  );
  expectError(() => parseForm([], 'f.json', catalogue), 'invalid_file');
  const empty = expectError(() => parseForm({ id: 'f', title: 't', service: 'UK/MUN/LEEDS/parking', questions: [] }, 'f.json', catalogue), 'invalid_file');
  assert.equal(empty.detail.field, 'questions');
});

test('checkForm refuses a malformed date', () => {
  const form = loadForm(example('contact-preferences'), catalogue);
  expectError(() => checkForm(form, catalogue, agreements, '01/06/2025'), 'invalid_date');
});
