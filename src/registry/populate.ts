/**
 * @module registry/populate
 * Fills an empty store with a generated population, and tells whether a store holds a complete
 * one. A load that was interrupted (subjects present, but no journal row saying the load
 * finished) is reported as partial so that callers can start again instead of serving half a
 * register.
 */
import { sql } from 'kysely';
import type { Store } from '../store/db.ts';
import { generate } from './generate.ts';
import { loadGenerated, type LoadResult, type Progress } from './load.ts';
import { REGISTRY_IDS } from './registries.ts';

/** What the store holds. */
export interface PopulationStatus {
  people: number;
  /** A bulk load finished (its journal row exists). */
  loaded: boolean;
  /** Records exist but no load finished: an interrupted load. */
  partial: boolean;
}

/** Counts the people and looks for a finished bulk load. */
export async function populationStatus(store: Store): Promise<PopulationStatus> {
  const people = await store.db.selectFrom('subject').select((eb) => eb.fn.countAll<number>().as('n')).where('registry', '=', REGISTRY_IDS.population).executeTakeFirstOrThrow();
  const anySubject = await store.db.selectFrom('subject').select('id').limit(1).executeTakeFirst();
  const load = await store.db.selectFrom('change').select('id').where('type', '=', 'bulk-load').limit(1).executeTakeFirst();
  return { people: Number(people.n), loaded: load !== undefined, partial: anySubject !== undefined && load === undefined };
}

/** Removes every registry record (used only to restart an interrupted synthetic load). */
export async function clearRegistries(store: Store): Promise<void> {
  await store.db.transaction().execute(async (trx) => {
    await sql`DELETE FROM fact`.execute(trx);
    await sql`DELETE FROM subject`.execute(trx);
    await sql`DELETE FROM change`.execute(trx);
  });
}

/** Generates `people` people (with addresses and companies) and streams them into the store. */
export async function populate(store: Store, opts: { people: number; seed?: number; today?: string; onProgress?: Progress }): Promise<LoadResult> {
  const records = generate({ people: opts.people, ...(opts.seed !== undefined ? { seed: opts.seed } : {}), ...(opts.today ? { today: opts.today } : {}) });
  return loadGenerated(store, records, opts.onProgress ? { onProgress: opts.onProgress } : {});
}
