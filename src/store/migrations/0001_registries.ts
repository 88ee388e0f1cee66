/**
 * @module store/migrations/0001_registries
 * Subjects, bitemporal facts and the change journal. One migration for both engines: the only
 * difference is how an auto-incrementing key is spelt.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  await db.schema
    .createTable('subject')
    .addColumn('registry', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('subject_pk', ['registry', 'id'])
    .execute();

  await db.schema
    .createTable('fact')
    .addColumn('seq', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
      dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
    )
    .addColumn('registry', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('item', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('valid_from', 'text', (c) => c.notNull())
    .addColumn('valid_to', 'text')
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .addColumn('superseded_at', 'text')
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('change_id', 'text', (c) => c.notNull())
    .execute();

  // Reads ask for the current belief about a few items of one subject: a partial index on the
  // rows not yet superseded keeps that an index seek however long the history grows.
  await db.schema
    .createIndex('fact_current')
    .on('fact')
    .columns(['registry', 'subject', 'item', 'valid_from'])
    .where(sql.ref('superseded_at'), 'is', null)
    .execute();

  await db.schema
    .createTable('change')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('registry', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('effective_date', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('change_subject').on('change').columns(['registry', 'subject']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('change').execute();
  await db.schema.dropTable('fact').execute();
  await db.schema.dropTable('subject').execute();
}
