/**
 * @module store/migrations/0009_witness
 * Witnessed transparency logs (issue "logs whose gaps can be seen"): tree heads are C2SP
 * checkpoints that other organisations' gateways cosign (c2sp.org/tlog-witness).
 *
 * - `transparency_cosignature`: the cosignatures a log's owner collected for its checkpoints, one
 *   line per witness key and checkpoint (size and root), as the witness returned it.
 * - `transparency_witness`: what this gateway, acting as a witness, last cosigned for each log
 *   origin: the size and root it compares the next checkpoint with, and that checkpoint with its
 *   cosignature, for monitors. One row per origin, updated by compare-and-swap (tlog-witness:
 *   checking the old size and persisting the new checkpoint are one atomic step).
 *
 * Heads in `transparency_head` signed before this migration keep their format (key_id is an
 * RFC 7638 thumbprint); new ones hold the checkpoint's key ID (8 hex digits) and signature line.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const bytes = dialect === 'postgres' ? 'bytea' : 'blob';
  await db.schema
    .createTable('transparency_cosignature')
    .addColumn('log', 'text', (c) => c.notNull())
    .addColumn('tree_size', 'bigint', (c) => c.notNull())
    .addColumn('root_hash', bytes, (c) => c.notNull())
    // The cosigner's key name and key ID (8 hex digits): one key, one line per checkpoint.
    .addColumn('witness', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('line', 'text', (c) => c.notNull())
    // The POSIX second the witness signed, as the line carries it.
    .addColumn('cosigned_at', 'bigint', (c) => c.notNull())
    .addColumn('received_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('transparency_cosignature_pk', ['log', 'tree_size', 'root_hash', 'witness', 'key_id'])
    .execute();
  await db.schema.createIndex('transparency_cosignature_witness').on('transparency_cosignature').columns(['log', 'witness', 'tree_size']).execute();

  await db.schema
    .createTable('transparency_witness')
    .addColumn('origin', 'text', (c) => c.primaryKey())
    .addColumn('tree_size', 'bigint', (c) => c.notNull())
    .addColumn('root_hash', bytes, (c) => c.notNull())
    .addColumn('checkpoint', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('transparency_witness').execute();
  await db.schema.dropTable('transparency_cosignature').execute();
}
