/**
 * @module registry/search
 * `GET /address-search?postcode=`: the address register's addresses at a postcode, as GOV.UK's
 * "find an address" pattern starts (a postcode, then a list to choose from). Addresses are
 * public data (catalogue classification `public`); the answer is their ids, lines and town,
 * at most {@link MAX_RESULTS}. Mounted on the address register's server behind its gateway
 * credential and offered on the exchange as the `address-search` service.
 */
import { Type } from 'typebox';
import { ErrorBody, type App } from '../core/http.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { parseId } from '../core/subjects.ts';
import type { RegistryService } from './service.ts';
import type { RegistryRepository } from './repository.ts';

const MAX_RESULTS = 100;

/**
 * A UK postcode as the register stores it: upper case, one space before the inward code (the
 * last three characters), whatever spacing or case was typed (BS 7666 format).
 */
export function normalisePostcode(raw: string): string {
  const compact = raw.replace(/\s+/g, '').toUpperCase();
  if (!/^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$/.test(compact)) {
    throw new OnceOnlyError('invalid_value', 'enter a full UK postcode, like LS1 1UR', { field: 'query.postcode', expected: 'a full UK postcode' });
  }
  return `${compact.slice(0, -3)} ${compact.slice(-3)}`;
}

export function addressSearchRoutes(app: App, addresses: RegistryService, repo: RegistryRepository): void {
  app.get('/address-search', {
    schema: {
      tags: ['addresses'],
      summary: 'The addresses at a postcode (public data)',
      querystring: Type.Object({ postcode: Type.String({ minLength: 1, maxLength: 16 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ postcode: Type.String(), addresses: Type.Array(Type.Object({ id: Type.String(), lines: Type.Array(Type.String()), town: Type.String() })) }), 400: ErrorBody, 422: ErrorBody },
    },
  }, async (req) => {
    const postcode = normalisePostcode(req.query.postcode);
    const ids = await repo.addressesWithPostcode(addresses.subsystem, postcode, MAX_RESULTS);
    const out: { id: string; lines: string[]; town: string }[] = [];
    for (const id of ids) {
      const r = await addresses.read(id, 'address.lines,address.town');
      const lines = r.items['address.lines']?.value;
      const town = r.items['address.town']?.value;
      out.push({ id, lines: Array.isArray(lines) ? lines.filter((l): l is string => typeof l === 'string') : [], town: typeof town === 'string' ? town : '' });
    }
    return { postcode, addresses: out };
  });
}

/**
 * `GET /officer-appointments?person=`: the companies a person is a current officer of (the
 * business register's data about them), with each company's name and status. Offered on the
 * exchange as the `officer-search` service, to the citizen portal for the person's own data.
 */
export function officerSearchRoutes(app: App, companies: RegistryService, repo: RegistryRepository): void {
  app.get('/officer-appointments', {
    schema: {
      tags: ['companies'],
      summary: 'The companies a person is a current officer of',
      querystring: Type.Object({ person: Type.String({ minLength: 1, maxLength: 32 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ person: Type.String(), appointments: Type.Array(Type.Object({ id: Type.String(), name: Type.String(), status: Type.String(), role: Type.String(), appointedOn: Type.String() })) }), 400: ErrorBody },
    },
  }, async (req) => {
    const person = parseId('person', req.query.person, 'query.person');
    const out = [];
    for (const a of await repo.officerAppointments(companies.subsystem, person)) {
      const r = await companies.read(a.company, 'business.name,business.status');
      const name = r.items['business.name']?.value;
      const status = r.items['business.status']?.value;
      out.push({ id: a.company, name: typeof name === 'string' ? name : '', status: typeof status === 'string' ? status : '', role: a.role, appointedOn: a.appointedOn });
    }
    return { person, appointments: out };
  });
}
