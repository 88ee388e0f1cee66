/**
 * @module registry/generate.test
 * Checks the synthetic population on the properties loaders and demos rely on: the ordering
 * contract, valid and unique identifiers, consistent histories, and distributions close to the
 * ONS figures the generator approximates. One 20,000-person stream is shared by most tests to
 * keep the suite fast.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { en_GB } from '@faker-js/faker';
import {
  generate,
  summarize,
  type GeneratedAddress,
  type GeneratedCompany,
  type GeneratedPerson,
  type GeneratedRecord,
} from './generate.ts';
import { isValidId } from '../core/subjects.ts';

const TODAY = '2026-01-01';
const UK_POSTCODE = /^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

const records: GeneratedRecord[] = [...generate({ people: 20_000, seed: 42 })];
const addresses = records.filter((r): r is GeneratedAddress => r.kind === 'address');
const people = records.filter((r): r is GeneratedPerson => r.kind === 'person');
const companies = records.filter((r): r is GeneratedCompany => r.kind === 'company');

/** The day someone turns `years` old, as ISO text (29 February births compare correctly as text). */
function birthday(birthDate: string, years: number): string {
  return `${String(Number(birthDate.slice(0, 4)) + years).padStart(4, '0')}${birthDate.slice(4)}`;
}

function ageOn(birthDate: string, day: string): number {
  const years = Number(day.slice(0, 4)) - Number(birthDate.slice(0, 4));
  return day.slice(5) < birthDate.slice(5) ? years - 1 : years;
}

function share(count: number, total: number): number {
  return count / total;
}

describe('generate: determinism and size', () => {
  it('gives a byte-identical stream for the same seed and options', () => {
    const a = JSON.stringify([...generate({ people: 3000, seed: 7 })]);
    const b = JSON.stringify([...generate({ people: 3000, seed: 7 })]);
    assert.equal(a, b);
  });

  it('gives a different stream for a different seed', () => {
    const a = JSON.stringify([...generate({ people: 500, seed: 7 })]);
    const b = JSON.stringify([...generate({ people: 500, seed: 8 })]);
    assert.notEqual(a, b);
  });

  it('defaults seed to 1 and today to 2026-01-01', () => {
    const a = JSON.stringify([...generate({ people: 300 })]);
    const b = JSON.stringify([...generate({ people: 300, seed: 1, today: TODAY })]);
    assert.equal(a, b);
  });

  it('yields exactly the number of people asked for', () => {
    assert.equal(people.length, 20_000);
    for (const n of [0, 1, 2, 7, 101]) {
      const got = [...generate({ people: n, seed: 3 })].filter((r) => r.kind === 'person').length;
      assert.equal(got, n, `people: ${n}`);
    }
    assert.deepEqual([...generate({ people: 0 })], []);
  });

  it('is lazy: taking the first records does not generate the rest', () => {
    const stream = generate({ people: 100_000_000 });
    const first = stream.next();
    assert.equal(first.done, false);
    stream.return(undefined);
  });

  it('rejects impossible options', () => {
    assert.throws(() => generate({ people: -1 }).next(), RangeError);
    assert.throws(() => generate({ people: 1.5 }).next(), RangeError);
    assert.throws(() => generate({ people: 10, seed: 0.5 }).next(), RangeError);
    assert.throws(() => generate({ people: 10, today: '2026-02-30' }).next(), RangeError);
    assert.throws(() => generate({ people: 10, companiesPerThousand: -1 }).next(), RangeError);
  });

  it('keeps every date on or before `today` when today is moved', () => {
    const today = '2012-06-30';
    for (const r of generate({ people: 2000, seed: 5, today })) {
      const dates =
        r.kind === 'address'
          ? [r.createdOn]
          : r.kind === 'person'
            ? [r.birthDate, ...(r.deathDate === undefined ? [] : [r.deathDate]), ...r.addresses.map((s) => s.from)]
            : [r.incorporationDate, ...r.officers.map((o) => o.appointedOn)];
      for (const d of dates) assert.ok(d <= today, `${r.id}: ${d} is after ${today}`);
    }
  });

  it('summarizes a stream', () => {
    const summary = summarize(records);
    assert.equal(summary.people, people.length);
    assert.equal(summary.addresses, addresses.length);
    assert.equal(summary.companies, companies.length);
    assert.equal(summary.deceased, people.filter((p) => p.deathDate !== undefined).length);
    assert.equal(summary.movers, people.filter((p) => p.addresses.length > 1).length);
    assert.equal(summary.nameChanges, people.filter((p) => p.names.length > 1).length);
  });
});

describe('generate: identifiers and ordering', () => {
  it('gives every record a valid identifier, unique within the stream', () => {
    const seen = new Set<string>();
    for (const r of records) {
      assert.ok(isValidId(r.kind, r.id), `${r.kind} id ${r.id}`);
      assert.ok(!seen.has(r.id), `duplicate ${r.id}`);
      seen.add(r.id);
    }
  });

  it('yields every address and person before any record that refers to it', () => {
    const seen = new Set<string>();
    for (const r of records) {
      if (r.kind === 'person') {
        for (const spell of r.addresses) assert.ok(seen.has(spell.addressId), `${r.id} lived at ${spell.addressId} before it was yielded`);
      } else if (r.kind === 'company') {
        assert.ok(seen.has(r.registeredAddressId), `${r.id} registered at ${r.registeredAddressId} before it was yielded`);
        for (const o of r.officers) assert.ok(seen.has(o.personId), `${r.id} names ${o.personId} before it was yielded`);
      }
      seen.add(r.id);
    }
  });
});

describe('generate: addresses', () => {
  it('uses well-formed UK postcodes in areas taken from Faker en_GB data', () => {
    const areas = new Set((en_GB.location?.postcode as string[]).map((p) => /^[A-Z]+/.exec(p)![0]));
    for (const a of addresses) {
      assert.match(a.postcode, UK_POSTCODE);
      assert.equal(a.postcode, a.postcode.toUpperCase());
      assert.equal(a.postcode.split(' ').length, 2, a.postcode);
      assert.ok(areas.has(/^[A-Z]+/.exec(a.postcode)![0]), a.postcode);
    }
  });

  it('places addresses on Great Britain, with lines, a town and a creation date', () => {
    for (const a of addresses) {
      assert.ok(a.location.latitude > 49.8 && a.location.latitude < 61, `${a.id} latitude ${a.location.latitude}`);
      assert.ok(a.location.longitude > -8.7 && a.location.longitude < 2, `${a.id} longitude ${a.location.longitude}`);
      assert.ok(a.lines.length >= 1 && a.lines.every((l) => l.length > 0), `${a.id} lines`);
      assert.ok(a.town.length > 0, `${a.id} town`);
      assert.match(a.createdOn, ISO_DATE);
      assert.ok(a.createdOn <= TODAY, `${a.id} created ${a.createdOn}`);
    }
  });

  it('registers each address before anyone lived there', () => {
    const createdOn = new Map(addresses.map((a) => [a.id, a.createdOn]));
    for (const p of people) {
      for (const s of p.addresses) assert.ok(createdOn.get(s.addressId)! <= s.from, `${p.id} at ${s.addressId} from ${s.from}`);
    }
  });
});

describe('generate: people', () => {
  it('keeps address histories contiguous, non-overlapping and within life', () => {
    for (const p of people) {
      const spells = p.addresses;
      assert.ok(spells.length >= 1 && spells.length <= 4, `${p.id} has ${spells.length} address spells`);
      assert.ok(spells[0]!.from >= p.birthDate, `${p.id} lived somewhere before birth`);
      if (p.nationality === 'GB') assert.equal(spells[0]!.from, p.birthDate, `${p.id} history starts at birth`);
      const end = p.deathDate ?? TODAY;
      for (let i = 0; i < spells.length; i++) {
        const s = spells[i]!;
        const last = i === spells.length - 1;
        assert.ok(s.from < end, `${p.id} spell from ${s.from} is not before ${end}`);
        if (last) assert.equal(s.to, null, `${p.id} last spell is open`);
        else {
          assert.ok(s.to !== null && s.from < s.to, `${p.id} spell ${s.from}..${String(s.to)}`);
          assert.equal(spells[i + 1]!.from, s.to, `${p.id} spells are contiguous`);
          assert.notEqual(spells[i + 1]!.addressId, s.addressId, `${p.id} moved to the same address`);
        }
      }
    }
  });

  it('keeps name histories contiguous from birth, ending in the current name', () => {
    for (const p of people) {
      const names = p.names;
      assert.equal(names[0]!.from, p.birthDate, `${p.id} names start at birth`);
      const last = names[names.length - 1]!;
      assert.equal(last.to, null, `${p.id} last name is open`);
      assert.equal(last.givenName, p.givenName, `${p.id} given name`);
      assert.equal(last.familyName, p.familyName, `${p.id} family name`);
      for (let i = 0; i + 1 < names.length; i++) {
        assert.equal(names[i]!.to, names[i + 1]!.from, `${p.id} names are contiguous`);
        assert.ok(names[i]!.from < names[i]!.to!, `${p.id} name spell is empty`);
        assert.ok(
          names[i]!.givenName !== names[i + 1]!.givenName || names[i]!.familyName !== names[i + 1]!.familyName,
          `${p.id} changed name to the same name`,
        );
      }
      if (names.length > 1) {
        assert.ok(names[1]!.from >= birthday(p.birthDate, 18), `${p.id} changed name as a child`);
        assert.ok(names[1]!.from < (p.deathDate ?? TODAY), `${p.id} changed name after death`);
      }
    }
  });

  it('dates deaths after birth and before today, mostly in old age', () => {
    const deceased = people.filter((p) => p.deathDate !== undefined);
    for (const p of deceased) {
      assert.match(p.deathDate!, ISO_DATE);
      assert.ok(p.deathDate! > p.birthDate && p.deathDate! < TODAY, `${p.id} ${p.birthDate}..${p.deathDate!}`);
    }
    const old = deceased.filter((p) => ageOn(p.birthDate, p.deathDate!) >= 65).length;
    assert.ok(share(old, deceased.length) > 0.6, `only ${old} of ${deceased.length} deaths at 65+`);
  });

  it('has an age structure close to the ONS mid-year estimates', () => {
    const alive = people.length;
    const under18 = people.filter((p) => ageOn(p.birthDate, TODAY) < 18).length;
    const over65 = people.filter((p) => ageOn(p.birthDate, TODAY) >= 65).length;
    assert.ok(share(under18, alive) >= 0.15 && share(under18, alive) <= 0.26, `under-18s ${share(under18, alive)}`);
    assert.ok(share(over65, alive) >= 0.14 && share(over65, alive) <= 0.24, `over-65s ${share(over65, alive)}`);
    assert.ok(people.every((p) => ageOn(p.birthDate, TODAY) <= 101 && p.birthDate < TODAY), 'birth dates out of range');
  });

  it('has plausible shares of movers, deaths, name changes and nationalities', () => {
    const s = summarize(records);
    const adults = people.filter((p) => ageOn(p.birthDate, TODAY) >= 18);
    const adultChanges = adults.filter((p) => p.names.length > 1).length;
    assert.ok(share(s.movers, s.people) >= 0.28 && share(s.movers, s.people) <= 0.42, `movers ${share(s.movers, s.people)}`);
    assert.ok(share(s.deceased, s.people) >= 0.005 && share(s.deceased, s.people) <= 0.016, `deceased ${share(s.deceased, s.people)}`);
    assert.ok(share(adultChanges, adults.length) >= 0.05 && share(adultChanges, adults.length) <= 0.12, `name changes ${share(adultChanges, adults.length)}`);
    assert.ok(people.every((p) => /^[A-Z]{2}$/.test(p.nationality)), 'nationality not alpha-2');
    const gb = people.filter((p) => p.nationality === 'GB').length;
    assert.ok(share(gb, people.length) >= 0.85 && share(gb, people.length) <= 0.97, `GB ${share(gb, people.length)}`);
    assert.ok(new Set(people.map((p) => p.nationality)).size >= 10, 'too few nationalities');
  });

  it('forms households of 1-6 that share an address, mostly a family name, and always an adult', () => {
    const residents = new Map<string, GeneratedPerson[]>();
    for (const p of people) {
      if (p.deathDate !== undefined) continue;
      const home = p.addresses[p.addresses.length - 1]!.addressId;
      const list = residents.get(home) ?? [];
      list.push(p);
      residents.set(home, list);
    }
    const households = [...residents.values()];
    assert.ok(households.every((h) => h.length <= 6), 'household larger than 6');
    const shared = households.filter((h) => h.length >= 2);
    assert.ok(share(shared.length, households.length) > 0.55, `${shared.length} of ${households.length} homes shared`);
    const single = households.filter((h) => h.length === 1).length;
    assert.ok(share(single, households.length) >= 0.25 && share(single, households.length) <= 0.4, `one-person homes ${single}`);
    const families = shared.filter((h) => new Set(h.map((p) => p.familyName)).size < h.length).length;
    assert.ok(share(families, shared.length) > 0.6, `${families} of ${shared.length} shared homes have a common family name`);
    for (const h of households) {
      const ages = h.map((p) => ageOn(p.birthDate, TODAY));
      if (ages.some((a) => a < 18)) assert.ok(Math.max(...ages) >= 18, `children alone at ${h[0]!.addresses.at(-1)!.addressId}`);
    }
  });
});

describe('generate: companies', () => {
  it('makes about companiesPerThousand companies, mostly active', () => {
    assert.ok(companies.length >= 590 && companies.length <= 600, `${companies.length} companies`);
    const active = companies.filter((c) => c.status === 'active').length;
    assert.ok(share(active, companies.length) >= 0.78 && share(active, companies.length) <= 0.92, `active ${active}`);
    const none = [...generate({ people: 2000, companiesPerThousand: 0 })].filter((r) => r.kind === 'company');
    assert.equal(none.length, 0);
  });

  it('names UK companies, incorporated between 1950 and today', () => {
    for (const c of companies) {
      assert.match(c.name, / (Ltd|Limited|LLP)$/);
      assert.doesNotMatch(c.name, /\b(Inc|LLC)\b/);
      assert.ok(c.incorporationDate >= '1950-01-01' && c.incorporationDate <= TODAY, c.incorporationDate);
      if (c.status === 'dissolved') {
        assert.ok(c.dissolvedOn !== undefined && c.dissolvedOn > c.incorporationDate && c.dissolvedOn <= TODAY, `${c.id} dissolved`);
      } else assert.equal(c.dissolvedOn, undefined);
    }
  });

  it('appoints 1-4 distinct officers who were adults and alive at appointment', () => {
    const byId = new Map(people.map((p) => [p.id, p]));
    for (const c of companies) {
      assert.ok(c.officers.length >= 1 && c.officers.length <= 4, `${c.id} has ${c.officers.length} officers`);
      assert.equal(new Set(c.officers.map((o) => o.personId)).size, c.officers.length);
      assert.equal(c.officers[0]!.role, 'director');
      for (const o of c.officers) {
        const person = byId.get(o.personId)!;
        assert.ok(o.appointedOn >= birthday(person.birthDate, 18), `${c.id}: ${o.personId} born ${person.birthDate} appointed ${o.appointedOn}`);
        assert.ok(o.appointedOn >= c.incorporationDate && o.appointedOn <= (c.dissolvedOn ?? TODAY), `${c.id} appointed ${o.appointedOn}`);
        assert.ok(person.deathDate === undefined || o.appointedOn < person.deathDate, `${c.id} appointed ${o.personId} after death`);
      }
    }
  });
});
