/**
 * @module preview/preview
 * Explicit request and preview, as the EU Once-Only Technical System has it (Regulation (EU)
 * 2022/1463, Art. 10 and 15: the user is "given the possibility to preview the evidence" at the
 * source and decides whether it is exchanged). For an agreement flagged `previewRequired`, the
 * provider gateway answers the first request with `preview_required` and a link to a page at the
 * provider, where the person sees exactly the items and values that would be released, to whom
 * and why, and approves or declines. The decision answers one retry of that request, once.
 *
 * ```
 *   open ──> pending ──approve──> approved ──consume──> (used: 'approved' once)
 *               │
 *               └────decline──> declined ──consume──> (used: preview_declined once)
 * ```
 *
 * The link is a compact JWS (RFC 7515) signed with the provider gateway's own Ed25519 key (the
 * key the global configuration lists for it), so anyone can check that a link is the gateway's;
 * an HMAC would only convince the gateway itself. Until citizen sign-in exists the link is also
 * what identifies the person: whoever holds it can decide (see docs/consent.md).
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { jsonPayload, signJws, verifyJws } from '../core/jws.ts';
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Agreement } from '../catalogue/agreements.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { formatClientId, formatSubsystemId, parseClientId, parseSubsystemId } from '../core/ids.ts';
import { parseId } from '../core/subjects.ts';
import type { Database, PreviewTable } from '../store/schema.ts';

/**
 * JWS `typ` of a preview link token. Short on purpose: the whole token travels as one URL path
 * segment and stays within 200 characters, the longest parameter core/http's apps route.
 */
export const PREVIEW_TYP = 'oo-pv';
/** Default lifetime of a link, and of a decision waiting for its retry: 15 minutes. */
export const DEFAULT_TTL_MS = 15 * 60 * 1000;

/** The state of a preview. */
export type PreviewState = 'pending' | 'approved' | 'declined';

/** What the {@link PreviewEventHook} receives: JSON-safe, ready for the transparency log. */
export interface PreviewEvent {
  format: 'onceonly-preview-event-1';
  id: string;
  person: string;
  client: string;
  provider: string;
  agreement: string;
  purpose: string;
  items: string[];
  /** `opened`; `approved` / `declined` (the person's decision); `consumed` (a retry used it). */
  event: 'opened' | 'approved' | 'declined' | 'consumed';
  /** For `consumed`: what the retry got. */
  outcome?: 'released' | 'refused';
  at: string;
}

/** Called inside the transaction of every change; throwing rolls the change back. */
export type PreviewEventHook = (event: PreviewEvent, tx: Transaction<Database>) => Promise<unknown> | void;

/** Reads the current values of `items` of `person` (the gateway asks its registry). */
/** Reads the values the page shows, from the register of `provider` (the subsystem the request was for). */
export type FetchValues = (person: string, items: readonly string[], provider: string) => Promise<Record<string, unknown>>;

/** Options of {@link PreviewStore}. */
export interface PreviewStoreOptions {
  db: Kysely<Database>;
  /** The provider gateway's Ed25519 signing key. */
  signingKey: KeyObject;
  /**
   * Where the preview pages are served, e.g. `https://gro.example:8620`; links are
   * `{baseUrl}/preview/{token}`. A function when the address is known only once the server listens.
   */
  baseUrl: string | (() => string);
  fetchValues: FetchValues;
  /** Human label of an item for the page (the catalogue's `label`); default the item id. */
  itemLabel?: (item: string) => string | undefined;
  /** Human name of a client subsystem (its member's name); default none. */
  clientName?: (client: string) => string | undefined;
  /** Link lifetime (default 15 minutes). */
  linkTtlMs?: number;
  /** How long a decision waits for the retry (default 15 minutes). */
  decisionTtlMs?: number;
  onEvent?: PreviewEventHook;
  now?: () => Date;
}

/** What {@link PreviewStore.open} needs: the request being held back. */
export interface OpenPreviewInput {
  client: string;
  provider: string;
  person: string;
  items: readonly string[];
  /** The agreement the request relies on (its purpose and legal basis are shown on the page). */
  agreement: Agreement;
  /** The request that triggered the preview (e.g. its request hash), kept for the record. */
  requestFingerprint: string;
}

/** An opened preview. */
export interface OpenedPreview {
  id: string;
  /** The one-time link token. */
  token: string;
  /** The page to send the person to. */
  url: string;
  expiresAt: string;
}

/** What the page shows. */
export interface PreviewView {
  id: string;
  person: string;
  client: string;
  clientName: string | undefined;
  provider: string;
  agreement: string;
  purpose: { id: string; description: string };
  legalBasis: string;
  /** Exactly the items that would be released, with their current values. */
  items: { id: string; label: string; value: unknown }[];
  /** When the link stops working. */
  expiresAt: string;
  /** How long an approval waits for the retry, in minutes. */
  decisionMinutes: number;
}

/** The outcome of a decision. */
/** A request waiting for the person's decision, without the values (the portal reads those itself). */
export interface PendingPreview {
  id: string;
  client: string;
  clientName: string | undefined;
  agreement: string;
  purpose: { id: string; description: string };
  legalBasis: string;
  items: { id: string; label: string }[];
  expiresAt: string;
}

export interface PreviewDecision {
  id: string;
  state: 'approved' | 'declined';
  decidedAt: string;
  /** Until when the retry can use it. */
  validUntil: string;
  client: string;
  clientName: string | undefined;
}

/** The request a retry makes: what {@link PreviewStore.consume} matches decisions against. */
export interface ConsumeQuery {
  client: string;
  provider: string;
  person: string;
  items: readonly string[];
  /** Agreement id. */
  agreement: string;
}

type Row = Selectable<PreviewTable>;

const PID = /^[A-Za-z0-9_-]{22}$/;

function itemsKey(items: readonly string[]): string {
  return JSON.stringify([...new Set(items)].sort());
}

function badLink(reason: string): OnceOnlyError {
  return new OnceOnlyError('invalid_preview_link', `this preview link is not valid: ${reason}`, { field: 'token', expected: 'the link exactly as the gateway issued it' });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Pending and decided previews of a provider gateway. */
export class PreviewStore {
  readonly #o: PreviewStoreOptions;
  readonly #publicKey: KeyObject;
  readonly #now: () => Date;
  readonly #onEvent: PreviewEventHook;
  readonly #linkTtl: number;
  readonly #decisionTtl: number;

  constructor(opts: PreviewStoreOptions) {
    this.#o = opts;
    this.#publicKey = createPublicKey(opts.signingKey);
    this.#now = opts.now ?? (() => new Date());
    this.#onEvent = opts.onEvent ?? (() => undefined);
    this.#linkTtl = opts.linkTtlMs ?? DEFAULT_TTL_MS;
    this.#decisionTtl = opts.decisionTtlMs ?? DEFAULT_TTL_MS;
  }

  /**
   * Holds a request back for the person's decision: stores a pending preview and returns its
   * signed one-time link. Each call opens a new preview; older pending ones stay usable until
   * their links expire.
   */
  async open(input: OpenPreviewInput): Promise<OpenedPreview> {
    const person = parseId('person', input.person, 'person');
    const client = formatClientId(parseClientId(input.client, 'client'));
    const provider = formatSubsystemId(parseSubsystemId(input.provider, 'provider'));
    const a = input.agreement;
    if (a.client !== client || a.provider !== provider) {
      throw new OnceOnlyError('invalid_request', `agreement ${a.id} is not between ${client} and ${provider}`, { field: 'agreement' });
    }
    const granted = new Set(a.items);
    const outside = input.items.filter((i) => !granted.has(i));
    if (input.items.length === 0 || outside.length) {
      throw new OnceOnlyError('item_not_in_agreement', `agreement ${a.id} does not cover ${outside.join(', ') || 'an empty list of items'}`, { field: 'items', notInAgreement: outside });
    }
    if (typeof input.requestFingerprint !== 'string' || input.requestFingerprint.length > 512) {
      throw new OnceOnlyError('invalid_value', 'requestFingerprint must be a string of at most 512 characters', { field: 'requestFingerprint' });
    }
    const now = this.#now();
    // Whole seconds: the JWS carries `exp` in seconds, and the row must match it exactly.
    const expSeconds = Math.floor((now.getTime() + this.#linkTtl) / 1000);
    const row: Row = {
      id: randomBytes(16).toString('base64url'),
      client,
      provider,
      person,
      agreement: a.id,
      purpose: a.purpose.id,
      purpose_description: a.purpose.description,
      legal_basis: a.legalBasis,
      items: itemsKey(input.items),
      request_fingerprint: input.requestFingerprint,
      state: 'pending',
      created_at: now.toISOString(),
      link_expires_at: new Date(expSeconds * 1000).toISOString(),
      decided_at: null,
      decision_expires_at: null,
      consumed_at: null,
    };
    const token = await signJws(JSON.stringify({ jti: row.id, exp: expSeconds }), this.#o.signingKey, PREVIEW_TYP);
    await this.#db().transaction().execute(async (tx) => {
      await tx.insertInto('preview').values(row).execute();
      await this.#onEvent(toEvent(row, 'opened', row.created_at), tx);
    });
    return { id: row.id, token, url: `${(typeof this.#o.baseUrl === 'function' ? this.#o.baseUrl() : this.#o.baseUrl).replace(/\/+$/, '')}/preview/${token}`, expiresAt: row.link_expires_at };
  }

  /**
   * Whose preview a link is, for signing the person in to it; throws for a bad or used link. Says
   * nothing else about the request.
   */
  async personOf(token: string): Promise<string> {
    return (await this.#pending(token)).person;
  }

  /**
   * What the page shows for a link, to the person it is about (signed in as `person`): the items and
   * their current values, to whom and why. Anyone else, the agency that asked included, is refused
   * as if the link were not valid (issue 10, hole 5).
   */
  async view(token: string, person: string): Promise<PreviewView> {
    const row = await this.#pending(token);
    this.#mustBe(row, person);
    const items: string[] = JSON.parse(row.items) as string[];
    const values = await this.#o.fetchValues(row.person, items, row.provider);
    return {
      id: row.id,
      person: row.person,
      client: row.client,
      clientName: this.#o.clientName?.(row.client),
      provider: row.provider,
      agreement: row.agreement,
      purpose: { id: row.purpose, description: row.purpose_description },
      legalBasis: row.legal_basis,
      items: items.map((id) => ({ id, label: this.#o.itemLabel?.(id) ?? id, value: values[id] })),
      expiresAt: row.link_expires_at,
      decisionMinutes: Math.round(this.#decisionTtl / 60_000),
    };
  }

  /** The person (signed in as `person`) approves: one retry of the request within the decision's validity is released. */
  approve(token: string, person: string): Promise<PreviewDecision> {
    return this.#decide(token, 'approved', person);
  }

  /** The person (signed in as `person`) declines: the next retry is refused with `preview_declined`. */
  decline(token: string, person: string): Promise<PreviewDecision> {
    return this.#decide(token, 'declined', person);
  }

  #mustBe(row: Row, person: string): void {
    // The same refusal as for a link that does not exist: the link alone tells nobody else anything.
    if (typeof person !== 'string' || person !== row.person) throw badLink('it is not for the person signed in');
  }

  /**
   * For the retry of a held-back request: `'approved'` exactly once per approval (it is used up
   * here, in one transaction, so two concurrent retries cannot both get it); throws
   * `preview_declined` once per decline; `'none'` when no decision is waiting (the gateway then
   * opens a new preview). When several decisions wait, the latest wins and the others are used up
   * with it, so an earlier approval cannot outlive a later "no".
   */
  async consume(q: ConsumeQuery): Promise<'approved' | 'none'> {
    const key = itemsKey(q.items);
    for (let attempt = 0; attempt < 5; attempt++) {
      const now = this.#now().toISOString();
      const waiting = await this.#db()
        .selectFrom('preview')
        .selectAll()
        .where('person', '=', q.person)
        .where('agreement', '=', q.agreement)
        .where('client', '=', q.client)
        .where('state', 'in', ['approved', 'declined'])
        .where('provider', '=', q.provider)
        .where('items', '=', key)
        .where('consumed_at', 'is', null)
        .where('decision_expires_at', '>', now)
        .orderBy('decided_at', 'desc')
        .orderBy('id')
        .execute();
      const latest = waiting[0];
      if (!latest) return 'none';
      const used = await this.#db().transaction().execute(async (tx) => {
        const res = await tx.updateTable('preview').set({ consumed_at: now }).where('id', '=', latest.id).where('consumed_at', 'is', null).executeTakeFirst();
        if (Number(res.numUpdatedRows) !== 1) return false;
        const others = waiting.slice(1).map((r) => r.id);
        if (others.length) await tx.updateTable('preview').set({ consumed_at: now }).where('id', 'in', others).where('consumed_at', 'is', null).execute();
        await this.#onEvent({ ...toEvent(latest, 'consumed', now), outcome: latest.state === 'approved' ? 'released' : 'refused' }, tx);
        return true;
      });
      // Another retry used it first: look again (there may be another decision, or none).
      if (!used) continue;
      if (latest.state === 'declined') {
        throw new OnceOnlyError('preview_declined', 'the person saw this request at the source and declined it', { agreement: q.agreement, decidedAt: latest.decided_at });
      }
      return 'approved';
    }
    return 'none';
  }

  // -- internals --

  #db(): Kysely<Database> {
    return this.#o.db;
  }

  /**
   * Checks a link: a compact JWS with exactly `alg: EdDSA` and our `typ` (RFC 8725 §3.1, §3.11),
   * signed by this gateway, not expired, naming a preview of this store whose expiry matches.
   */
  async #verify(token: string): Promise<Row> {
    if (typeof token !== 'string' || token.length > 1024) throw badLink('malformed');
    const v = await verifyJws(token, this.#publicKey, PREVIEW_TYP);
    if (!v.ok) throw badLink(v.reason.startsWith('typ') || v.reason.startsWith('alg') || v.reason.startsWith('unsupported') ? 'not a preview link' : v.reason === 'the signature does not verify with this key' ? 'the signature is not this gateway\'s' : 'malformed');
    const claims = jsonPayload(v.payload);
    if (!isObj(claims) || typeof claims['jti'] !== 'string' || !PID.test(claims['jti']) || typeof claims['exp'] !== 'number' || !Number.isSafeInteger(claims['exp'])) {
      throw badLink('malformed claims');
    }
    if (claims['exp'] * 1000 <= this.#now().getTime()) {
      throw new OnceOnlyError('preview_link_expired', 'this preview link has expired; ask the service to send the request again for a new one', { field: 'token', expiredAt: new Date(claims['exp'] * 1000).toISOString() });
    }
    const row = await this.#db().selectFrom('preview').selectAll().where('id', '=', claims['jti']).executeTakeFirst();
    // A genuine signature over an id this store does not hold, or over another expiry, is a link
    // for some other preview (another store of the same key, or a re-issued one): refuse it too.
    if (!row || row.link_expires_at !== new Date(claims['exp'] * 1000).toISOString()) throw badLink('it is for another preview');
    return row;
  }

  async #pending(token: string): Promise<Row> {
    const row = await this.#verify(token);
    if (row.state !== 'pending') throw decided(row);
    return row;
  }

  /**
   * The person's requests waiting for a decision at `provider`, newest first (for the citizen
   * portal's "Requests waiting for you", through gateway/person-previews): what, for whom, why.
   */
  async pendingFor(person: string, provider: string): Promise<PendingPreview[]> {
    const rows = await this.#db()
      .selectFrom('preview')
      .selectAll()
      .where('person', '=', person)
      .where('provider', '=', provider)
      .where('state', '=', 'pending')
      .where('link_expires_at', '>', this.#now().toISOString())
      .orderBy('created_at', 'desc')
      .limit(100)
      .execute();
    return rows.map((r) => ({
      id: r.id, client: r.client, clientName: this.#o.clientName?.(r.client), agreement: r.agreement,
      purpose: { id: r.purpose, description: r.purpose_description }, legalBasis: r.legal_basis,
      items: (JSON.parse(r.items) as string[]).map((id) => ({ id, label: this.#o.itemLabel?.(id) ?? id })), expiresAt: r.link_expires_at,
    }));
  }

  /**
   * Decides a pending preview by its id for the signed-in `person` (the portal's way, where the
   * person is known from sign-in rather than proven by the link). Another person's preview, one
   * already decided or expired, is refused as the link would be.
   */
  async decideFor(id: string, to: 'approved' | 'declined', person: string, provider: string): Promise<PreviewDecision> {
    const row = typeof id === 'string' && PID.test(id) ? await this.#db().selectFrom('preview').selectAll().where('id', '=', id).executeTakeFirst() : undefined;
    if (!row || row.person !== person || row.provider !== provider) throw badLink('it is not for the person signed in');
    if (row.link_expires_at <= this.#now().toISOString()) throw new OnceOnlyError('preview_link_expired', 'this request has expired; the service must ask again', { field: 'id' });
    if (row.state !== 'pending') throw decided(row);
    return this.#decideRow(row, to);
  }

  async #decide(token: string, to: 'approved' | 'declined', person: string): Promise<PreviewDecision> {
    const row = await this.#pending(token);
    this.#mustBe(row, person);
    return this.#decideRow(row, to);
  }

  async #decideRow(row: Row, to: 'approved' | 'declined'): Promise<PreviewDecision> {
    const now = this.#now();
    const decidedAt = now.toISOString();
    const validUntil = new Date(now.getTime() + this.#decisionTtl).toISOString();
    await this.#db().transaction().execute(async (tx) => {
      // Compare-and-set on the state: of two clicks (or two tabs) exactly one decides.
      const res = await tx
        .updateTable('preview')
        .set({ state: to, decided_at: decidedAt, decision_expires_at: validUntil })
        .where('id', '=', row.id)
        .where('state', '=', 'pending')
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) throw decided(row);
      await this.#onEvent(toEvent(row, to, decidedAt), tx);
    });
    return { id: row.id, state: to, decidedAt, validUntil, client: row.client, clientName: this.#o.clientName?.(row.client) };
  }
}

function decided(row: Row): OnceOnlyError {
  return new OnceOnlyError('preview_already_decided', 'this request has already been answered; each link can be used once', { field: 'token', previewId: row.id });
}

function toEvent(row: Row, event: PreviewEvent['event'], at: string): PreviewEvent {
  return {
    format: 'onceonly-preview-event-1',
    id: row.id,
    person: row.person,
    client: row.client,
    provider: row.provider,
    agreement: row.agreement,
    purpose: row.purpose,
    items: JSON.parse(row.items) as string[],
    event,
    at,
  };
}
