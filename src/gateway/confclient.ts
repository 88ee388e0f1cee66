/**
 * @module gateway/confclient
 * Keeps a gateway's copy of the global configuration: fetches it from the central every
 * interval, verifies it against the anchor, never accepts an older serial than it holds, and
 * stores every accepted copy in the database (so a restart, or another process of the same
 * gateway, starts from it). While the copy is valid the gateway works even if the central is
 * down; once it has expired, {@link ConfClient.current} refuses (fail closed), and the next
 * successful fetch restores service by itself.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { Anchor, GlobalConfiguration } from '../central/types.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { importPublicJwk } from '../core/crypto.ts';
import type { KeyObject } from 'node:crypto';

/** Verifies a signed configuration against the anchor (central/conf's verifyGlobalConfiguration). */
export type ConfVerifier = (jws: string, anchor: Anchor, now: Date, opts?: { minSerial?: number; ignoreClock?: boolean }) => Promise<GlobalConfiguration>;

export interface ConfClientOptions {
  db: Kysely<Database>;
  gatewayId: string;
  anchor: Anchor;
  verify: ConfVerifier;
  /** Fetch interval (default 60 s). */
  intervalMs?: number;
  now?: () => Date;
  /** Fetch timeout (default 5 s). */
  timeoutMs?: number;
}

/**
 * Verifies a stored configuration's signature and content, expired or not: an expired copy still
 * proves what was published (offline log checks need exactly that).
 */
export function verifyAsIssued(verify: ConfVerifier, jws: string, anchor: Anchor): Promise<GlobalConfiguration> {
  return verify(jws, anchor, new Date(), { ignoreClock: true });
}

/**
 * A gateway's own signing key under each configuration serial it stored, from configurations that
 * verify against the anchor (expired ones included: a log outlives its configurations), for
 * checking its message log offline.
 */
export async function storedSigningKeys(db: Kysely<Database>, gatewayId: string, anchor: Anchor, verify: ConfVerifier): Promise<Map<number, KeyObject>> {
  const rows = await db.selectFrom('gateway_conf').select(['serial', 'jws']).where('gateway_id', '=', gatewayId).orderBy('serial').execute();
  const out = new Map<number, KeyObject>();
  for (const r of rows) {
    try {
      const conf = await verifyAsIssued(verify, r.jws, anchor);
      const g = conf.gateways.find((x) => x.id === gatewayId);
      if (g) out.set(Number(r.serial), importPublicJwk(g.signingKey));
    } catch {
      // A stored configuration that does not verify against the anchor proves nothing.
    }
  }
  return out;
}

/** Indexes over a configuration that the hot path uses on every request. */
export interface ConfView {
  conf: GlobalConfiguration;
  expiresAtMs: number;
  members: Map<string, GlobalConfiguration['members'][number]>;
  subsystems: Map<string, GlobalConfiguration['subsystems'][number]>;
  gateways: Map<string, GlobalConfiguration['gateways'][number]>;
  gatewaysByFingerprint: Map<string, GlobalConfiguration['gateways'][number]>;
  /** Gateway signing keys, imported once per configuration. */
  keys: Map<string, KeyObject>;
}

function view(conf: GlobalConfiguration): ConfView {
  const keys = new Map<string, KeyObject>();
  for (const g of conf.gateways) keys.set(g.id, importPublicJwk(g.signingKey));
  return {
    conf,
    expiresAtMs: Date.parse(conf.expiresAt),
    members: new Map(conf.members.map((m) => [m.id, m])),
    subsystems: new Map(conf.subsystems.map((s) => [s.id, s])),
    gateways: new Map(conf.gateways.map((g) => [g.id, g])),
    gatewaysByFingerprint: new Map(conf.gateways.map((g) => [g.tlsFingerprint.toLowerCase(), g])),
    keys,
  };
}

/** The gateway's view of the global configuration. */
export class ConfClient {
  private readonly opts: ConfClientOptions;
  private readonly now: () => Date;
  private latest: ConfView | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Last fetch problem, for /health (never personal data). */
  lastError: string | undefined;
  lastFetchAt: string | undefined;

  constructor(opts: ConfClientOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => new Date());
  }

  /** Loads the newest stored configuration that still verifies (expired or not). */
  async loadStored(): Promise<void> {
    const rows = await this.opts.db.selectFrom('gateway_conf').select(['jws', 'serial']).where('gateway_id', '=', this.opts.gatewayId).orderBy('serial', 'desc').limit(1).execute();
    const row = rows[0];
    if (!row) return;
    try {
      this.accept(await verifyAsIssued(this.opts.verify, row.jws, this.opts.anchor));
    } catch {
      // A stored copy that no longer verifies is ignored; the fetch decides.
    }
  }

  private accept(conf: GlobalConfiguration): void {
    if (!this.latest || conf.serial >= this.latest.conf.serial) this.latest = view(conf);
  }

  /** Fetches, verifies and stores the central's current configuration. Throws on failure. */
  async fetch(): Promise<GlobalConfiguration> {
    const url = new URL('/global-conf', this.opts.anchor.centralUrl);
    let jws: string | undefined;
    // One retry: a pooled keep-alive connection to a central that has since restarted fails once
    // with a socket error before a fresh connection is made.
    for (let attempt = 1; jws === undefined; attempt++) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000), redirect: 'error' });
        if (res.status !== 200) throw new Error(`central answered ${res.status}`);
        jws = (await res.text()).trim();
      } catch (e) {
        if (attempt < 2) continue;
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        this.lastError = `central unreachable: ${e instanceof Error ? e.message : String(e)}${cause ? ` (${cause.code ?? cause.message ?? ''})` : ''}`;
        throw new OnceOnlyError('service_unavailable', this.lastError);
      }
    }
    const conf = await this.opts.verify(jws, this.opts.anchor, this.now(), this.latest ? { minSerial: this.latest.conf.serial } : {});
    const stored = await this.opts.db.selectFrom('gateway_conf').select('serial').where('gateway_id', '=', this.opts.gatewayId).where('serial', '=', conf.serial).executeTakeFirst();
    if (!stored) {
      await this.opts.db
        .insertInto('gateway_conf')
        .values({ gateway_id: this.opts.gatewayId, serial: conf.serial, jws, issued_at: conf.issuedAt, expires_at: conf.expiresAt, fetched_at: this.now().toISOString() })
        .execute();
    }
    this.accept(conf);
    this.lastError = undefined;
    this.lastFetchAt = this.now().toISOString();
    return conf;
  }

  private refreshing: Promise<boolean> | undefined;
  private lastRefreshMs = 0;

  /**
   * Fetches now if the last on-demand fetch is older than `minIntervalMs`; resolves whether a
   * fetch succeeded. Used when a request names a gateway or subsystem the copy does not know yet,
   * so that a newly registered organisation works at once instead of after the next interval;
   * the rate limit keeps a stream of unknown certificates from turning into a stream of fetches.
   */
  refreshIfStale(minIntervalMs = 10_000): Promise<boolean> {
    if (this.refreshing) return this.refreshing;
    const now = this.now().getTime();
    if (now - this.lastRefreshMs < minIntervalMs) return Promise.resolve(false);
    this.lastRefreshMs = now;
    this.refreshing = this.fetch()
      .then(() => true, () => false)
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /** Fetches now, then every interval; failures are kept for /health and retried next time. */
  start(): void {
    const tick = (): void => {
      this.fetch().catch(() => undefined);
    };
    this.timer = setInterval(tick, this.opts.intervalMs ?? 60_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The configuration in force, or a typed refusal when there is none or it has expired. */
  current(): ConfView {
    const v = this.latest;
    if (!v) throw new OnceOnlyError('global_conf_expired', 'this gateway has no global configuration yet', { expected: 'a configuration fetched from the central' });
    if (this.now().getTime() >= v.expiresAtMs) {
      throw new OnceOnlyError('global_conf_expired', 'the global configuration has expired; the gateway refuses traffic until it gets a fresh one', { expiredAt: v.conf.expiresAt });
    }
    return v;
  }

  /** The newest configuration held, valid or not (for /health). */
  held(): GlobalConfiguration | undefined {
    return this.latest?.conf;
  }
}
