/**
 * @module store/migrations/0005_transparency
 * The transparency log (src/transparency): a Merkle tree log with RFC 9162 hashing, stored the way
 * Trillian and CT logs store theirs: every entry with its leaf hash, the hash of every complete
 * subtree above the leaves by (level, index), and the signed tree heads. Proofs and roots of any
 * size then need O(log n) lookups and an append writes only the subtrees it completes.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

export async function up(db: Kysely<unknown>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  // Hashes are 32 raw bytes: half the size of hex in every index page, and no conversions.
  const bytes = dialect === 'postgres' ? 'bytea' : 'blob';

  // One row per log: its size. Appends lock it (SELECT … FOR UPDATE on PostgreSQL, an UPDATE
  // first on SQLite), so that processes sharing one database extend one tree instead of forking it.
  await db.schema
    .createTable('transparency_tree')
    .addColumn('log', 'text', (c) => c.primaryKey())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .execute();

  // `seq` is the 0-based leaf index; `entry` the exact leaf input (canonical JSON text) whose
  // RFC 9162 leaf hash is `leaf_hash`.
  await db.schema
    .createTable('transparency_entry')
    .addColumn('log', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('entry', 'text', (c) => c.notNull())
    .addColumn('leaf_hash', bytes, (c) => c.notNull())
    .addColumn('appended_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('transparency_entry_pk', ['log', 'seq'])
    .execute();

  // Complete subtrees of 2^level leaves (level >= 1; level 0 is the entries' leaf_hash), the
  // subtree `idx` covering leaves [idx * 2^level, (idx + 1) * 2^level). Small fixed-size rows
  // looked up by key only: on SQLite they live in the primary key's b-tree itself.
  await db.schema
    .createTable('transparency_node')
    .addColumn('log', 'text', (c) => c.notNull())
    .addColumn('level', 'integer', (c) => c.notNull())
    .addColumn('idx', 'bigint', (c) => c.notNull())
    .addColumn('hash', bytes, (c) => c.notNull())
    .addPrimaryKeyConstraint('transparency_node_pk', ['log', 'level', 'idx'])
    .$call((b) => (dialect === 'sqlite' ? b.modifyEnd(sql`without rowid`) : b))
    .execute();

  // Signed tree heads: a size may be signed again later (a fresh timestamp on demand).
  await db.schema
    .createTable('transparency_head')
    .addColumn('log', 'text', (c) => c.notNull())
    .addColumn('tree_size', 'bigint', (c) => c.notNull())
    .addColumn('root_hash', bytes, (c) => c.notNull())
    .addColumn('signed_at', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('signature', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('transparency_head_pk', ['log', 'tree_size', 'signed_at'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['transparency_head', 'transparency_node', 'transparency_entry', 'transparency_tree']) await db.schema.dropTable(t).execute();
}
