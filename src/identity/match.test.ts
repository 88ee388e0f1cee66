/**
 * Identity matching (issue 13): a signed-in identity is matched to the population register with
 * the linkage engine, and a wrong person is never the answer. Run against a generated register
 * in a real store: exact and damaged claims of known people, people the register does not know,
 * and look-alikes (same birth date, another person's name).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isOnceOnlyError } from '../core/errors.ts';
import { registerFromStore } from '../audit/register.ts';
import type { RegisterPerson } from '../audit/register.ts';
import { populate } from '../registry/populate.ts';
import { RegistryRepository } from '../registry/repository.ts';
import { openStore, type Store } from '../store/db.ts';
import { IdentityMatcher, parseClaim, type ClaimedIdentity } from './match.ts';

const dir = mkdtempSync(join(tmpdir(), 'onceonly-match-'));
let store: Store;
let matcher: IdentityMatcher;
let people: RegisterPerson[];

before(async () => {
  store = await openStore({ dataDir: dir });
  await populate(store, { people: 1500, seed: 7 });
  const repo = new RegistryRepository(store.db);
  people = (await registerFromStore(repo)).people.filter((p) => !p.deceased && p.address);
  matcher = new IdentityMatcher(repo);
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const claimOf = (p: RegisterPerson): ClaimedIdentity => ({ givenName: p.givenName, familyName: p.familyName, birthDate: p.birthDate, address: p.address });

describe('identity matching', () => {
  test('a known person\'s own identity matches them, and only them', async () => {
    for (const p of people.slice(0, 40)) {
      const d = await matcher.match(claimOf(p));
      assert.equal(d.outcome, 'matched', `${p.id}: ${JSON.stringify(d)}`);
      assert.equal(d.person, p.id);
      assert.ok(d.score! >= 0.99);
      assert.ok(d.fields.some((f) => f.field === 'dob' && f.agreed), JSON.stringify(d.fields));
    }
  });

  test('small differences a real identity carries still match: a typo in the given name, a lower-case postcode, no address', async () => {
    const p = people[3]!;
    const typo = p.givenName.length > 3 ? `${p.givenName.slice(0, 2)}${p.givenName[3]}${p.givenName[2]}${p.givenName.slice(4)}` : p.givenName;
    for (const claim of [{ ...claimOf(p), givenName: typo }, { ...claimOf(p), address: { ...p.address!, postcode: p.address!.postcode.toLowerCase() } }, { ...claimOf(p), address: null }]) {
      const d = await matcher.match(claim);
      assert.equal(d.outcome, 'matched', JSON.stringify({ claim, d }));
      assert.equal(d.person, p.id);
    }
  });

  test('someone the register does not know is not matched, and nobody is signed in as a look-alike', async () => {
    const p = people[5]!;
    // Another birth date: no candidate at all.
    assert.deepEqual((await matcher.match({ ...claimOf(p), birthDate: '1901-02-03' })).outcome, 'none');
    // Same birth date and address, another name entirely (a made-up person living there).
    const other = await matcher.match({ ...claimOf(p), givenName: 'Zebedee', familyName: 'Quartermaine' });
    assert.notEqual(other.outcome, 'matched', JSON.stringify(other));
    assert.equal(other.person, null);
    // Another person's name with this person's birth date: never either of them.
    const q = people.find((x) => x.birthDate !== p.birthDate && x.familyName !== p.familyName)!;
    const mixed = await matcher.match({ givenName: q.givenName, familyName: q.familyName, birthDate: p.birthDate, address: q.address });
    assert.equal(mixed.person, null, JSON.stringify(mixed));
  });

  test('a bad claim is refused field by field', () => {
    const refused = (body: unknown, field: string): void => {
      assert.throws(() => parseClaim(body), (e: unknown) => isOnceOnlyError(e) && e.type === 'invalid_request' && e.detail.field === field, JSON.stringify(body));
    };
    const ok = { givenName: 'Ann', familyName: 'Smith', birthDate: '1980-02-03' };
    assert.deepEqual(parseClaim(ok), { ...ok, address: null });
    refused({ ...ok, birthDate: '1980-02-30' }, 'body.birthDate');
    refused({ ...ok, birthDate: '03/02/1980' }, 'body.birthDate');
    refused({ ...ok, givenName: '' }, 'body.givenName');
    refused({ ...ok, givenName: 'x'.repeat(201) }, 'body.givenName');
    refused({ ...ok, familyName: 7 }, 'body.familyName');
    refused({ ...ok, person: 'P123' }, 'body.person');
    refused({ ...ok, address: { line: '1 High St', uprn: '1' } }, 'body.address.uprn');
    refused({ ...ok, address: 'High St' }, 'body.address');
    refused([], 'body');
  });
});
