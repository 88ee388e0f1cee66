/**
 * @module store/migrations/0013_address_search
 * Reporting a move (issue 13) starts from a postcode, as GOV.UK's address lookup does: the
 * address register answers "which addresses have this postcode" from a partial index over its
 * current postcodes, one seek instead of a scan of every fact.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('fact_postcode')
    .on('fact')
    .columns(['registry', 'value', 'subject'])
    .where(sql.ref('item'), '=', 'address.postcode')
    .where(sql.ref('superseded_at'), 'is', null)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('fact_postcode').execute();
}
