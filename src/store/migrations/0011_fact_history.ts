/**
 * @module store/migrations/0011_fact_history
 * Reads "as known at" an instant (`knownAt`: what the register believed then) must consider rows
 * superseded since, so they cannot use the partial index `fact_current` (rows not superseded) and
 * scanned the whole `fact` table: 0.9 ms a read on the benchmark's small register, and growing
 * with the register. Tell Us Once reads every change's items that way (the values as the change
 * recorded them, however late the relay runs), as do audits and `knownAt` releases. This index
 * over every row turns them into a seek on (registry, subject, item) like current reads.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('fact_history').on('fact').columns(['registry', 'subject', 'item', 'valid_from']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('fact_history').execute();
}
