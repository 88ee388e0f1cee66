/**
 * @module registry/repository
 * What other parts may ask of the registers' tables (`subject`, `fact`, `change`), which only this
 * folder reads and writes (test/architecture.test.ts checks it): the duplication audit's snapshot
 * of current beliefs, a version that moves with every write, and the demo's example ids. A thin
 * class over Kysely, in the style of Immich's repositories; the registers' own reads and writes
 * are in registry/facts.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

/** A current belief as the audit reads it. */
export interface CurrentFact {
  subject: string;
  item: string;
  /** JSON text. */
  value: string;
  valid_from: string;
  valid_to: string | null;
}

/** Items whose current values have a partial index (migrations 0012, 0013). */
export type IndexedItem = 'person.birthDate' | 'address.postcode';

/** The subjects of `registry` whose current `item` is `value`: a seek on that item's partial index (exported for the plan test). */
export function currentValueQuery(db: Kysely<Database>, registry: string, item: IndexedItem, value: string, limit: number) {
  return db
    .selectFrom('fact')
    .select('subject')
    .where('registry', '=', registry)
    .where('value', '=', JSON.stringify(value))
    // A literal, not a parameter: only then can the planner see that the partial index applies.
    .where('item', '=', sql.lit(item))
    .where('superseded_at', 'is', null)
    // The value now (an address whose postcode changed keeps its earlier period, closed).
    .where('valid_to', 'is', null)
    .orderBy('subject')
    .limit(limit);
}

export class RegistryRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /**
   * The current beliefs about `items` of every subject of `registry`, a page of subjects at a time:
   * the subject ids from the primary key in order, and each page's facts from one range query on
   * the index of current beliefs, so the cost is two queries per page whatever the size.
   */
  async *currentFactPages(registry: string, items: string[], pageSize: number): AsyncGenerator<CurrentFact[]> {
    let after = '';
    for (;;) {
      const ids = await this.#db.selectFrom('subject').select('id').where('registry', '=', registry).where('id', '>', after).orderBy('id').limit(pageSize).execute();
      if (ids.length === 0) return;
      const first = ids[0]!.id;
      const last = ids[ids.length - 1]!.id;
      yield await this.#db
        .selectFrom('fact')
        .select(['subject', 'item', 'value', 'valid_from', 'valid_to'])
        .where('registry', '=', registry)
        .where('subject', '>=', first)
        .where('subject', '<=', last)
        .where('item', 'in', items)
        .where('superseded_at', 'is', null)
        .execute();
      after = last;
      if (ids.length < pageSize) return;
    }
  }

  /** A value that changes whenever a registry write lands: facts are only ever inserted, and every write journals a change. */
  async version(): Promise<string> {
    const f = await this.#db.selectFrom('fact').select((eb) => eb.fn.max('seq').as('s')).executeTakeFirst();
    const c = await this.#db.selectFrom('change').select((eb) => eb.fn.countAll().as('n')).executeTakeFirst();
    return `${String(f?.s ?? '')}:${String(c?.n ?? '')}`;
  }

  /** The first record of `registry` by id, or undefined when it is empty. */
  async firstSubject(registry: string): Promise<string | undefined> {
    const row = await this.#db.selectFrom('subject').select('id').where('registry', '=', registry).orderBy('id').limit(1).executeTakeFirst();
    return row?.id;
  }

  /** The subject of `registry` that comes after `after` in id order (the first when none does), or undefined when empty. */
  async subjectOtherThan(registry: string, other: string): Promise<string | undefined> {
    const row = await this.#db.selectFrom('subject').select('id').where('registry', '=', registry).where('id', '!=', other).orderBy('id').limit(1).executeTakeFirst();
    return row?.id;
  }

  /** The first person of the population register `registry` recorded as alive today, or undefined. */
  async firstLivingPerson(registry: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom('fact')
      .select('subject')
      .where('registry', '=', registry)
      .where('item', '=', 'person.status')
      .where('superseded_at', 'is', null)
      .where('valid_to', 'is', null)
      .where('value', '=', '"alive"')
      .orderBy('subject')
      .limit(1)
      .executeTakeFirst();
    return row?.subject;
  }

  /**
   * The people of population register `registry` whose current birth date is `birthDate`
   * (YYYY-MM-DD), at most `limit`, by id: one seek on the partial index `fact_birth_date`.
   */
  peopleBornOn(registry: string, birthDate: string, limit: number): Promise<string[]> {
    return this.#withCurrent(registry, 'person.birthDate', birthDate, limit);
  }

  /** The addresses of `registry` whose current postcode is `postcode` (as stored), at most `limit`: index `fact_postcode`. */
  addressesWithPostcode(registry: string, postcode: string, limit: number): Promise<string[]> {
    return this.#withCurrent(registry, 'address.postcode', postcode, limit);
  }

  async #withCurrent(registry: string, item: IndexedItem, value: string, limit: number): Promise<string[]> {
    const rows = await currentValueQuery(this.#db, registry, item, value, limit).execute();
    return rows.map((r) => r.subject);
  }

  /**
   * The companies of business register `registry` whose current officers include `personId`
   * (already checked as a person id, so it holds no LIKE wildcard), with the appointment. The
   * officers are one JSON value per company, so this reads every company's current officers
   * (prefiltered by LIKE): fine for a register of tens of thousands of companies; a register of
   * millions would keep an officer table beside the facts.
   */
  async officerAppointments(registry: string, personId: string): Promise<{ company: string; role: string; appointedOn: string }[]> {
    const rows = await this.#db
      .selectFrom('fact')
      .select(['subject', 'value'])
      .where('registry', '=', registry)
      .where('item', '=', 'business.officers')
      .where('superseded_at', 'is', null)
      .where('valid_to', 'is', null)
      .where('value', 'like', `%${personId}%`)
      .orderBy('subject')
      .execute();
    return rows.flatMap((r) => {
      const officers = JSON.parse(r.value) as { personId?: unknown; role?: unknown; appointedOn?: unknown }[];
      return Array.isArray(officers) ? officers.filter((o) => o.personId === personId).map((o) => ({ company: r.subject, role: String(o.role), appointedOn: String(o.appointedOn) })) : [];
    });
  }

  /** The current beliefs about `items` of the given subjects of `registry`. */
  async currentFactsOf(registry: string, subjects: readonly string[], items: string[]): Promise<CurrentFact[]> {
    if (subjects.length === 0) return [];
    return this.#db
      .selectFrom('fact')
      .select(['subject', 'item', 'value', 'valid_from', 'valid_to'])
      .where('registry', '=', registry)
      .where('subject', 'in', [...subjects])
      .where('item', 'in', items)
      .where('superseded_at', 'is', null)
      .execute();
  }
}
