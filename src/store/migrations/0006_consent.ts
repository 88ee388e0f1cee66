/**
 * @module store/migrations/0006_consent
 * Citizen consent (ISO/IEC TS 27560 consent records, W3C DPV states) and explicit request with
 * preview (EU Once-Only Technical System). Both live in the provider gateway's store, because the
 * provider is where release is decided: a consent or an approval kept anywhere else could not
 * stop a release.
 *
 * A consent record holds its current state and a version counter; every change of state appends
 * one row to `consent_history` in the same transaction and bumps the version with a
 * compare-and-set, so two concurrent changes can never both apply (the loser sees no row updated).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('consent_record')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('person', 'text', (c) => c.notNull())
    // The controller is the client subsystem that will receive the data (ISO/IEC 29100 "PII controller").
    .addColumn('controller', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('agreement', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    // Copied from the agreement as it read when consent was given: the receipt must show what the
    // person agreed to even after the public register changes its wording.
    .addColumn('purpose_description', 'text', (c) => c.notNull())
    .addColumn('legal_basis', 'text', (c) => c.notNull())
    .addColumn('items', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('given_at', 'text')
    .addColumn('expires_at', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .execute();
  // The release check asks "which consents of this person for this agreement are given".
  await db.schema.createIndex('consent_record_lookup').on('consent_record').columns(['person', 'agreement', 'state']).execute();

  await db.schema
    .createTable('consent_history')
    .addColumn('consent_id', 'text', (c) => c.notNull().references('consent_record.id'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('from_state', 'text')
    .addColumn('to_state', 'text', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('consent_history_pk', ['consent_id', 'seq'])
    .execute();

  await db.schema
    .createTable('preview')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('person', 'text', (c) => c.notNull())
    .addColumn('agreement', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('purpose_description', 'text', (c) => c.notNull())
    .addColumn('legal_basis', 'text', (c) => c.notNull())
    .addColumn('items', 'text', (c) => c.notNull())
    .addColumn('request_fingerprint', 'text', (c) => c.notNull())
    // `pending`, then `approved` or `declined`.
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('link_expires_at', 'text', (c) => c.notNull())
    .addColumn('decided_at', 'text')
    .addColumn('decision_expires_at', 'text')
    // Set once, by the retry that used the decision: what makes an approval single-use.
    .addColumn('consumed_at', 'text')
    .execute();
  await db.schema.createIndex('preview_lookup').on('preview').columns(['person', 'agreement', 'client', 'state']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['preview', 'consent_history', 'consent_record']) await db.schema.dropTable(t).execute();
}
