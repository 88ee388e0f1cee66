/**
 * @module gateway/replay
 * The provider gateway's replay guard: a table keyed by (gateway, sending gateway, request id)
 * with an expiry. The request id is X-Road-Request-Id, which the client gateway makes fresh for
 * every request and signs (PR-REST §4.3); information systems do not control it, so an X-Road
 * client that reuses its own X-Road-Id, as X-Road allows, is never refused for that. The primary
 * key refuses the second copy even when two gateway processes receive the two copies.
 */
import type { CompiledQuery, Kysely } from 'kysely';
import type SQLite from 'better-sqlite3';
import type { Database } from '../store/schema.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { GroupCommit } from '../core/batch.ts';

export class ReplayGuard {
  readonly #db: Kysely<Database>;
  readonly #sqlite: SQLite.Database | undefined;
  readonly #gatewayId: string;
  readonly #retainMs: number;
  readonly #now: () => Date;
  #insert: CompiledQuery | undefined;
  #raw: SQLite.Statement | undefined;
  #batcher: GroupCommit<[string, string, string, string], boolean> | undefined;
  #sweep: NodeJS.Timeout | undefined;

  /** `retainMs`: how long an id is remembered; at least twice the accepted clock window. */
  constructor(o: { db: Kysely<Database>; sqlite?: SQLite.Database | undefined; gatewayId: string; retainMs: number; now: () => Date }) {
    this.#db = o.db;
    this.#sqlite = o.sqlite;
    this.#gatewayId = o.gatewayId;
    this.#retainMs = o.retainMs;
    this.#now = o.now;
  }

  /** Records `requestId` from `sender`; throws `replayed_request` if it was seen within the retention. */
  async check(sender: string, requestId: string, field: string): Promise<void> {
    const params: [string, string, string, string] = [this.#gatewayId, sender, requestId, new Date(this.#now().getTime() + this.#retainMs).toISOString()];
    let fresh = true;
    if (this.#sqlite) {
      fresh = await this.#batch(params);
    } else {
      this.#insert ??= this.#db.insertInto('replay_guard').values({ gateway_id: '', client: '', request_id: '', expires_at: '' }).compile();
      try {
        await this.#db.executeQuery({ ...this.#insert, parameters: params });
      } catch (e) {
        // PostgreSQL unique_violation (SQLSTATE 23505): the primary key refused the second copy,
        // whichever gateway process received the first.
        if ((e as { code?: string }).code !== '23505') throw e;
        fresh = false;
      }
    }
    if (!fresh) throw new OnceOnlyError('replayed_request', 'a request with this request id from this gateway was already received', { field });
  }

  /**
   * SQLite: the rows of requests arriving together are written in one transaction (one commit
   * instead of one per request), under Kysely's connection lock. `INSERT OR IGNORE` and the
   * primary key decide, per row, whether the id was new.
   */
  #batch(params: [string, string, string, string]): Promise<boolean> {
    this.#batcher ??= new GroupCommit<[string, string, string, string], boolean>((rows) => {
      const sqlite = this.#sqlite!;
      this.#raw ??= sqlite.prepare('INSERT OR IGNORE INTO replay_guard (gateway_id, client, request_id, expires_at) VALUES (?, ?, ?, ?)');
      const stmt = this.#raw;
      const write = sqlite.transaction(() => rows.map((r) => stmt.run(...r).changes === 1));
      return this.#db.connection().execute(() => Promise.resolve(write()));
    });
    return this.#batcher.submit(params);
  }

  /** Starts deleting expired ids every 30 s. */
  start(): void {
    this.#sweep = setInterval(() => {
      void this.#db.deleteFrom('replay_guard').where('gateway_id', '=', this.#gatewayId).where('expires_at', '<', this.#now().toISOString()).execute().catch(() => undefined);
    }, 30_000);
    this.#sweep.unref();
  }

  stop(): void {
    if (this.#sweep) clearInterval(this.#sweep);
  }
}
