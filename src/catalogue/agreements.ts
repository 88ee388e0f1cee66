/**
 * @module catalogue/agreements
 * The public register of data-sharing agreements: which client subsystem may read which catalogue
 * items from which provider, for which purpose, under which legal basis, from when until when.
 * Providers enforce it deny-by-default; the form check uses it to tell a service whether it may
 * re-use a fact instead of asking for it again.
 *
 * Every agreement has an end date. Open-ended sharing is what the register exists to prevent
 * (UK GDPR Art. 5(1)(e) storage limitation applies to access too), so `validUntil` is required;
 * both `validFrom` and `validUntil` are inclusive calendar dates.
 */
import { fileURLToPath } from 'node:url';
import { parseIsoDate } from '../core/dates.ts';
import { formatClientId, formatSubsystemId, parseClientId, parseSubsystemId } from '../core/ids.ts';
import type { Catalogue } from './catalogue.ts';
import { ProblemCollector, readDocument, type DocPath, type Locator } from './document.ts';

/** Why data is shared: a stable id that requests name, and words a citizen can read. */
export interface Purpose {
  readonly id: string;
  readonly description: string;
}

/**
 * Leave to read an item as it was (`asAt`, valid time) or as the register believed it (`knownAt`,
 * transaction time), not only as it is today: granted per item, optionally only `years` back.
 */
export interface HistoryGrant {
  readonly item: string;
  /** How many years back from today reads may go; absent: no limit. */
  readonly years?: number;
}

/** One data-sharing agreement. */
export interface Agreement {
  /** Stable slug, e.g. `leeds-parking-population`. */
  readonly id: string;
  /** The client that reads: a subsystem, or a member (X-Road's member-level client). */
  readonly client: string;
  /** The subsystem that serves; it masters every item of the agreement. */
  readonly provider: string;
  /** Catalogue item ids the provider's registry services may release (at least one, unless `services` is given). */
  readonly items: readonly string[];
  /** Items of `items` whose past may be read too; every other item only as it is today. */
  readonly history: readonly HistoryGrant[];
  /**
   * Service codes of the provider's plain REST services (not registries) the client may call, with
   * any method and path: X-Road's service-level access right, for services that are not item reads.
   */
  readonly services: readonly string[];
  readonly purpose: Purpose;
  /** The law that allows the sharing, e.g. "Digital Economy Act 2017, s.35". */
  readonly legalBasis: string;
  /** First day in force, `YYYY-MM-DD`, inclusive. */
  readonly validFrom: string;
  /** Last day in force, `YYYY-MM-DD`, inclusive. */
  readonly validUntil: string;
  /** The provider releases the data only with the subject's recorded consent. */
  readonly consentRequired: boolean;
  /** The subject sees the data at the source and approves its release first (OOTS preview). */
  readonly previewRequired: boolean;
  /**
   * Kinds of change (`move`, `name`, `death`, …) the provider may tell the client of (Tell Us
   * Once, src/events): each event carries only the agreement's items, about people on the
   * client's interest list. Empty: no notifications.
   */
  readonly events: readonly string[];
}

/** What {@link AgreementRegister.findCovering} looks for. */
export interface CoveringQuery {
  client: string;
  provider: string;
  /** Every one of these items must be in the agreement. */
  items: readonly string[];
  /** When given, only an agreement for this purpose qualifies. */
  purposeId?: string;
  /** `YYYY-MM-DD`; the agreement must be in force on this day. */
  date: string;
}

const KEYS = ['id', 'client', 'provider', 'purpose', 'legalBasis', 'validFrom', 'validUntil'] as const;
const OPTIONAL = ['items', 'history', 'services', 'consentRequired', 'previewRequired', 'events'] as const;
const SERVICE_CODE = /^[A-Za-z0-9][A-Za-z0-9._'()+,=?-]{0,254}$/;

function canonical(id: string, field: string): string {
  return formatSubsystemId(parseSubsystemId(id, field));
}

function canonicalClient(id: string, field: string): string {
  return formatClientId(parseClientId(id, field));
}

/** True when `a` is in force on `date` (inclusive at both ends). */
export function isInForce(a: Agreement, date: string): boolean {
  // ISO dates compare correctly as text.
  return a.validFrom <= date && date <= a.validUntil;
}

/** The loaded register of agreements. */
export class AgreementRegister {
  readonly #agreements: readonly Agreement[];
  readonly #byId: ReadonlyMap<string, Agreement>;

  /** Use {@link loadAgreements} or {@link parseAgreements}; this trusts already-checked agreements. */
  constructor(agreements: readonly Agreement[]) {
    this.#agreements = agreements;
    this.#byId = new Map(agreements.map((a) => [a.id, a]));
  }

  /** All agreements, in file order, including expired and future ones (the register is public history). */
  list(): Agreement[] {
    return [...this.#agreements];
  }

  /** The agreement with this id, or undefined. */
  get(id: string): Agreement | undefined {
    return this.#byId.get(id);
  }

  /** The agreements in force on `date` (`YYYY-MM-DD`; `invalid_date` otherwise). */
  inForce(date: string): Agreement[] {
    const d = parseIsoDate(date, 'date');
    return this.#agreements.filter((a) => isInForce(a, d));
  }

  /** The agreements in force on `date` between this client and provider. */
  forClientAndProvider(client: string, provider: string, date: string): Agreement[] {
    const c = canonicalClient(client, 'client');
    const p = canonical(provider, 'provider');
    return this.inForce(date).filter((a) => a.client === c && a.provider === p);
  }

  /**
   * The first agreement (in register order) in force on `date` that lets `client` read all of
   * `items` from `provider`, for `purposeId` when given; undefined when none does.
   */
  findCovering(query: CoveringQuery): Agreement | undefined {
    return this.forClientAndProvider(query.client, query.provider, query.date).find(
      (a) => (query.purposeId === undefined || a.purpose.id === query.purposeId) && query.items.every((i) => a.items.includes(i)),
    );
  }
}

/**
 * Checks a parsed agreements document `{agreements: [...]}` against the catalogue and builds the
 * register; every problem is collected and thrown together as one `invalid_file`.
 */
export function parseAgreements(doc: unknown, file: string, catalogue: Catalogue, locate?: Locator): AgreementRegister {
  const p = new ProblemCollector(file, locate);
  const root = p.object(doc, [], ['agreements'], [], true);
  const raw = root ? p.array(root['agreements'], ['agreements']) : undefined;
  const out: Agreement[] = [];
  const seen = new Map<string, number>();

  (raw ?? []).forEach((entry, index) => {
    const at: DocPath = ['agreements', index];
    const o = p.object(entry, at, KEYS, OPTIONAL);
    if (!o) return;
    const id = p.slug(o['id'], [...at, 'id']);
    const name = id ?? `agreements[${index}]`;
    const client = p.client(o['client'], [...at, 'client']);
    const provider = p.subsystem(o['provider'], [...at, 'provider']);
    if (client !== undefined && provider !== undefined && client === provider) {
      p.report([...at, 'provider'], `agreement "${name}": client and provider are both ${client}; a subsystem needs no agreement to read its own data`, 'a provider other than the client');
    }
    const purpose = readPurpose(p, o['purpose'], [...at, 'purpose']);
    const legalBasis = p.string(o['legalBasis'], [...at, 'legalBasis']);
    const validFrom = p.date(o['validFrom'], [...at, 'validFrom']);
    const validUntil = p.date(o['validUntil'], [...at, 'validUntil']);
    if (validFrom !== undefined && validUntil !== undefined && validUntil < validFrom) {
      p.report([...at, 'validUntil'], `agreement "${name}": validUntil ${validUntil} is before validFrom ${validFrom}`, `a date on or after ${validFrom}`);
    }
    const consentRequired = p.boolean(o['consentRequired'], [...at, 'consentRequired'], false);
    const previewRequired = p.boolean(o['previewRequired'], [...at, 'previewRequired'], false);
    const services = readServices(p, o['services'], [...at, 'services']);
    const events = readEvents(p, o['events'], [...at, 'events']);
    const items = o['items'] === undefined && services && services.length > 0 ? [] : readItems(p, o['items'], [...at, 'items'], name, provider, catalogue);
    if (o['items'] === undefined && !(services && services.length > 0)) p.report([...at, 'items'], 'is required', 'the items granted, or services');
    const history = items ? readHistory(p, o['history'], [...at, 'history'], name, items) : undefined;

    if (id !== undefined) {
      const prior = seen.get(id);
      if (prior !== undefined) p.report([...at, 'id'], `duplicate agreement id "${id}" (first at agreements[${prior}])`, 'each agreement id once');
      else seen.set(id, index);
    }
    if (events && events.length > 0 && items && items.length === 0) p.report([...at, 'events'], `agreement "${name}" tells of changes but grants no items for the events to carry`, 'items granted beside events');
    if (id === undefined || client === undefined || provider === undefined || !items || !history || !services || !events || !purpose || legalBasis === undefined || validFrom === undefined || validUntil === undefined) return;
    out.push({ id, client, provider, items, history, services, purpose, legalBasis, validFrom, validUntil, consentRequired, previewRequired, events });
  });

  p.throwIfAny('agreements');
  return new AgreementRegister(out);
}

/** The shipped register of agreements, found relative to this file so that any working directory works. */
export const DEFAULT_AGREEMENTS_FILE = fileURLToPath(new URL('../../config/agreements.yaml', import.meta.url));

/** Reads and checks an agreements file (`.yaml`, `.yml` or `.json`) against the catalogue. */
export function loadAgreements(file: string, catalogue: Catalogue): AgreementRegister {
  const { doc, locate } = readDocument(file);
  return parseAgreements(doc, file, catalogue, locate);
}

function readPurpose(p: ProblemCollector, v: unknown, path: DocPath): Purpose | undefined {
  if (v === undefined || v === null) return undefined;
  const o = p.object(v, path, ['id', 'description']);
  if (!o) return undefined;
  const id = p.slug(o['id'], [...path, 'id']);
  const description = p.string(o['description'], [...path, 'description']);
  return id !== undefined && description !== undefined ? { id, description } : undefined;
}

function readServices(p: ProblemCollector, v: unknown, path: DocPath): string[] | undefined {
  if (v === undefined || v === null) return [];
  const list = p.array(v, path, true);
  if (!list) return undefined;
  const out: string[] = [];
  list.forEach((raw, i) => {
    const code = p.string(raw, [...path, i], SERVICE_CODE, 'a service code of the provider subsystem');
    if (code === undefined) return;
    if (out.includes(code)) p.report([...path, i], `service "${code}" is listed twice`, 'each service once');
    else out.push(code);
  });
  return out.length === list.length ? out : undefined;
}

// A kind of change is named as the register's change types are (`move`, `name`, `correction`).
const EVENT_TYPE = /^[a-z][a-z0-9-]{0,39}$/;

function readEvents(p: ProblemCollector, v: unknown, path: DocPath): string[] | undefined {
  if (v === undefined || v === null) return [];
  const list = p.array(v, path, true);
  if (!list) return undefined;
  const out: string[] = [];
  list.forEach((raw, i) => {
    const t = p.string(raw, [...path, i], EVENT_TYPE, 'a kind of change of the provider\'s register, e.g. move, name, death');
    if (t === undefined) return;
    if (out.includes(t)) p.report([...path, i], `event "${t}" is listed twice`, 'each kind of change once');
    else out.push(t);
  });
  return out.length === list.length ? out : undefined;
}

function readHistory(p: ProblemCollector, v: unknown, path: DocPath, name: string, items: readonly string[]): HistoryGrant[] | undefined {
  if (v === undefined || v === null) return [];
  const list = p.array(v, path, true);
  if (!list) return undefined;
  const out: HistoryGrant[] = [];
  let ok = true;
  list.forEach((raw, i) => {
    const at = [...path, i];
    const o = p.object(raw, at, ['item'], ['years']);
    if (!o) {
      ok = false;
      return;
    }
    const item = p.string(o['item'], [...at, 'item']);
    const years = o['years'];
    if (years !== undefined && (typeof years !== 'number' || !Number.isInteger(years) || years < 1 || years > 200)) {
      p.report([...at, 'years'], 'must be a whole number of years from 1 to 200', 'how many years back reads may go, e.g. 5 (omit for no limit)');
      ok = false;
    }
    if (item === undefined) {
      ok = false;
    } else if (!items.includes(item)) {
      // History is a way of reading an item already granted, never a way to a new one.
      p.report([...at, 'item'], `agreement "${name}" grants the history of "${item}", which it does not grant`, `one of its items: ${items.join(', ')}`);
      ok = false;
    } else if (out.some((h) => h.item === item)) {
      p.report([...at, 'item'], `agreement "${name}" grants the history of "${item}" twice`, 'each item once');
      ok = false;
    } else {
      out.push(years === undefined ? { item } : { item, years: years as number });
    }
  });
  return ok ? out : undefined;
}

function readItems(p: ProblemCollector, v: unknown, path: DocPath, name: string, provider: string | undefined, catalogue: Catalogue): string[] | undefined {
  const list = p.array(v, path, true);
  if (!list) return undefined;
  const items: string[] = [];
  let ok = true;
  list.forEach((raw, i) => {
    const at = [...path, i];
    const itemId = p.string(raw, at);
    if (itemId === undefined) {
      ok = false;
      return;
    }
    const item = catalogue.get(itemId);
    if (!item) {
      p.report(at, `agreement "${name}" names "${itemId}", which is not an item of the catalogue`, 'an item id from the catalogue');
      ok = false;
    } else if (provider !== undefined && item.owner !== provider) {
      // A provider can only release what it masters; anything else would be a copy of a copy.
      p.report(at, `agreement "${name}" names item "${itemId}", which ${provider} does not master: its owner is ${item.owner}`, `an item mastered by ${provider}`);
      ok = false;
    } else if (items.includes(itemId)) {
      p.report(at, `agreement "${name}" lists item "${itemId}" twice`, 'each item once');
      ok = false;
    } else {
      items.push(itemId);
    }
  });
  return ok ? items : undefined;
}

