/**
 * @module store/migrations/0010_tell_us_once
 * Tell Us Once (issue 12): a change recorded once reaches every service entitled to it.
 *
 * In a register's store (owned by src/registry):
 * - `event_outbox`: one row per change or correction, written in the change's own transaction (the
 *   transactional outbox): nothing is announced that was not committed, nothing committed is lost.
 *   `seq` orders the register's events; it comes from `event_counter`, whose row the change's
 *   transaction locks, so events commit in `seq` order and a reader following `seq` never skips
 *   one that commits late (an auto-increment key would allow that on PostgreSQL).
 *
 * In a gateway's store (owned by src/events):
 * - `event_subscription`: a client subsystem's subscription to a provider's change events, under
 *   an agreement; `event_interest`: the subjects a subscription is told about (its interest list);
 * - `event_queue`: each event for each subscription, numbered per subscription (the pull feed's
 *   cursor), with its delivery state: pending, delivered, dead (the dead-letter list); attempts
 *   and the next attempt for the push dispatcher; `published` for the JetStream relay;
 * - `event_relay`: how far the gateway has read each register's outbox;
 * - `event_lease`: which gateway process dispatches, when several share one PostgreSQL.
 *
 * And `access_record` (src/transparency) gets `part` (several records in one exchange: a pull-feed
 * page tells of several people) in its key, and `notice` (what a notification told: its kind of
 * change and event id). SQLite cannot change a primary key, so the table is rebuilt on both
 * engines, every row copied with part 0 and no notice: their digests are unchanged.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createTable('event_counter').addColumn('registry', 'text', (c) => c.primaryKey()).addColumn('seq', 'bigint', (c) => c.notNull()).execute();
  await db.schema
    .createTable('event_outbox')
    .addColumn('registry', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    // Stable across redeliveries and subscribers: what a consumer dedupes on.
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('change_id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('effective_date', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    // JSON array of the items the change wrote.
    .addColumn('items', 'text', (c) => c.notNull())
    // The person's choice: null for every entitled subscriber, else a JSON array of member or subsystem ids.
    .addColumn('notify', 'text')
    .addPrimaryKeyConstraint('event_outbox_pk', ['registry', 'seq'])
    .execute();

  await db.schema
    .createTable('event_subscription')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('client', 'text', (c) => c.notNull())
    // JSON array of change types.
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('agreement', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('removed_at', 'text')
    // The register's outbox position when it was made: earlier events are not delivered to it.
    .addColumn('from_seq', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('event_subscription_provider').on('event_subscription').columns(['provider', 'status']).execute();
  await db.schema
    .createTable('event_interest')
    .addColumn('subscription', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('added_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_interest_pk', ['subscription', 'subject'])
    .execute();
  await db.schema
    .createTable('event_queue')
    .addColumn('subscription', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    // The event as delivered (JSON), granted items only.
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', 'text', (c) => c.notNull())
    .addColumn('last_error', 'text')
    .addColumn('delivered_at', 'text')
    .addColumn('published', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('event_queue_pk', ['subscription', 'seq'])
    .addUniqueConstraint('event_queue_event', ['subscription', 'event_id'])
    .execute();
  await db.schema.createIndex('event_queue_pending').on('event_queue').columns(['state', 'next_attempt_at']).execute();
  // The dispatcher's heads (the first pending event per person of each subscription): read from
  // this index alone, in group order, with no sort and no table rows.
  await db.schema.createIndex('event_queue_heads').on('event_queue').columns(['state', 'subscription', 'subject', 'seq']).execute();
  await db.schema.createTable('event_relay').addColumn('provider', 'text', (c) => c.primaryKey()).addColumn('cursor', 'bigint', (c) => c.notNull()).addColumn('updated_at', 'text', (c) => c.notNull()).execute();
  const cols = ['gateway_id', 'log_position', 'person', 'at', 'client', 'provider', 'service', 'items', 'agreement', 'purpose', 'legal_basis', 'request_id', 'user_id', 'tlog_index', 'as_at', 'known_at'];
  await db.schema
    .createTable('access_record_new')
    .addColumn('gateway_id', 'text', (c) => c.notNull())
    .addColumn('log_position', 'bigint', (c) => c.notNull())
    .addColumn('person', 'text', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('client', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('service', 'text', (c) => c.notNull())
    .addColumn('items', 'text', (c) => c.notNull())
    .addColumn('agreement', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('legal_basis', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    .addColumn('tlog_index', 'bigint', (c) => c.notNull())
    .addColumn('as_at', 'text')
    .addColumn('known_at', 'text')
    .addColumn('part', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('notice', 'text')
    .addPrimaryKeyConstraint('access_record_key', ['gateway_id', 'log_position', 'part'])
    .execute();
  await sql`INSERT INTO access_record_new (${sql.join(cols.map((c) => sql.ref(c)))}) SELECT ${sql.join(cols.map((c) => sql.ref(c)))} FROM access_record`.execute(db);
  await db.schema.dropTable('access_record').execute();
  await db.schema.alterTable('access_record_new').renameTo('access_record').execute();
  await db.schema.createIndex('access_record_person').on('access_record').columns(['person', 'at', 'log_position']).execute();

  await db.schema.createTable('event_lease').addColumn('name', 'text', (c) => c.primaryKey()).addColumn('holder', 'text', (c) => c.notNull()).addColumn('until', 'text', (c) => c.notNull()).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // The rebuilt access_record keeps its extra columns: dropping them would lose records.
  for (const t of ['event_lease', 'event_relay', 'event_queue', 'event_interest', 'event_subscription', 'event_outbox', 'event_counter']) await db.schema.dropTable(t).execute();
}
