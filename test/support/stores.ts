/**
 * @module test/support/stores
 * Runs a store test on every engine: SQLite always, PostgreSQL when ONCEONLY_TEST_DATABASE_URL is
 * set (CI sets it). Each PostgreSQL run gets a schema of its own, dropped afterwards, so runs
 * never see each other's rows.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, before, after } from 'node:test';
import pg from 'pg';
import { openStore, type Store } from '../../src/store/db.ts';

export const PG_URL = process.env['ONCEONLY_TEST_DATABASE_URL'];
export const PG_SKIP = PG_URL ? false : 'PostgreSQL tests skipped: ONCEONLY_TEST_DATABASE_URL is not set (CI sets it; see README)';

/** Opens a fresh, migrated store of `engine`; `dispose` removes everything it created. */
export async function freshStore(engine: 'sqlite' | 'postgres'): Promise<{ store: Store; dispose: () => Promise<void> }> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'onceonly-test-'));
    const store = await openStore({ dataDir: dir });
    return { store, dispose: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const store = await openStore({ databaseUrl: PG_URL, pgSchema: schema });
  return {
    store,
    dispose: async () => {
      await store.close();
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}

/**
 * Declares `body` once per engine inside a describe block named after it. `getStore` returns the
 * engine's store inside tests and hooks; it is opened before the block and removed after it.
 */
export function eachEngine(title: string, body: (getStore: () => Store, engine: 'sqlite' | 'postgres') => void): void {
  for (const engine of ['sqlite', 'postgres'] as const) {
    const skip = engine === 'postgres' ? PG_SKIP : false;
    describe(`${title} [${engine}]`, { skip }, () => {
      let handle: { store: Store; dispose: () => Promise<void> } | undefined;
      before(async () => {
        handle = await freshStore(engine);
      });
      after(async () => {
        await handle?.dispose();
      });
      body(() => {
        if (!handle) throw new Error('store not open yet: use getStore() inside a test or hook');
        return handle.store;
      }, engine);
    });
  }
}
