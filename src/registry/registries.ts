/**
 * @module registry/registries
 * Wires the three demo registers to one store and one catalogue, with the address register as
 * the peer the other two resolve addresses through.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import { RegistryService, type ItemCatalogue } from './service.ts';
import { addresses, companies, population } from './kinds.ts';

/** The subsystem ids of the demo registers (they must match the catalogue's owners). */
export const REGISTRY_IDS = {
  population: 'UK/GOV/GRO/population',
  addresses: 'UK/GOV/GEOPLACE/addresses',
  companies: 'UK/GOV/CH/companies',
} as const;

export interface Registries {
  population: RegistryService;
  addresses: RegistryService;
  companies: RegistryService;
}

/** Creates the population, address and business registers over one store. */
export function createRegistries(db: Kysely<Database>, catalogue: ItemCatalogue, opts: { now?: () => Date } = {}): Registries {
  const common = { db, catalogue, ...(opts.now ? { now: opts.now } : {}) };
  const addr = new RegistryService({ ...common, subsystem: REGISTRY_IDS.addresses, kind: addresses });
  const pop = new RegistryService({ ...common, subsystem: REGISTRY_IDS.population, kind: population, peers: { addresses: addr } });
  const comp = new RegistryService({ ...common, subsystem: REGISTRY_IDS.companies, kind: companies, peers: { addresses: addr, population: pop } });
  return { population: pop, addresses: addr, companies: comp };
}
