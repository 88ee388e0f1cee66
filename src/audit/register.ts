/**
 * @module audit/register
 * The register's side of the duplication audit: every person in the population register as the
 * register knows them now (name, date of birth, address), with the earlier names and addresses it
 * holds for them, so that a copy can be told stale (a value the register held earlier) from a
 * conflict (a value it never held).
 *
 * Two builders give the same snapshot: one from the store (what the CLI and the API use: a few
 * bulk queries paged by subject, never a query per person), and one from the generator's records
 * (fast tests, and extracts written without a store).
 */
import type { CurrentFact, RegistryRepository } from '../registry/repository.ts';
import type { GeneratedAddress, GeneratedRecord } from '../registry/generate.ts';
import { REGISTRY_IDS } from '../registry/registries.ts';
import type { FieldKind, FieldSpec, Table } from '../linkage/types.ts';
import { ITEMS, valueKey, type HeldValues, type Item } from './values.ts';

/** An address as the audit compares it: its street lines joined into one line. */
export interface HeldAddress {
  line: string;
  town: string;
  postcode: string;
}

/** One person of the register. */
export interface RegisterPerson {
  id: string;
  givenName: string;
  familyName: string;
  birthDate: string;
  /** Where they live now (for the deceased, where they lived when they died); null if unknown. */
  address: HeldAddress | null;
  deceased: boolean;
  /** Values the register held earlier and holds no longer, oldest first. */
  earlierGivenNames: string[];
  earlierFamilyNames: string[];
  earlierAddresses: HeldAddress[];
}

/** The register as the audit sees it. */
export interface RegisterSnapshot {
  /** Where it was read from, for the report (no credentials). */
  source: string;
  people: RegisterPerson[];
}

/** Joins an address's lines as agencies usually keep them in one column. */
export function addressLine(lines: readonly string[]): string {
  return lines.join(', ');
}

/** The values the register holds for a person, as comparison keys (see {@link valueKey}). */
export function heldValues(p: RegisterPerson): HeldValues {
  const current = {
    givenName: valueKey('givenName', p.givenName),
    familyName: valueKey('familyName', p.familyName),
    birthDate: valueKey('birthDate', p.birthDate),
    address: valueKey('address', p.address?.line),
    postcode: valueKey('postcode', p.address?.postcode),
  };
  const earlier = Object.fromEntries(ITEMS.map((i) => [i, new Set<string>()])) as Record<Item, Set<string>>;
  const add = (item: Item, v: string): void => {
    const k = valueKey(item, v);
    if (k !== '' && k !== current[item]) earlier[item].add(k);
  };
  for (const g of p.earlierGivenNames) add('givenName', g);
  for (const f of p.earlierFamilyNames) add('familyName', f);
  for (const a of p.earlierAddresses) {
    add('address', a.line);
    add('postcode', a.postcode);
  }
  return { current, earlier };
}

/** The register table's columns; one per field kind the linkage engine can compare. */
export const REGISTER_COLUMNS = ['person_id', 'given_name', 'surname', 'full_name', 'date_of_birth', 'address', 'house_number', 'street', 'town', 'postcode'] as const;

const COLUMN_FOR_KIND: Partial<Record<FieldKind, (typeof REGISTER_COLUMNS)[number]>> = {
  given_name: 'given_name',
  surname: 'surname',
  full_name: 'full_name',
  dob: 'date_of_birth',
  address: 'address',
  house_number: 'house_number',
  street: 'street',
  locality: 'town',
  postcode: 'postcode',
};

/** Splits "Flat 2, 14 Mill Lane" into a house number and a street for extracts that keep them apart. */
function splitLine(line: string): { number: string | null; street: string } {
  const last = line.split(',').pop()!.trim();
  const m = /^(\d+[A-Za-z]?)\s+(.+)$/.exec(last);
  return m ? { number: m[1]!, street: m[2]! } : { number: null, street: last };
}

/** The register as a linkage table, and the person (index into `people`) of each row. */
export interface RegisterTable {
  table: Table;
  personOf: Int32Array;
}

// A person with an unusually long history would multiply into many rows; the most recent few
// earlier values are the ones copies are likely to hold.
const MAX_EARLIER = 3;

/**
 * The register as a linkage table. The first row of each person is them as known now, with the
 * person id as its id; with `history`, further rows (ids `ID~1`, `ID~2`, ...) pair each name the
 * register has held for them with each address it has held, so that a copy made before a move or
 * a marriage is compared with what the register held when it was made, and links as well as a
 * current copy does. Whether a copied value is current or stale is decided afterwards, item by
 * item, against the person's history ({@link heldValues}).
 */
export function registerTable(s: RegisterSnapshot, opts: { history?: boolean } = {}): RegisterTable {
  const rows: Table['rows'] = [];
  const ids: string[] = [];
  const personOf: number[] = [];
  const row = (given: string, family: string, birthDate: string, a: HeldAddress | null): Table['rows'][number] => {
    const split = a ? splitLine(a.line) : null;
    return [null, given, family, `${given} ${family}`, birthDate, a?.line ?? null, split?.number ?? null, split?.street ?? null, a?.town ?? null, a?.postcode ?? null];
  };
  s.people.forEach((p, index) => {
    const add = (id: string, r: Table['rows'][number]): void => {
      r[0] = id;
      ids.push(id);
      rows.push(r);
      personOf.push(index);
    };
    add(p.id, row(p.givenName, p.familyName, p.birthDate, p.address));
    if (!opts.history) return;
    const givens = [p.givenName, ...p.earlierGivenNames.slice(-MAX_EARLIER)];
    const families = [p.familyName, ...p.earlierFamilyNames.slice(-MAX_EARLIER)];
    const addresses = [p.address, ...p.earlierAddresses.slice(-MAX_EARLIER)];
    let k = 0;
    for (const g of givens) {
      for (const f of families) {
        for (const [ai, a] of addresses.entries()) {
          if (g === p.givenName && f === p.familyName && ai === 0) continue;
          add(`${p.id}~${++k}`, row(g, f, p.birthDate, a));
        }
      }
    }
  });
  return { table: { source: s.source, columns: [...REGISTER_COLUMNS], ids, rows }, personOf: Int32Array.from(personOf) };
}

/**
 * The register's columns for the kinds an extract has, so both sides compare the same kinds.
 * An extract's `street` column without a house number usually holds the whole first line
 * ("14 Mill Lane"), so it is compared with the register's whole line.
 */
export function registerFieldsFor(extractFields: readonly FieldSpec[]): FieldSpec[] {
  const kinds = new Set(extractFields.map((f) => f.kind));
  const out: FieldSpec[] = [];
  for (const k of kinds) {
    if (k === 'street' && !kinds.has('house_number')) {
      out.push({ column: 'address', kind: 'street' });
      continue;
    }
    const column = COLUMN_FOR_KIND[k];
    if (column) out.push({ column, kind: k });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// From the generator

function held(a: GeneratedAddress): HeldAddress {
  return { line: addressLine(a.lines), town: a.town, postcode: a.postcode };
}

/** Builds the snapshot from a generated stream (every address precedes the people at it). */
export function registerFromRecords(records: Iterable<GeneratedRecord>, source = 'generated population'): RegisterSnapshot {
  const addresses = new Map<string, HeldAddress>();
  const people: RegisterPerson[] = [];
  for (const r of records) {
    if (r.kind === 'address') addresses.set(r.id, held(r));
    else if (r.kind === 'person') {
      const spells = r.addresses;
      const last = spells[spells.length - 1];
      const earlierNames = r.names.slice(0, -1);
      people.push({
        id: r.id,
        givenName: r.givenName,
        familyName: r.familyName,
        birthDate: r.birthDate,
        address: last ? (addresses.get(last.addressId) ?? null) : null,
        deceased: r.deathDate !== undefined,
        earlierGivenNames: distinct(earlierNames.map((n) => n.givenName), r.givenName),
        earlierFamilyNames: distinct(earlierNames.map((n) => n.familyName), r.familyName),
        earlierAddresses: spells.slice(0, -1).flatMap((s) => {
          const a = addresses.get(s.addressId);
          return a ? [a] : [];
        }),
      });
    }
  }
  return { source, people };
}

function distinct(values: string[], current: string): string[] {
  return [...new Set(values)].filter((v) => v !== current);
}

// ---------------------------------------------------------------------------------------------
// From the store

const PERSON_ITEMS = ['person.givenName', 'person.familyName', 'person.birthDate', 'person.address', 'person.status'];
const ADDRESS_ITEMS = ['address.lines', 'address.town', 'address.postcode'];

type FactLite = CurrentFact;

/** Groups a page's facts by subject, each subject's facts in valid-time order. */
function bySubject(rows: FactLite[]): Map<string, FactLite[]> {
  const out = new Map<string, FactLite[]>();
  for (const r of rows) {
    let list = out.get(r.subject);
    if (!list) out.set(r.subject, (list = []));
    list.push(r);
  }
  for (const list of out.values()) list.sort((a, b) => (a.valid_from < b.valid_from ? -1 : a.valid_from > b.valid_from ? 1 : 0));
  return out;
}

/** The open period's value (the last period's for the deceased) and the values of closed periods before it. */
function timelineOf(facts: FactLite[], item: string): { current: unknown; earlier: unknown[] } {
  const spells = facts.filter((f) => f.item === item);
  if (spells.length === 0) return { current: undefined, earlier: [] };
  const open = spells.findLast((f) => f.valid_to === null) ?? spells[spells.length - 1]!;
  return { current: JSON.parse(open.value) as unknown, earlier: spells.filter((f) => f !== open && f.valid_from < open.valid_from).map((f) => JSON.parse(f.value) as unknown) };
}

/** The people in a page of population facts, their addresses resolved by `resolve`. */
function peopleOf(page: FactLite[], resolve: (v: unknown) => HeldAddress | null): RegisterPerson[] {
  const people: RegisterPerson[] = [];
  for (const [id, facts] of bySubject(page)) {
    const given = timelineOf(facts, 'person.givenName');
    const family = timelineOf(facts, 'person.familyName');
    const birth = timelineOf(facts, 'person.birthDate');
    const address = timelineOf(facts, 'person.address');
    if (typeof given.current !== 'string' || typeof family.current !== 'string' || typeof birth.current !== 'string') continue;
    people.push({
      id,
      givenName: given.current,
      familyName: family.current,
      birthDate: birth.current,
      address: resolve(address.current),
      deceased: timelineOf(facts, 'person.status').current === 'deceased',
      earlierGivenNames: distinct(given.earlier.map(String), given.current),
      earlierFamilyNames: distinct(family.earlier.map(String), family.current),
      earlierAddresses: address.earlier.flatMap((v) => {
        const a = resolve(v);
        return a ? [a] : [];
      }),
    });
  }
  return people;
}

/** Held addresses of the address register by id, from current facts. */
function addressesOf(page: FactLite[], into: Map<string, HeldAddress>): void {
  for (const [id, facts] of bySubject(page)) {
    const lines = timelineOf(facts, 'address.lines').current;
    if (!Array.isArray(lines)) continue;
    const text = (item: string): string => {
      const v = timelineOf(facts, item).current;
      return typeof v === 'string' ? v : '';
    };
    into.set(id, { line: addressLine(lines as string[]), town: text('address.town'), postcode: text('address.postcode') });
  }
}

/**
 * Some people of the register, as {@link registerFromStore} gives everyone: for matching one
 * identity against the few people who share its birth date. Three queries whatever the number.
 */
export async function registerPeopleFromStore(registers: RegistryRepository, ids: readonly string[]): Promise<RegisterPerson[]> {
  const facts = await registers.currentFactsOf(REGISTRY_IDS.population, ids, PERSON_ITEMS);
  const addressIds = new Set<string>();
  for (const f of facts) {
    if (f.item !== 'person.address') continue;
    const v = JSON.parse(f.value) as { addressId?: unknown } | null;
    if (typeof v?.addressId === 'string') addressIds.add(v.addressId);
  }
  const addresses = new Map<string, HeldAddress>();
  addressesOf(await registers.currentFactsOf(REGISTRY_IDS.addresses, [...addressIds], ADDRESS_ITEMS), addresses);
  const people = peopleOf(facts, (v) => addresses.get((v as { addressId?: string } | undefined)?.addressId ?? '') ?? null);
  return people.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Builds the snapshot from the store's population and address registers (SQLite or PostgreSQL).
 * Only current beliefs are read: a value the register corrected was never true, so a copy of it
 * is a conflict, not a stale copy.
 */
export async function registerFromStore(registers: RegistryRepository, opts: { source?: string; pageSize?: number } = {}): Promise<RegisterSnapshot> {
  const pageSize = opts.pageSize ?? 5000;
  const addresses = new Map<string, HeldAddress>();
  for await (const page of registers.currentFactPages(REGISTRY_IDS.addresses, ADDRESS_ITEMS, pageSize)) addressesOf(page, addresses);
  const resolve = (v: unknown): HeldAddress | null => addresses.get((v as { addressId?: string } | undefined)?.addressId ?? '') ?? null;
  const people: RegisterPerson[] = [];
  for await (const page of registers.currentFactPages(REGISTRY_IDS.population, PERSON_ITEMS, pageSize)) people.push(...peopleOf(page, resolve));
  // Ids are compared as JavaScript strings, so the order does not depend on a database collation.
  people.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { source: opts.source ?? 'population register', people };
}
