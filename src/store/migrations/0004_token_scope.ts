/**
 * @module store/migrations/0004_token_scope
 * Scoped management tokens: a token may be limited to registering one gateway of one member
 * (what an organisation's operator needs to onboard), and is then used up by that registration.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // Null scope and member: a full management token, as before.
  await db.schema.alterTable('central_token').addColumn('scope', 'text').execute();
  await db.schema.alterTable('central_token').addColumn('member', 'text').execute();
  await db.schema.alterTable('central_token').addColumn('used_at', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const c of ['used_at', 'member', 'scope']) await db.schema.alterTable('central_token').dropColumn(c).execute();
}
