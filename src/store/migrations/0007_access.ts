/**
 * @module store/migrations/0007_access
 * Access records (issue "Citizen transparency and consent"): one row per release of items about a
 * person by a provider gateway, written in the same transaction as the exchange's message-log
 * record (whose position it names) and appended to the gateway's transparency log (whose leaf
 * index it names), so a person can see every use of their data and check that the record is in
 * the log.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('access_record')
    .addColumn('gateway_id', 'text', (c) => c.notNull())
    // The message-log position of the exchange: unique per gateway, so one release, one record.
    .addColumn('log_position', 'bigint', (c) => c.notNull())
    .addColumn('person', 'text', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('client', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('service', 'text', (c) => c.notNull())
    // JSON array text of the items released; [] for an existence check.
    .addColumn('items', 'text', (c) => c.notNull())
    .addColumn('agreement', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('legal_basis', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    // Leaf index in the gateway's transparency log.
    .addColumn('tlog_index', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('access_record_pk', ['gateway_id', 'log_position'])
    .execute();
  // A person's records, newest first, paged: the data-usage service's only query.
  await db.schema.createIndex('access_record_person').on('access_record').columns(['person', 'at', 'log_position']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('access_record').execute();
}
