/**
 * @module registry/kinds
 * The three demo registers: population (people), addresses, and companies. Each says which of
 * its items are stored and which derived, how a record is registered, and which changes it
 * accepts with what rules. People and companies point at addresses by id and resolve them through
 * the address register at read time: the address's lines are mastered once, there.
 */
import { randomInt } from 'node:crypto';
import { OnceOnlyError } from '../core/errors.ts';
import { parseIsoDate } from '../core/dates.ts';
import { makeId, parseId, type IdKind } from '../core/subjects.ts';
import * as facts from './facts.ts';
import type { Db, FactRow, ReadTime } from './facts.ts';
import { requireObject, requirePastDate, requireString, type RegistryKind, type RegistryService } from './service.ts';

/** An address as released inside person and company items. */
export interface ResolvedAddress {
  addressId: string;
  lines: string[];
  town: string;
  postcode: string;
}

const ADDRESS_PARTS = ['address.lines', 'address.town', 'address.postcode'] as const;

/** Resolves an address id to its lines as at `time`; null when the address register has no such address then. */
export async function resolveAddress(addresses: RegistryService, db: Db, addressId: string, time: ReadTime): Promise<ResolvedAddress | null> {
  const rows = await facts.factsAt(db, addresses.subsystem, addressId, ADDRESS_PARTS, time);
  const by = new Map(rows.map((r) => [r.item, r.value]));
  if (!by.has('address.lines')) return null;
  return {
    addressId,
    lines: by.get('address.lines') as string[],
    town: by.get('address.town') as string,
    postcode: by.get('address.postcode') as string,
  };
}

function peer(service: RegistryService, name: string): RegistryService {
  const p = service.peers[name];
  if (!p) throw new OnceOnlyError('service_unavailable', `the ${name} register is not configured for ${service.subsystem}`);
  return p;
}

/** Checks that `addressId` is a known address on `date`, naming `field` otherwise. */
async function requireAddress(service: RegistryService, db: Db, value: unknown, field: string, date: string): Promise<string> {
  const addressId = parseId('address', value, field);
  const resolved = await resolveAddress(peer(service, 'addresses'), db, addressId, { asAt: date, knownAt: null });
  if (!resolved) {
    throw new OnceOnlyError('invalid_change', `${field} is not an address known to the address register on ${date}`, { field, expected: 'the id of an address in the address register' });
  }
  return addressId;
}

/** Allocates a random unused id: random rather than sequential so ids reveal nothing about order. */
async function allocateId(service: RegistryService, db: Db, kind: IdKind, digits: number): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const id = makeId(kind, randomInt(1, 10 ** digits));
    if (!(await facts.subjectExists(db, service.subsystem, id))) return id;
  }
  throw new OnceOnlyError('service_unavailable', 'could not allocate a free identifier');
}

function effectiveDate(body: Record<string, unknown>, todayDate: string): string {
  return requirePastDate(body, 'effectiveDate', todayDate);
}

async function requireAlive(ctx: { at(items: readonly string[], d: string): Promise<Map<string, FactRow>> }, date: string): Promise<void> {
  const now = await ctx.at(['person.status', 'person.birthDate'], date);
  if (!now.has('person.birthDate')) {
    throw new OnceOnlyError('invalid_change', 'body.effectiveDate is before the person was born', { field: 'body.effectiveDate', expected: 'a date in the person\'s lifetime' });
  }
  if (now.get('person.status')?.value === 'deceased') {
    throw new OnceOnlyError('invalid_change', 'the person had died by body.effectiveDate', { field: 'body.effectiveDate', expected: 'a date in the person\'s lifetime' });
  }
}

/** The population register: people. */
export const population: RegistryKind = {
  name: 'population',
  idKind: 'person',
  collection: 'people',
  storedFor(item) {
    if (item === 'person.nationalId' || item === 'person.previousAddresses') return ['person.birthDate'];
    return [item];
  },
  async derive({ service, db, id, time }, item, stored) {
    if (item === 'person.nationalId') {
      const b = stored.get('person.birthDate');
      return b ? { value: id, recordedAt: b.recordedAt } : null;
    }
    if (item === 'person.address') {
      const a = stored.get('person.address');
      if (!a) return null;
      const addressId = (a.value as { addressId: string }).addressId;
      const resolved = await resolveAddress(peer(service, 'addresses'), db, addressId, time);
      return { value: resolved ?? { addressId }, recordedAt: a.recordedAt };
    }
    if (item === 'person.previousAddresses') {
      if (!stored.get('person.birthDate')) return null;
      const spells = (await facts.timeline(db, service.subsystem, id, 'person.address', time.knownAt)).filter((f) => f.validTo !== null && f.validTo <= time.asAt);
      const out = [];
      let recordedAt = stored.get('person.birthDate')!.recordedAt;
      for (const s of spells) {
        const addressId = (s.value as { addressId: string }).addressId;
        const resolved = await resolveAddress(peer(service, 'addresses'), db, addressId, time);
        out.push({ ...(resolved ?? { addressId }), from: s.validFrom, to: s.validTo });
        if (s.recordedAt > recordedAt) recordedAt = s.recordedAt;
      }
      return { value: out, recordedAt };
    }
    return undefined;
  },
  async register({ db, service, today }, body) {
    const birthDate = requirePastDate(body, 'birthDate', today);
    const addressId = await requireAddress(service, db, body['addressId'], 'body.addressId', birthDate < today ? today : birthDate);
    const id = await allocateId(service, db, 'person', 9);
    const nationality = body['nationality'] ?? 'GB';
    return {
      id,
      start: birthDate,
      writes: [
        { item: 'person.givenName', value: requireString(body, 'givenName'), from: birthDate },
        { item: 'person.familyName', value: requireString(body, 'familyName'), from: birthDate },
        { item: 'person.birthDate', value: birthDate, from: birthDate },
        { item: 'person.nationality', value: nationality, from: birthDate },
        { item: 'person.status', value: 'alive', from: birthDate },
        // A newly registered person is recorded at their address from today: where they lived
        // before registration is not known to the register and is not invented.
        { item: 'person.address', value: { addressId }, from: birthDate < today ? today : birthDate },
      ],
    };
  },
  changes: {
    move: {
      description: 'The person moved to another address: {type:"move", addressId, effectiveDate}.',
      carries: ['person.address'],
      async apply(ctx, body) {
        const date = effectiveDate(body, ctx.today);
        await requireAlive(ctx, date);
        const addressId = await requireAddress(ctx.registry, ctx.db, body['addressId'], 'body.addressId', date);
        const current = (await ctx.at(['person.address'], date)).get('person.address');
        if ((current?.value as { addressId?: string } | undefined)?.addressId === addressId) {
          throw new OnceOnlyError('invalid_change', 'the person already lives at body.addressId on that date', { field: 'body.addressId', expected: 'a different address' });
        }
        return { effectiveDate: date, writes: [{ item: 'person.address', value: { addressId }, from: date }] };
      },
    },
    name: {
      description: 'The person changed name: {type:"name", givenName?, familyName?, effectiveDate}.',
      carries: ['person.givenName', 'person.familyName'],
      async apply(ctx, body) {
        const date = effectiveDate(body, ctx.today);
        await requireAlive(ctx, date);
        const writes = [];
        if (body['givenName'] !== undefined) writes.push({ item: 'person.givenName', value: requireString(body, 'givenName'), from: date });
        if (body['familyName'] !== undefined) writes.push({ item: 'person.familyName', value: requireString(body, 'familyName'), from: date });
        if (writes.length === 0) {
          throw new OnceOnlyError('invalid_request', 'a name change needs body.givenName or body.familyName', { field: 'body.givenName', expected: 'the new given name and/or family name' });
        }
        return { effectiveDate: date, writes };
      },
    },
    death: {
      description: 'The person died: {type:"death", deathDate}.',
      carries: ['person.status', 'person.deathDate'],
      async apply(ctx, body) {
        const date = requirePastDate(body, 'deathDate', ctx.today);
        const status = (await ctx.at(['person.status'], ctx.today)).get('person.status');
        if (status?.value === 'deceased') {
          throw new OnceOnlyError('conflict', 'the person is already recorded as deceased', { field: 'body.deathDate', expected: 'a person recorded as alive' });
        }
        await requireAlive(ctx, date);
        return {
          effectiveDate: date,
          writes: [
            { item: 'person.status', value: 'deceased', from: date },
            { item: 'person.deathDate', value: date, from: date },
          ],
        };
      },
    },
  },
};

/** The address register. */
export const addresses: RegistryKind = {
  name: 'addresses',
  idKind: 'address',
  collection: 'addresses',
  async register({ db, service, today }, body) {
    const id = await allocateId(service, db, 'address', 9);
    const writes = [
      { item: 'address.lines', value: body['lines'], from: today },
      { item: 'address.town', value: requireString(body, 'town', 100), from: today },
      { item: 'address.postcode', value: normalisePostcode(body['postcode']), from: today },
    ];
    if (body['location'] !== undefined) writes.push({ item: 'address.location', value: body['location'], from: today });
    return { id, start: today, writes };
  },
  changes: {
    update: {
      description: 'The address was re-described (renamed street, new postcode): {type:"update", effectiveDate, lines?, town?, postcode?, location?}.',
      carries: ['address.lines', 'address.town', 'address.postcode', 'address.location'],
      async apply(ctx, body) {
        const date = effectiveDate(body, ctx.today);
        const existing = await ctx.at(['address.lines'], date);
        if (!existing.has('address.lines')) {
          throw new OnceOnlyError('invalid_change', 'body.effectiveDate is before the address was created', { field: 'body.effectiveDate', expected: 'a date on which the address exists' });
        }
        const writes = [];
        if (body['lines'] !== undefined) writes.push({ item: 'address.lines', value: body['lines'], from: date });
        if (body['town'] !== undefined) writes.push({ item: 'address.town', value: requireString(body, 'town', 100), from: date });
        if (body['postcode'] !== undefined) writes.push({ item: 'address.postcode', value: normalisePostcode(body['postcode']), from: date });
        if (body['location'] !== undefined) writes.push({ item: 'address.location', value: body['location'], from: date });
        if (writes.length === 0) throw new OnceOnlyError('invalid_request', 'an update needs at least one of lines, town, postcode, location', { field: 'body', expected: 'lines, town, postcode or location' });
        return { effectiveDate: date, writes };
      },
    },
  },
};

/** Upper-cases a postcode and puts the single space before the inward code (BS 7666). */
export function normalisePostcode(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const s = v.toUpperCase().replace(/\s+/g, '');
  return s.length >= 5 ? `${s.slice(0, -3)} ${s.slice(-3)}` : s;
}

async function requireOfficers(service: RegistryService, db: Db, v: unknown, date: string): Promise<{ personId: string; role: string; appointedOn: string }[]> {
  if (!Array.isArray(v) || v.length > 50) throw new OnceOnlyError('invalid_request', 'body.officers must be a list', { field: 'body.officers', expected: 'an array of at most 50 {personId, role, appointedOn}' });
  const people = peer(service, 'population');
  const out = [];
  for (const [i, o] of v.entries()) {
    const off = requireObject(o, `body.officers[${i}]`);
    const personId = parseId('person', off['personId'], `body.officers[${i}].personId`);
    if (!(await facts.subjectExists(db, people.subsystem, personId))) {
      throw new OnceOnlyError('invalid_change', `body.officers[${i}].personId is not in the population register`, { field: `body.officers[${i}].personId`, expected: 'a person in the population register' });
    }
    const appointedOn = off['appointedOn'] === undefined ? date : parseIsoDate(off['appointedOn'], `body.officers[${i}].appointedOn`);
    out.push({ personId, role: String(off['role']), appointedOn });
  }
  return out;
}

/** The business register: companies. */
export const companies: RegistryKind = {
  name: 'companies',
  idKind: 'company',
  collection: 'companies',
  async derive({ service, db, time }, item, stored) {
    if (item !== 'business.registeredAddress') return undefined;
    const a = stored.get(item);
    if (!a) return null;
    const addressId = (a.value as { addressId: string }).addressId;
    return { value: (await resolveAddress(peer(service, 'addresses'), db, addressId, time)) ?? { addressId }, recordedAt: a.recordedAt };
  },
  async register({ db, service, today }, body) {
    const inc = requirePastDate(body, 'incorporationDate', today);
    const addressId = await requireAddress(service, db, body['registeredAddressId'], 'body.registeredAddressId', today);
    const officers = await requireOfficers(service, db, body['officers'] ?? [], inc);
    const id = await allocateId(service, db, 'company', 8);
    return {
      id,
      start: inc,
      writes: [
        { item: 'business.name', value: requireString(body, 'name'), from: inc },
        { item: 'business.incorporationDate', value: inc, from: inc },
        { item: 'business.status', value: 'active', from: inc },
        { item: 'business.registeredAddress', value: { addressId }, from: inc },
        { item: 'business.officers', value: officers, from: inc },
      ],
    };
  },
  changes: {
    rename: {
      description: 'The company changed its name: {type:"rename", name, effectiveDate}.',
      carries: ['business.name'],
      apply(ctx, body) {
        const date = effectiveDate(body, ctx.today);
        return Promise.resolve({ effectiveDate: date, writes: [{ item: 'business.name', value: requireString(body, 'name'), from: date }] });
      },
    },
    move: {
      description: 'The registered office moved: {type:"move", addressId, effectiveDate}.',
      carries: ['business.registeredAddress'],
      async apply(ctx, body) {
        const date = effectiveDate(body, ctx.today);
        const addressId = await requireAddress(ctx.registry, ctx.db, body['addressId'], 'body.addressId', date);
        return { effectiveDate: date, writes: [{ item: 'business.registeredAddress', value: { addressId }, from: date }] };
      },
    },
    status: {
      description: 'The company\'s status changed: {type:"status", status: active|dissolved|liquidation, effectiveDate}.',
      carries: ['business.status'],
      apply(ctx, body) {
        const date = effectiveDate(body, ctx.today);
        return Promise.resolve({ effectiveDate: date, writes: [{ item: 'business.status', value: body['status'], from: date }] });
      },
    },
    officers: {
      description: 'The officers changed: {type:"officers", officers:[{personId, role, appointedOn}], effectiveDate}.',
      carries: ['business.officers'],
      async apply(ctx, body) {
        const date = effectiveDate(body, ctx.today);
        return { effectiveDate: date, writes: [{ item: 'business.officers', value: await requireOfficers(ctx.registry, ctx.db, body['officers'], date), from: date }] };
      },
    },
  },
};

/** All kinds by name. */
export const KINDS: Record<string, RegistryKind> = { population, addresses, companies };
