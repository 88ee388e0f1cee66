/**
 * @module store/migrations/0012_citizen_portal
 * The citizen's side (issue 13).
 *
 * In a register's store (owned by src/registry):
 * - `fact_birth_date`: a partial index over the current birth dates of a population register, so
 *   that matching a signed-in identity to the register (src/identity) finds the people born on a
 *   day with one seek instead of scanning every fact. Identity providers verify a birth date
 *   against a document, so it is the block candidates are drawn from.
 *
 * In the portal's store (owned by src/portal):
 * - `portal_session`: server-side sessions, so that signing out or an operator revokes one at
 *   once, and nothing but an unguessable id sits in the browser. `id` is the SHA-256 of the
 *   cookie's value (a copy of the table cannot be replayed as cookies). `kind` is `login` for a
 *   sign-in under way (its state, nonce and PKCE verifier, used once) or `session`.
 * - `portal_match`: every identity-match decision (outcome, score, which fields agreed), shown to
 *   the person on "How we found your record".
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('fact_birth_date')
    .on('fact')
    .columns(['registry', 'value', 'subject'])
    .where(sql.ref('item'), '=', 'person.birthDate')
    .where(sql.ref('superseded_at'), 'is', null)
    .execute();
  await db.schema
    .createTable('portal_session')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('person', 'text')
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('portal_session_expiry').on('portal_session').columns(['expires_at']).execute();
  await db.schema
    .createTable('portal_match')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('person', 'text')
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('score', 'real')
    .addColumn('fields', 'text', (c) => c.notNull())
    .addColumn('decided_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('portal_match_subject').on('portal_match').columns(['issuer', 'subject', 'decided_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('portal_match').execute();
  await db.schema.dropTable('portal_session').execute();
  await db.schema.dropIndex('fact_birth_date').execute();
}
