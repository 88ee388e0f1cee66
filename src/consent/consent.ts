/**
 * @module consent/consent
 * Consent records of citizens, kept by the provider gateway that releases their data, with the
 * lifecycle of ISO/IEC TS 27560:2023 (consent record information structure) named by the states of
 * the W3C Data Privacy Vocabulary (DPV 2.0, `dpv:ConsentStatus`):
 *
 * ```
 *                 give                      withdraw
 *   (new) ──> requested ──────> given ─────────────────> withdrawn
 *     │           │               │
 *     │ give      │ refuse        │ expiry reached (recorded when first observed)
 *     └──> given  v               v
 *              refused         expired
 * ```
 *
 * `refused`, `withdrawn` and `expired` are final: consenting again makes a new record, as
 * ISO/IEC TS 27560 treats a renewal as a new consent, so each receipt keeps describing exactly
 * what was agreed. A consent is **in force** while it is `given` and its expiry is still ahead;
 * expiry is evaluated against the clock of the check itself, so no job is needed for it to take
 * effect, and the `expired` transition is written the first time anyone observes it.
 *
 * Every change of state is one transaction: the compare-and-set on the record's version, its
 * history row and the {@link ConsentEventHook} (the gateway appends the event to the transparency
 * log there), so a change is either recorded everywhere or nowhere.
 */
import { randomUUID, createPublicKey, type KeyObject } from 'node:crypto';
import { jsonPayload, signJws, thumbprint, verifyJws } from '../core/jws.ts';
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { Agreement } from '../catalogue/agreements.ts';
import { publicJwk, sha256hex, type Ed25519PublicJwk } from '../core/crypto.ts';
import { parseInstant } from '../core/dates.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { canonicalJson } from '../core/json.ts';
import { parseId } from '../core/subjects.ts';
import type { ConsentRecordTable, Database } from '../store/schema.ts';

/** The states of a consent record. */
export type ConsentState = 'requested' | 'given' | 'refused' | 'withdrawn' | 'expired';

/** Each state as the W3C DPV concept it is (https://w3id.org/dpv#ConsentStatus). */
export const DPV_STATE: Readonly<Record<ConsentState, string>> = {
  requested: 'dpv:ConsentRequested',
  given: 'dpv:ConsentGiven',
  refused: 'dpv:ConsentRefused',
  withdrawn: 'dpv:ConsentWithdrawn',
  expired: 'dpv:ConsentExpired',
};

/** Which state may follow which; anything else is `invalid_consent_transition`. */
const TRANSITIONS: Readonly<Record<ConsentState, readonly ConsentState[]>> = {
  requested: ['given', 'refused'],
  given: ['withdrawn', 'expired'],
  refused: [],
  withdrawn: [],
  expired: [],
};

/** One change of state in a record's history. */
export interface ConsentHistoryEntry {
  /** 1-based position in the history. */
  seq: number;
  /** Null for the change that created the record. */
  from: ConsentState | null;
  to: ConsentState;
  /** When the change took effect, UTC ISO 8601 (for `expired`: the expiry instant itself). */
  at: string;
  /** Who made it: `person`, `operator`, `system` (expiry), or another short label. */
  actor: string;
}

/** A consent record as callers see it. */
export interface Consent {
  id: string;
  /** The person (ISO/IEC 29100 "PII principal"). */
  person: string;
  /** The client subsystem that receives the data (the PII controller). */
  controller: string;
  /** The subsystem that releases the data. */
  provider: string;
  /** The data-sharing agreement the consent is given under. */
  agreement: string;
  purpose: { id: string; description: string };
  legalBasis: string;
  /** The items consented to, sorted; a subset of the agreement's. */
  items: string[];
  state: ConsentState;
  createdAt: string;
  /** When it was given, or null if it never was. */
  givenAt: string | null;
  /** When it stops being in force, or null while only requested. */
  expiresAt: string | null;
  updatedAt: string;
  history: ConsentHistoryEntry[];
}

/**
 * What the {@link ConsentEventHook} receives for every change of state: one JSON-safe object that
 * can be appended to the transparency log as it is. The `format` names this shape and its version.
 */
export interface ConsentEvent {
  format: 'onceonly-consent-event-1';
  /** The consent record's id. */
  id: string;
  /** Its position in the record's history (1 for the change that created it). */
  seq: number;
  person: string;
  controller: string;
  provider: string;
  purpose: string;
  items: string[];
  agreement: string;
  from: ConsentState | null;
  to: ConsentState;
  /** When the change took effect (for `expired`, the expiry instant). */
  at: string;
  /** The record's expiry after the change (null while requested). */
  expiresAt: string | null;
  actor: string;
}

/**
 * What goes into the gateway's transparency log for a consent event: its digest, not the event.
 * A log cannot forget, and the event names the person and the items; the digest commits to them
 * without saying them. The person, holding the record, recomputes the events
 * ({@link ConsentStore.events}) and their digests.
 */
export interface ConsentLogRecord {
  kind: 'consent';
  gateway: string;
  /** sha256hex of the event's canonical JSON (RFC 8785 for the values used). */
  digest: string;
}

/** The transparency-log record of a consent event. */
export function consentLogRecord(event: ConsentEvent, gateway: string): ConsentLogRecord {
  return { kind: 'consent', gateway, digest: sha256hex(canonicalJson(event, 'consentEvent')) };
}

/**
 * Called inside the transaction of every change of state, after the record and its history are
 * written. Throwing rolls the change back, so a change that cannot be logged does not happen.
 */
export type ConsentEventHook = (event: ConsentEvent, tx: Transaction<Database>) => Promise<unknown> | void;

/** Options of {@link ConsentStore}. */
export interface ConsentStoreOptions {
  db: Kysely<Database>;
  /** The agreements this provider releases under (on a gateway: those of the global configuration). */
  agreements: (id: string) => Agreement | undefined;
  onEvent?: ConsentEventHook;
  now?: () => Date;
}

/** A new record, created `requested` or `given`. */
export interface NewConsentInput {
  person: string;
  agreement: string;
  /** Default: every item of the agreement. */
  items?: readonly string[];
  actor?: string;
}

/** Giving consent: a new record, or the answer to a request (`id`). */
export type GiveInput = (NewConsentInput & { expiresAt: string }) | { id: string; expiresAt: string; actor?: string; person?: string };

/** Options of {@link ConsentStore.refuse} and {@link ConsentStore.withdraw}. */
export interface ChangeOptions {
  actor?: string;
  /** When given, the record must be this person's (else `consent_not_found`, revealing nothing). */
  person?: string;
}

/** What {@link ConsentStore.inForce} looks for. */
export interface InForceQuery {
  person: string;
  /** The client subsystem asking. */
  controller: string;
  /** The purpose id of the agreement. */
  purpose: string;
  /** The items asked for: all must be covered. */
  items: readonly string[];
  agreement: string;
  /** The instant of the request (default: now). */
  at?: Date | string;
}

type Row = Selectable<ConsentRecordTable>;

const ACTOR = /^[a-z][a-z0-9:._-]{0,63}$/;

/** Marks a lost compare-and-set: another change applied first, so the transaction is run again. */
class Retry extends Error {}

function notFound(id: string): OnceOnlyError {
  return new OnceOnlyError('consent_not_found', 'no such consent', { field: 'id', id, expected: 'the id of one of your consent records' });
}

function checkActor(actor: string | undefined): string {
  const a = actor ?? 'person';
  if (!ACTOR.test(a)) throw new OnceOnlyError('invalid_value', 'actor must be a short lower-case label', { field: 'actor', expected: 'e.g. person, operator, portal' });
  return a;
}

/** The instant after the last day of the agreement (its `validUntil` is inclusive, UTC). */
function agreementEnd(a: Agreement): number {
  return Date.parse(`${a.validUntil}T00:00:00.000Z`) + 86_400_000;
}

/** The stored consents of a provider gateway. */
export class ConsentStore {
  readonly #db: Kysely<Database>;
  readonly #agreements: (id: string) => Agreement | undefined;
  readonly #onEvent: ConsentEventHook;
  readonly #now: () => Date;

  constructor(opts: ConsentStoreOptions) {
    this.#db = opts.db;
    this.#agreements = opts.agreements;
    this.#onEvent = opts.onEvent ?? (() => undefined);
    this.#now = opts.now ?? (() => new Date());
  }

  /** Records that consent is asked for (the person answers with `give` or `refuse`). */
  async request(input: NewConsentInput): Promise<Consent> {
    const { agreement, person, items } = this.#checkNew(input);
    return this.#create(person, agreement, items, 'requested', null, checkActor(input.actor));
  }

  /**
   * Gives consent until `expiresAt`: a new record, or the answer to a `requested` one (`{id}`).
   * The expiry must be in the future and no later than the end of the agreement.
   */
  async give(input: GiveInput): Promise<Consent> {
    const actor = checkActor(input.actor);
    if ('id' in input) {
      return this.#change(input.id, 'given', actor, input.person, (row) => {
        const a = this.#agreementInForce(row.agreement, 'id');
        return { expires_at: this.#checkExpiry(input.expiresAt, a), given_at: this.#now().toISOString() };
      });
    }
    const { agreement, person, items } = this.#checkNew(input);
    return this.#create(person, agreement, items, 'given', this.#checkExpiry(input.expiresAt, agreement), actor);
  }

  /** Refuses a requested consent. */
  refuse(id: string, opts: ChangeOptions = {}): Promise<Consent> {
    return this.#change(id, 'refused', checkActor(opts.actor), opts.person);
  }

  /** Withdraws a given consent; the next release check no longer finds it in force. */
  withdraw(id: string, opts: ChangeOptions = {}): Promise<Consent> {
    return this.#change(id, 'withdrawn', checkActor(opts.actor), opts.person);
  }

  /** A person's consent records, newest first, with expiry observed now. */
  async list(person: string): Promise<Consent[]> {
    const p = parseId('person', person, 'person');
    const rows = await this.#db.selectFrom('consent_record').selectAll().where('person', '=', p).orderBy('created_at', 'desc').orderBy('id').execute();
    const fresh = await Promise.all(rows.map((r) => this.#observeExpiry(r)));
    return this.#withHistory(fresh);
  }

  /** One consent record (`consent_not_found` otherwise). */
  async get(id: string): Promise<Consent> {
    const row = await this.#db.selectFrom('consent_record').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(id);
    return (await this.#withHistory([await this.#observeExpiry(row)]))[0]!;
  }

  /**
   * The events of a record's history, exactly as they were handed to the event hook (and so to the
   * transparency log, as digests): rebuilt from the record and its history rows. A record's expiry
   * is set once, when it is given, so an event's `expiresAt` is the record's from that change on.
   */
  async events(id: string): Promise<ConsentEvent[]> {
    const c = await this.get(id);
    const row = await this.#db.selectFrom('consent_record').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    let given = false;
    return c.history.map((h) => {
      if (h.to === 'given') given = true;
      return toEvent({ ...row, version: h.seq, state: h.to, expires_at: given ? row.expires_at : null }, h.from, h.at, h.actor);
    });
  }

  /**
   * The consent that allows this release at `at`, or null: a `given` record of this person, for
   * this agreement, controller and purpose, covering every item asked for, given no later than
   * `at` and expiring after it. When several cover, the one that runs longest is returned.
   */
  async inForce(q: InForceQuery): Promise<Consent | null> {
    const person = parseId('person', q.person, 'person');
    const at = typeof q.at === 'string' ? parseInstant(q.at, 'at') : (q.at ?? this.#now()).toISOString();
    const rows = await this.#db
      .selectFrom('consent_record')
      .selectAll()
      .where('person', '=', person)
      .where('agreement', '=', q.agreement)
      .where('state', '=', 'given')
      .execute();
    let best: Row | undefined;
    for (const r of rows) {
      if (r.expires_at === null || r.given_at === null) continue;
      if (r.expires_at <= at) {
        await this.#observeExpiry(r);
        continue;
      }
      if (r.controller !== q.controller || r.purpose !== q.purpose || r.given_at > at) continue;
      const held = new Set(JSON.parse(r.items) as string[]);
      if (!q.items.every((i) => held.has(i))) continue;
      if (!best || r.expires_at > best.expires_at!) best = r;
    }
    return best ? (await this.#withHistory([best]))[0]! : null;
  }

  /** True when `c` is given and its expiry is after `at` (default: now, by this store's clock). */
  isInForce(c: Pick<Consent, 'state' | 'givenAt' | 'expiresAt'>, at: Date = this.#now()): boolean {
    const t = at.toISOString();
    return c.state === 'given' && c.givenAt !== null && c.givenAt <= t && c.expiresAt !== null && t < c.expiresAt;
  }

  /**
   * A signed consent receipt for one record: the {@link ConsentReceipt} and its compact JWS
   * (RFC 7515, `alg: EdDSA` per RFC 8037, `typ` {@link RECEIPT_TYP}, `kid` the RFC 7638 thumbprint
   * of the key). The payload is the canonical JSON (RFC 8785) of the receipt.
   */
  async receipt(id: string, signingKey: KeyObject, opts: { issuer?: string; person?: string } = {}): Promise<SignedConsentReceipt> {
    const c = await this.get(id);
    if (opts.person !== undefined && c.person !== opts.person) throw notFound(id);
    const receipt: ConsentReceipt = {
      version: RECEIPT_VERSION,
      receiptId: randomUUID(),
      timestamp: this.#now().toISOString(),
      ...(opts.issuer !== undefined ? { issuer: opts.issuer } : {}),
      consentId: c.id,
      principal: c.person,
      controller: c.controller,
      provider: c.provider,
      agreement: c.agreement,
      legalBasis: c.legalBasis,
      purpose: c.purpose,
      items: c.items,
      state: c.state,
      dpvState: DPV_STATE[c.state],
      givenAt: c.givenAt,
      expiresAt: c.expiresAt,
      history: c.history,
    };
    const publicKey = publicJwk(createPublicKey(signingKey));
    const keyId = await thumbprint(publicKey);
    const jws = await signJws(canonicalJson(receipt), signingKey, RECEIPT_TYP, keyId);
    return { receipt, jws, keyId, publicKey };
  }

  // -- internals --

  #checkNew(input: NewConsentInput): { agreement: Agreement; person: string; items: string[] } {
    const person = parseId('person', input.person, 'person');
    const agreement = this.#agreementInForce(input.agreement, 'agreement');
    if (!agreement.consentRequired) {
      // Asking for consent where the law already allows the sharing would mislead the person into
      // thinking a "no" stops it (UK GDPR Art. 6: one legal basis, stated up front).
      throw new OnceOnlyError('consent_not_applicable', `agreement ${agreement.id} does not rely on consent: its legal basis is ${agreement.legalBasis}`, {
        field: 'agreement',
        expected: 'an agreement flagged consentRequired',
      });
    }
    const items = input.items === undefined ? [...agreement.items] : [...input.items];
    if (items.length === 0) throw new OnceOnlyError('invalid_value', 'consent must name at least one item', { field: 'items', expected: `items of ${agreement.id}: ${agreement.items.join(', ')}` });
    const granted = new Set(agreement.items);
    const outside = items.filter((i) => typeof i !== 'string' || !granted.has(i));
    if (outside.length) {
      throw new OnceOnlyError('item_not_in_agreement', `agreement ${agreement.id} does not cover ${outside.map(String).join(', ')}`, {
        field: 'items',
        notInAgreement: outside,
        expected: `items of ${agreement.id}: ${agreement.items.join(', ')}`,
      });
    }
    return { agreement, person, items: [...new Set(items)].sort() };
  }

  #agreementInForce(id: string, field: string): Agreement {
    const a = typeof id === 'string' ? this.#agreements(id) : undefined;
    if (!a) throw new OnceOnlyError('unknown_agreement', `no agreement ${String(id)} under which this provider releases data`, { field, expected: 'the id of an agreement in the public register' });
    const today = this.#now().toISOString().slice(0, 10);
    if (a.validFrom > today || today > a.validUntil) {
      throw new OnceOnlyError('agreement_not_in_force', `agreement ${a.id} is not in force today`, { field, agreement: a.id, validFrom: a.validFrom, validUntil: a.validUntil });
    }
    return a;
  }

  #checkExpiry(value: string, a: Agreement): string {
    const expiresAt = parseInstant(value, 'expiresAt');
    if (Date.parse(expiresAt) <= this.#now().getTime()) {
      throw new OnceOnlyError('invalid_expiry', 'the expiry is not in the future', { field: 'expiresAt', expected: 'an instant after now' });
    }
    const end = agreementEnd(a);
    if (Date.parse(expiresAt) > end) {
      // Consent cannot outlive the agreement it is given under: past its end nothing is released anyway.
      throw new OnceOnlyError('invalid_expiry', `the expiry is after the end of agreement ${a.id} (${a.validUntil})`, { field: 'expiresAt', expected: `no later than ${new Date(end).toISOString()}` });
    }
    return expiresAt;
  }

  async #create(person: string, a: Agreement, items: string[], state: 'requested' | 'given', expiresAt: string | null, actor: string): Promise<Consent> {
    const now = this.#now().toISOString();
    const row: Row = {
      id: randomUUID(),
      person,
      controller: a.client,
      provider: a.provider,
      agreement: a.id,
      purpose: a.purpose.id,
      purpose_description: a.purpose.description,
      legal_basis: a.legalBasis,
      items: JSON.stringify(items),
      state,
      created_at: now,
      given_at: state === 'given' ? now : null,
      expires_at: expiresAt,
      updated_at: now,
      version: 1,
    };
    await this.#db.transaction().execute(async (tx) => {
      await tx.insertInto('consent_record').values(row).execute();
      await tx.insertInto('consent_history').values({ consent_id: row.id, seq: 1, from_state: null, to_state: state, at: now, actor }).execute();
      await this.#onEvent(toEvent(row, null, now, actor), tx);
    });
    return this.get(row.id);
  }

  /**
   * Moves a record to `to` in one transaction. A `given` record whose expiry has passed is first
   * recorded as expired, so withdrawing an expired consent is refused like any other final state.
   */
  async #change(id: string, to: ConsentState, actor: string, person: string | undefined, patch?: (row: Row) => Partial<Row>): Promise<Consent> {
    if (typeof id !== 'string' || id.length > 64) throw notFound(String(id));
    for (let attempt = 0; ; attempt++) {
      try {
        // The expiry is committed on its own first: a refused change must not roll it back.
        const before = await this.#db.selectFrom('consent_record').selectAll().where('id', '=', id).executeTakeFirst();
        if (before) await this.#observeExpiry(before);
        await this.#db.transaction().execute(async (tx) => {
          const row = await tx.selectFrom('consent_record').selectAll().where('id', '=', id).executeTakeFirst();
          if (!row || (person !== undefined && row.person !== person)) throw notFound(id);
          if (this.#isExpired(row)) throw new Retry();
          const from = row.state as ConsentState;
          if (!TRANSITIONS[from].includes(to)) {
            throw new OnceOnlyError('invalid_consent_transition', `a consent that is ${from} cannot become ${to}`, {
              field: 'state',
              state: from,
              dpvState: DPV_STATE[from],
              expected: TRANSITIONS[from].length ? `a change to ${TRANSITIONS[from].join(' or ')}` : `nothing: ${from} is final; give a new consent instead`,
            });
          }
          await this.#apply(tx, row, to, this.#now().toISOString(), actor, patch?.(row));
        });
        return await this.get(id);
      } catch (e) {
        if (e instanceof Retry && attempt < 5) continue;
        if (e instanceof Retry) throw new OnceOnlyError('conflict', 'the consent changed concurrently; try again', { field: 'id' });
        throw e;
      }
    }
  }

  /** Compare-and-set on the version, the history row and the hook: the one way a state changes. */
  async #apply(tx: Transaction<Database>, row: Row, to: ConsentState, at: string, actor: string, patch: Partial<Row> = {}): Promise<Row> {
    const version = row.version + 1;
    const res = await tx
      .updateTable('consent_record')
      .set({ ...patch, state: to, updated_at: at, version })
      .where('id', '=', row.id)
      .where('version', '=', row.version)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) throw new Retry();
    const next: Row = { ...row, ...patch, state: to, updated_at: at, version };
    await tx.insertInto('consent_history').values({ consent_id: row.id, seq: version, from_state: row.state, to_state: to, at, actor }).execute();
    await this.#onEvent(toEvent(next, row.state as ConsentState, at, actor), tx);
    return next;
  }

  #isExpired(row: Row): boolean {
    // Recorded only once the expiry is behind the store's own clock, even if a check asks about a
    // later instant, so the history never holds an event from the future.
    return row.state === 'given' && row.expires_at !== null && row.expires_at <= this.#now().toISOString();
  }

  /** Writes the `expired` transition of a record whose expiry has passed; returns the row as it now is. */
  async #observeExpiry(row: Row): Promise<Row> {
    if (!this.#isExpired(row)) return row;
    try {
      return await this.#db.transaction().execute((tx) => this.#apply(tx, row, 'expired', row.expires_at!, 'system'));
    } catch (e) {
      if (!(e instanceof Retry)) throw e;
      // Someone else recorded it (or another change) first: read what is there now.
      return (await this.#db.selectFrom('consent_record').selectAll().where('id', '=', row.id).executeTakeFirst()) ?? row;
    }
  }

  async #withHistory(rows: Row[]): Promise<Consent[]> {
    if (rows.length === 0) return [];
    const hist = await this.#db
      .selectFrom('consent_history')
      .selectAll()
      .where('consent_id', 'in', rows.map((r) => r.id))
      .orderBy('consent_id')
      .orderBy('seq')
      .execute();
    const byId = new Map<string, ConsentHistoryEntry[]>();
    for (const h of hist) {
      const list = byId.get(h.consent_id) ?? [];
      list.push({ seq: Number(h.seq), from: h.from_state as ConsentState | null, to: h.to_state as ConsentState, at: h.at, actor: h.actor });
      byId.set(h.consent_id, list);
    }
    return rows.map((r) => ({
      id: r.id,
      person: r.person,
      controller: r.controller,
      provider: r.provider,
      agreement: r.agreement,
      purpose: { id: r.purpose, description: r.purpose_description },
      legalBasis: r.legal_basis,
      items: JSON.parse(r.items) as string[],
      state: r.state as ConsentState,
      createdAt: r.created_at,
      givenAt: r.given_at,
      expiresAt: r.expires_at,
      updatedAt: r.updated_at,
      history: byId.get(r.id) ?? [],
    }));
  }
}

function toEvent(row: Row, from: ConsentState | null, at: string, actor: string): ConsentEvent {
  return {
    format: 'onceonly-consent-event-1',
    id: row.id,
    seq: row.version,
    person: row.person,
    controller: row.controller,
    provider: row.provider,
    purpose: row.purpose,
    items: JSON.parse(row.items) as string[],
    agreement: row.agreement,
    from,
    to: row.state as ConsentState,
    at,
    expiresAt: row.expires_at,
    actor,
  };
}

// ---------------------------------------------------------------------------------------------
// Consent receipts

/** `version` of a receipt. */
export const RECEIPT_VERSION = 'onceonly-consent-receipt-1';
/** JWS `typ` of a signed receipt (RFC 7515 §4.1.9): no other signed object can pass for one. */
export const RECEIPT_TYP = 'onceonly-consent-receipt+jws';

/**
 * A consent receipt, in the spirit of the Kantara Initiative Consent Receipt Specification v1.1
 * and ISO/IEC 29184 (online privacy notices and consent): who agreed to what, with whom, why,
 * under which law, until when, and every change since.
 */
export interface ConsentReceipt {
  version: typeof RECEIPT_VERSION;
  /** Unique per issued receipt. */
  receiptId: string;
  /** When the receipt was issued (Kantara `consentTimestamp` is `givenAt` here). */
  timestamp: string;
  /** The gateway that issued and signed it, when known. */
  issuer?: string;
  consentId: string;
  /** The person (Kantara `piiPrincipalId`). */
  principal: string;
  /** The client subsystem receiving the data (Kantara `piiControllers`). */
  controller: string;
  /** The subsystem releasing it (the source of the data). */
  provider: string;
  agreement: string;
  /** Kantara `purposes[].lawfulBasis`. */
  legalBasis: string;
  purpose: { id: string; description: string };
  /** Catalogue item ids (Kantara `piiCategory`). */
  items: string[];
  state: ConsentState;
  /** The state as a W3C DPV concept. */
  dpvState: string;
  givenAt: string | null;
  expiresAt: string | null;
  history: ConsentHistoryEntry[];
}

/** A receipt with its signature. */
export interface SignedConsentReceipt {
  receipt: ConsentReceipt;
  /** Compact JWS whose payload is the canonical JSON of `receipt`. */
  jws: string;
  /** RFC 7638 thumbprint of the signing key (the JWS `kid`). */
  keyId: string;
  /** The public key to check it with. */
  publicKey: Ed25519PublicJwk;
}

/** The outcome of {@link verifyReceipt}. */
export type ReceiptVerdict = { ok: true; receipt: ConsentReceipt } | { ok: false; reason: string };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a signed receipt against the issuer's public key: a compact JWS with exactly `alg: EdDSA`
 * (pinned, never taken from the header: RFC 8725 §3.1), our `typ`, no `crit`, a signature that
 * verifies, and a payload of the receipt's shape. Never throws; says why not.
 */
export async function verifyReceipt(jws: string, key: KeyObject | Ed25519PublicJwk): Promise<ReceiptVerdict> {
  const v = await verifyJws(jws, key, RECEIPT_TYP);
  if (!v.ok) return { ok: false, reason: v.reason === 'the signature does not verify with this key' ? 'the signature does not verify with this key: the receipt was altered or signed by someone else' : v.reason };
  const r = jsonPayload(v.payload);
  if (!isObj(r) || r['version'] !== RECEIPT_VERSION || typeof r['consentId'] !== 'string' || typeof r['principal'] !== 'string' || !Array.isArray(r['items']) || !Array.isArray(r['history'])) {
    return { ok: false, reason: `the payload is not a ${RECEIPT_VERSION} receipt` };
  }
  return { ok: true, receipt: r as unknown as ConsentReceipt };
}
