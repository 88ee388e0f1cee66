/**
 * @module store/migrations/0003_gateway
 * A gateway's state. Everything a gateway process needs beyond its key files lives here, so that
 * several processes of one organisation can run behind one address on one PostgreSQL:
 * the global configurations it has accepted, the replay guard, and the message log (a hash chain
 * with signed checkpoints).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const serial = dialect === 'postgres' ? 'bigserial' : 'integer';

  // Every verified configuration is kept: an offline log check needs the signing keys that were
  // in force when each checkpoint was made.
  await db.schema
    .createTable('gateway_conf')
    .addColumn('gateway_id', 'text', (c) => c.notNull())
    .addColumn('serial', 'bigint', (c) => c.notNull())
    .addColumn('jws', 'text', (c) => c.notNull())
    .addColumn('issued_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('fetched_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('gateway_conf_pk', ['gateway_id', 'serial'])
    .execute();

  // A request id seen from a client is refused again until the time window has passed.
  await db.schema
    .createTable('replay_guard')
    .addColumn('gateway_id', 'text', (c) => c.notNull())
    .addColumn('client', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('replay_guard_pk', ['gateway_id', 'client', 'request_id'])
    .execute();
  await db.schema.createIndex('replay_guard_expiry').on('replay_guard').columns(['expires_at']).execute();

  await db.schema
    .createTable('message_log')
    .addColumn('seq', serial, (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
    .addColumn('gateway_id', 'text', (c) => c.notNull())
    /** Position in this gateway's chain, 1-based, contiguous. */
    .addColumn('position', 'bigint', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('side', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text', (c) => c.notNull())
    .addColumn('client', 'text', (c) => c.notNull())
    .addColumn('service', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text')
    .addColumn('agreement', 'text')
    .addColumn('items', 'text')
    .addColumn('user_id', 'text')
    .addColumn('status', 'integer', (c) => c.notNull())
    .addColumn('error_type', 'text')
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('response_digest', 'text')
    .addColumn('request_signature', 'text')
    .addColumn('response_signature', 'text')
    .addColumn('request_body', 'text')
    .addColumn('response_body', 'text')
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('message_log_position').on('message_log').columns(['gateway_id', 'position']).unique().execute();

  // The head of each chain: appends lock this row (PostgreSQL) so concurrent gateway processes
  // extend one chain instead of forking it.
  await db.schema
    .createTable('message_log_head')
    .addColumn('gateway_id', 'text', (c) => c.primaryKey())
    .addColumn('position', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('message_log_checkpoint')
    .addColumn('gateway_id', 'text', (c) => c.notNull())
    .addColumn('position', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('conf_serial', 'bigint', (c) => c.notNull())
    .addColumn('signature', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('message_log_checkpoint_pk', ['gateway_id', 'position'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['message_log_checkpoint', 'message_log_head', 'message_log', 'replay_guard', 'gateway_conf']) await db.schema.dropTable(t).execute();
}
