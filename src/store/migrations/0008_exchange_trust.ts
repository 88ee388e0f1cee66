/**
 * @module store/migrations/0008_exchange_trust
 * What the exchange's trust model and its records need (issue "The exchange: close the holes"):
 *
 * - `central_gateway_subsystem`: which subsystems the central assigned to which gateway (X-Road's
 *   "clients of a security server"). A gateway serves, and a client gateway sends to, only these.
 *   Gateways registered before this migration keep serving what they could: every subsystem of
 *   their member, assigned and active.
 * - `message_log.format`, `peer`, `detail`: records in format 2 also name the other gateway of
 *   the exchange and carry a JSON detail (X-Road request id, error id, the time read, the gateways
 *   tried); format-1 records keep verifying as they were written.
 * - `access_record.as_at`, `known_at`: which time a release read, when it was not today.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('central_gateway_subsystem')
    .addColumn('gateway_id', 'text', (c) => c.notNull())
    .addColumn('subsystem_id', 'text', (c) => c.notNull())
    // `pending` until the operator approves (a registration by a member's token), then `active`.
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('central_gateway_subsystem_pk', ['gateway_id', 'subsystem_id'])
    .execute();
  await sql`INSERT INTO central_gateway_subsystem (gateway_id, subsystem_id, status, created_at)
    SELECT g.id, s.id, 'active', g.created_at FROM central_gateway g JOIN central_subsystem s ON s.member = g.member`.execute(db);

  await db.schema.alterTable('message_log').addColumn('format', 'integer', (c) => c.notNull().defaultTo(1)).execute();
  await db.schema.alterTable('message_log').addColumn('peer', 'text').execute();
  await db.schema.alterTable('message_log').addColumn('detail', 'text').execute();

  await db.schema.alterTable('access_record').addColumn('as_at', 'text').execute();
  await db.schema.alterTable('access_record').addColumn('known_at', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const c of ['known_at', 'as_at']) await db.schema.alterTable('access_record').dropColumn(c).execute();
  for (const c of ['detail', 'peer', 'format']) await db.schema.alterTable('message_log').dropColumn(c).execute();
  await db.schema.dropTable('central_gateway_subsystem').execute();
}
