/**
 * @module portal/sessions
 * The portal's own tables (`portal_session`, `portal_match`, migration 0012): server-side
 * sessions and the record of identity-match decisions. Sessions end on an idle timeout and an
 * absolute one, whichever comes first, and on sign-out; the browser holds only a random id,
 * stored here as its SHA-256, in a signed HttpOnly SameSite cookie.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { sha256 } from '../core/crypto.ts';
import type { Database } from '../store/schema.ts';
import type { FieldAgreement } from '../identity/match.ts';

export interface SessionData {
  issuer: string;
  subject: string;
  /** The name to greet the person by (from the register, once matched). */
  name: string;
}

export interface LoginData {
  state: string;
  nonce: string;
  verifier: string;
}

export interface Session {
  id: string;
  person: string;
  data: SessionData;
  createdAt: Date;
}

export interface MatchRecord {
  id: string;
  person: string | null;
  outcome: string;
  score: number | null;
  fields: FieldAgreement[];
  decidedAt: string;
}

export interface SessionPolicy {
  /** Minutes without a request after which a session ends. */
  idleMinutes: number;
  /** Hours after sign-in after which a session ends whatever happens. */
  absoluteHours: number;
  /** Minutes a sign-in under way may take at the identity provider. */
  loginMinutes: number;
}

export const DEFAULT_POLICY: SessionPolicy = { idleMinutes: 30, absoluteHours: 8, loginMinutes: 10 };

const hashOf = (token: string): string => sha256(token);

export class PortalSessions {
  readonly #db: Kysely<Database>;
  readonly #policy: SessionPolicy;
  readonly #now: () => Date;

  constructor(db: Kysely<Database>, policy: SessionPolicy = DEFAULT_POLICY, now: () => Date = () => new Date()) {
    this.#db = db;
    this.#policy = policy;
    this.#now = now;
  }

  /** A sign-in under way; returns the cookie value. */
  async startLogin(data: LoginData): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    await this.#db.insertInto('portal_session').values({ id: hashOf(token), kind: 'login', person: null, data: JSON.stringify(data), created_at: now.toISOString(), last_seen_at: now.toISOString(), expires_at: new Date(now.getTime() + this.#policy.loginMinutes * 60_000).toISOString() }).execute();
    return token;
  }

  /** Takes a sign-in under way (once: a second call, or one after it expired, gets undefined). */
  async takeLogin(token: string): Promise<LoginData | undefined> {
    const id = hashOf(token);
    const row = await this.#db.deleteFrom('portal_session').where('id', '=', id).where('kind', '=', 'login').returning(['data', 'expires_at']).executeTakeFirst();
    if (!row || row.expires_at <= this.#now().toISOString()) return undefined;
    return JSON.parse(row.data) as LoginData;
  }

  /** A new session (a new id, whatever the browser held before: no fixation); returns the cookie value. */
  async create(person: string, data: SessionData): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    await this.#db.insertInto('portal_session').values({ id: hashOf(token), kind: 'session', person, data: JSON.stringify(data), created_at: now.toISOString(), last_seen_at: now.toISOString(), expires_at: new Date(now.getTime() + this.#policy.absoluteHours * 3_600_000).toISOString() }).execute();
    return token;
  }

  /** The session a cookie names, if it is still in force; touching it restarts the idle clock. */
  async get(token: string): Promise<Session | undefined> {
    const id = hashOf(token);
    const row = await this.#db.selectFrom('portal_session').selectAll().where('id', '=', id).where('kind', '=', 'session').executeTakeFirst();
    if (!row || row.person === null) return undefined;
    const now = this.#now();
    const idleEnd = new Date(new Date(row.last_seen_at).getTime() + this.#policy.idleMinutes * 60_000);
    if (row.expires_at <= now.toISOString() || idleEnd <= now) {
      await this.#db.deleteFrom('portal_session').where('id', '=', id).execute();
      return undefined;
    }
    // At most one write a minute per session: the idle clock needs no finer grain.
    if (now.getTime() - new Date(row.last_seen_at).getTime() > 60_000) await this.#db.updateTable('portal_session').set({ last_seen_at: now.toISOString() }).where('id', '=', id).execute();
    return { id, person: row.person, data: JSON.parse(row.data) as SessionData, createdAt: new Date(row.created_at) };
  }

  async end(token: string): Promise<void> {
    await this.#db.deleteFrom('portal_session').where('id', '=', hashOf(token)).execute();
  }

  /** Removes what has expired (called now and then). */
  async sweep(): Promise<number> {
    const r = await this.#db.deleteFrom('portal_session').where('expires_at', '<=', this.#now().toISOString()).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async recordMatch(issuer: string, subject: string, d: { outcome: string; person: string | null; score: number | null; fields: FieldAgreement[] }): Promise<string> {
    const id = randomUUID();
    await this.#db.insertInto('portal_match').values({ id, issuer, subject, person: d.person, outcome: d.outcome, score: d.score, fields: JSON.stringify(d.fields), decided_at: this.#now().toISOString() }).execute();
    return id;
  }

  /** The decisions made for one signed-in identity, newest first. */
  async matchesOf(issuer: string, subject: string): Promise<MatchRecord[]> {
    const rows = await this.#db.selectFrom('portal_match').selectAll().where('issuer', '=', issuer).where('subject', '=', subject).orderBy('decided_at', 'desc').limit(50).execute();
    return rows.map((r) => ({ id: r.id, person: r.person, outcome: r.outcome, score: r.score, fields: JSON.parse(r.fields) as FieldAgreement[], decidedAt: r.decided_at }));
  }
}
