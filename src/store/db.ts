/**
 * @module store/db
 * Opens the store: SQLite (better-sqlite3, one file under the data directory) by default, or
 * PostgreSQL when a `postgres://` URL is given. Both sit behind the same Kysely instance, and
 * the one migration set runs on either.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration, type MigrationProvider, type SqliteDatabase } from 'kysely';
import { OnceOnlyError } from '../core/errors.ts';
import type { Database } from './schema.ts';
import * as m0001 from './migrations/0001_registries.ts';
import * as m0002 from './migrations/0002_central.ts';
import * as m0003 from './migrations/0003_gateway.ts';
import * as m0004 from './migrations/0004_token_scope.ts';
import * as m0005 from './migrations/0005_transparency.ts';
import * as m0006 from './migrations/0006_consent.ts';
import * as m0007 from './migrations/0007_access.ts';
import * as m0008 from './migrations/0008_exchange_trust.ts';
import * as m0009 from './migrations/0009_witness.ts';
import * as m0010 from './migrations/0010_tell_us_once.ts';
import * as m0011 from './migrations/0011_fact_history.ts';
import * as m0012 from './migrations/0012_citizen_portal.ts';
import * as m0013 from './migrations/0013_address_search.ts';

export type Dialect = 'sqlite' | 'postgres';

/** An open store: the query layer plus what callers need to know about the engine under it. */
export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** The raw better-sqlite3 handle on the embedded engine (benchmarks and bulk loads use it). */
  sqlite?: SQLite.Database;
  /** Human description of where the data lives, with no credentials in it. */
  location: string;
  /** The PostgreSQL schema the store was opened in, when one was given. */
  pgSchema?: string;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** `postgres://…` to use PostgreSQL; otherwise the embedded SQLite file. */
  databaseUrl?: string | undefined;
  /** Directory holding the SQLite file (created if missing). Ignored for PostgreSQL. */
  dataDir?: string | undefined;
  /** Explicit SQLite file path (`:memory:` for tests); overrides `dataDir`. */
  sqliteFile?: string | undefined;
  /** Apply pending migrations on open (default true). */
  migrate?: boolean;
  /** PostgreSQL schema to use (tests isolate themselves in a schema of their own). */
  pgSchema?: string;
}

// Migrations are listed in code, not read from a folder, so they load the same under tsx, from a
// package install and from a bundle. Each takes the dialect because "one migration set" still has
// to spell a few types differently per engine.
type DialectMigration = {
  up: (db: Kysely<unknown>, d: Dialect) => Promise<void>;
  down?: (db: Kysely<unknown>) => Promise<void>;
};
const MIGRATIONS: Record<string, DialectMigration> = {
  '0001_registries': m0001,
  '0002_central': m0002,
  '0003_gateway': m0003,
  '0004_token_scope': m0004,
  '0005_transparency': m0005,
  '0006_consent': m0006,
  '0007_access': m0007,
  '0008_exchange_trust': m0008,
  '0009_witness': m0009,
  '0010_tell_us_once': m0010,
  '0011_fact_history': m0011,
  '0012_citizen_portal': m0012,
  '0013_address_search': m0013,
};

class CodeMigrationProvider implements MigrationProvider {
  private readonly dialect: Dialect;
  constructor(dialect: Dialect) {
    this.dialect = dialect;
  }
  getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    for (const [name, m] of Object.entries(MIGRATIONS)) {
      const down = m.down;
      out[name] = {
        up: (db) => m.up(db, this.dialect),
        ...(down ? { down: (db: Kysely<unknown>) => down(db) } : {}),
      };
    }
    return Promise.resolve(out);
  }
}

/** Redacts the password of a connection URL so it can be printed. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres (unparseable URL)';
  }
}

/** Opens (and by default migrates) the store. */
export async function openStore(opts: StoreOptions = {}): Promise<Store> {
  let store: Store;
  if (opts.databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(opts.databaseUrl)) {
      throw new OnceOnlyError('invalid_request', 'DATABASE_URL must be a postgres:// or postgresql:// URL', {
        field: 'DATABASE_URL',
        expected: 'postgres://user@host:port/database',
      });
    }
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: 10,
      // int8 (OID 20) as a JS number: our sequences stay far below 2^53.
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown =>
          oid === 20 ? (v: string): number => Number(v) : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
      },
      ...(opts.pgSchema ? { options: `-c search_path=${opts.pgSchema}` } : {}),
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    store = { db, dialect: 'postgres', location: describeUrl(opts.databaseUrl), ...(opts.pgSchema ? { pgSchema: opts.pgSchema } : {}), close: () => db.destroy() };
  } else {
    let file = opts.sqliteFile;
    if (!file) {
      const dir = opts.dataDir ?? 'data';
      mkdirSync(dir, { recursive: true });
      file = join(dir, 'onceonly.sqlite');
    }
    const sqlite = new SQLite(file);
    // WAL lets readers run while a writer commits; NORMAL sync is durable across process crashes
    // in WAL mode (https://www.sqlite.org/wal.html), which is the failure we design for.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cachingStatements(sqlite) }) });
    store = { db, dialect: 'sqlite', sqlite, location: file, close: () => db.destroy() };
  }
  if (opts.migrate !== false) {
    try {
      await migrate(store);
    } catch (e) {
      await store.close();
      throw e;
    }
  }
  return store;
}

/**
 * Wraps a better-sqlite3 handle so that Kysely reuses prepared statements: Kysely prepares each
 * query anew, and on hot reads preparing costs as much as running. The set of distinct SQL texts
 * is small (queries are built from fixed shapes), so a bounded map suffices.
 */
function cachingStatements(sqlite: SQLite.Database): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare: (text: string) => {
      let stmt = cache.get(text);
      if (!stmt) {
        stmt = sqlite.prepare(text);
        if (cache.size >= 1000) cache.clear();
        cache.set(text, stmt);
      }
      return stmt;
    },
  };
}

/** Applies every pending migration; returns the names applied. Throws if any fails. */
export async function migrate(store: Store): Promise<string[]> {
  // Kysely looks for its migration tables in every schema unless told which one: without this, a
  // migrated `public` makes it skip creating them in a test's own schema, and then fail.
  const migrator = new Migrator({
    db: store.db,
    provider: new CodeMigrationProvider(store.dialect),
    ...(store.pgSchema ? { migrationTableSchema: store.pgSchema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    throw new OnceOnlyError('internal_error', `migration failed: ${error instanceof Error ? error.message : JSON.stringify(error)}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
