/**
 * @module store/migrations/0002_central
 * The central authority's state: the member registry (members, subsystems, gateways), published
 * agreement sets, signed global configurations, counters, management API tokens (hashes only)
 * and the admin audit log (a hash chain). Tables are prefixed `central_` because a small
 * deployment may keep the central and a gateway in one database.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  // Both engines: bigint is "integer" affinity on SQLite and int8 on PostgreSQL (parsed as number).
  void dialect;

  await db.schema
    .createTable('central_member')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('central_subsystem')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('member', 'text', (c) => c.notNull().references('central_member.id'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('central_gateway')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('member', 'text', (c) => c.notNull().references('central_member.id'))
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('tls_certificate', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('signing_key', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  // Every published agreement set is kept (versioned); the highest version is in force.
  await db.schema
    .createTable('central_agreements')
    .addColumn('version', 'bigint', (c) => c.primaryKey())
    .addColumn('document', 'text', (c) => c.notNull())
    .addColumn('published_at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .execute();

  // Every signed global configuration is kept: which rules were in force when is an audit question.
  await db.schema
    .createTable('central_conf')
    .addColumn('serial', 'bigint', (c) => c.primaryKey())
    .addColumn('jws', 'text', (c) => c.notNull())
    .addColumn('issued_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('state_version', 'bigint', (c) => c.notNull())
    .execute();

  // Named counters: `conf_serial` (last serial signed) and `state_version` (bumped by every change).
  await db.schema
    .createTable('central_counter')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('central_token')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('label', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('revoked_at', 'text')
    .execute();

  // seq is assigned by the writer (max + 1 inside the change's transaction), not auto-increment:
  // the primary key then makes two concurrent writers collide instead of forking the chain.
  await db.schema
    .createTable('central_audit')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('detail', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['central_audit', 'central_token', 'central_counter', 'central_conf', 'central_agreements', 'central_gateway', 'central_subsystem', 'central_member']) {
    await db.schema.dropTable(t).execute();
  }
}
