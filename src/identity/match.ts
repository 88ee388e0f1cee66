/**
 * @module identity/match
 * Matching a signed-in identity to the population register. The UK has no national identity
 * number: an identity provider (GOV.UK One Login, or the demo's) vouches for a name, a birth date
 * and an address, and the register must find the one record that is that person, or say that it
 * cannot. A wrong match would show one person another's data, so the rule is strict: one
 * candidate at or above the match threshold and no other candidate even plausible, or no match.
 *
 * The comparison is the linkage engine's (Fellegi-Sunter, linkage/engine), the same that links
 * agencies' copies in the duplication audit. Its model (m and u per comparison level) is trained
 * once per process on the register itself: the audit's extract generator copies a sample of the
 * register's people with the errors copies really carry (typos, nicknames, old names and
 * addresses, swapped fields), and m is estimated from those labelled copies, u from random pairs
 * of the register. A register too small to train on (fewer than {@link MIN_TRAINING_PEOPLE}) is
 * refused rather than matched with made-up weights. Candidates are the people born on the
 * claimed day (an identity provider checks a birth date against a document), read from an index.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { isCalendarDate } from '../linkage/compare.ts';
import { detectFields, explain, link, parseBlockingRule } from '../linkage/engine.ts';
import type { FieldSpec, Model, Table } from '../linkage/types.ts';
import { AGENCIES, makeExtracts } from '../audit/extracts.ts';
import { registerFieldsFor, registerFromStore, registerPeopleFromStore, registerTable } from '../audit/register.ts';
import type { RegistryRepository } from '../registry/repository.ts';
import { REGISTRY_IDS } from '../registry/registries.ts';

/** What the identity provider vouches for. */
export interface ClaimedIdentity {
  givenName: string;
  familyName: string;
  /** YYYY-MM-DD. */
  birthDate: string;
  /** The current address, when the provider gives one. */
  address?: { line: string; town: string; postcode: string } | null;
}

/** One comparison of the decision, as the person is shown it. */
export interface FieldAgreement {
  /** The comparison (`given_name`, `surname`, `dob`, `postcode`, ...). */
  field: string;
  /** The level reached, e.g. `exact`, `jaro-winkler >= 0.92`, `else`, `null`. */
  level: string;
  /** Whether this level counts for the match (its weight is positive). */
  agreed: boolean;
}

export interface MatchDecision {
  outcome: 'matched' | 'none' | 'ambiguous';
  /** The register id, only when matched. */
  person: string | null;
  /** The best candidate's match probability; null when nobody shares the birth date. */
  score: number | null;
  /** The best candidate's comparisons (nothing of the register's values: they may be someone else's). */
  fields: FieldAgreement[];
  /** How many people share the birth date. */
  candidates: number;
}

/** The fewest people a register must hold for its matching model to be trained on it. */
export const MIN_TRAINING_PEOPLE = 200;
/** A match needs at least this probability... */
export const MATCH_THRESHOLD = 0.99;
/** ...and every other candidate below this one. */
export const PLAUSIBLE = 0.5;
// Most people born on one day that are compared; a register of 70 million has about 2,500.
const MAX_CANDIDATES = 10_000;

// The claimed identity is laid out as one of the audit's extracts (school admissions: ISO dates),
// so the trained model's comparisons apply to it unchanged.
const SPEC = AGENCIES.find((a) => a.key === 'school-admissions')!;

const MAX_TEXT = 200;

function text(v: unknown, field: string, required: boolean): string | null {
  if (v === undefined || v === null || v === '') {
    if (required) throw new OnceOnlyError('invalid_request', `${field} is required`, { field, expected: 'text' });
    return null;
  }
  if (typeof v !== 'string' || v.length > MAX_TEXT || /\p{Cc}/u.test(v)) throw new OnceOnlyError('invalid_request', `${field} must be text of at most ${MAX_TEXT} characters`, { field, expected: 'text' });
  return v.trim();
}

/** Checks an untrusted claim (the match service's body). */
export function parseClaim(body: unknown): ClaimedIdentity {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new OnceOnlyError('invalid_request', 'the body must be a JSON object', { field: 'body', expected: '{givenName, familyName, birthDate, address?}' });
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!['givenName', 'familyName', 'birthDate', 'address'].includes(k)) throw new OnceOnlyError('invalid_request', `unknown field ${JSON.stringify(k.slice(0, 40))}`, { field: `body.${k.slice(0, 40)}`, expected: 'givenName, familyName, birthDate, address' });
  const birthDate = text(b['birthDate'], 'body.birthDate', true)!;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(birthDate) || !isCalendarDate(birthDate.replaceAll('-', ''))) throw new OnceOnlyError('invalid_request', 'birthDate must be a calendar date', { field: 'body.birthDate', expected: 'YYYY-MM-DD' });
  let address: ClaimedIdentity['address'] = null;
  if (b['address'] !== undefined && b['address'] !== null) {
    const a = b['address'];
    if (typeof a !== 'object' || Array.isArray(a)) throw new OnceOnlyError('invalid_request', 'address must be an object', { field: 'body.address', expected: '{line, town, postcode}' });
    const r = a as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!['line', 'town', 'postcode'].includes(k)) throw new OnceOnlyError('invalid_request', `unknown field ${JSON.stringify(k.slice(0, 40))}`, { field: `body.address.${k.slice(0, 40)}`, expected: 'line, town, postcode' });
    address = { line: text(r['line'], 'body.address.line', false) ?? '', town: text(r['town'], 'body.address.town', false) ?? '', postcode: text(r['postcode'], 'body.address.postcode', false) ?? '' };
  }
  return { givenName: text(b['givenName'], 'body.givenName', true)!, familyName: text(b['familyName'], 'body.familyName', true)!, birthDate, address };
}

function claimTable(c: ClaimedIdentity): Table {
  const cell = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);
  return { source: 'signed-in identity', columns: [...SPEC.header], ids: ['claim'], rows: [['claim', c.givenName, c.familyName, c.birthDate, cell(c.address?.line), cell(c.address?.town), cell(c.address?.postcode)]] };
}

/** Matches identities to one population register. */
export class IdentityMatcher {
  readonly #registers: RegistryRepository;
  #trained: Promise<{ model: Model; fields: FieldSpec[]; rightFields: FieldSpec[] }> | undefined;

  constructor(registers: RegistryRepository) {
    this.#registers = registers;
  }

  /** The model, trained on first use (seconds for a register of 10,000). */
  model(): Promise<{ model: Model; fields: FieldSpec[]; rightFields: FieldSpec[] }> {
    this.#trained ??= this.#train();
    // A failed training is tried again next time, not remembered.
    this.#trained.catch(() => (this.#trained = undefined));
    return this.#trained;
  }

  async #train(): Promise<{ model: Model; fields: FieldSpec[]; rightFields: FieldSpec[] }> {
    const snapshot = await registerFromStore(this.#registers);
    if (snapshot.people.length < MIN_TRAINING_PEOPLE) {
      throw new OnceOnlyError('service_unavailable', `identity matching needs a register of at least ${MIN_TRAINING_PEOPLE} people to train on; this one holds ${snapshot.people.length}`);
    }
    const { extracts } = makeExtracts(snapshot, { seed: 1, agencies: [SPEC] });
    const e = extracts[0]!;
    const table: Table = { source: 'training copies', columns: e.header, ids: e.rows.map((r) => r[0]!), rows: e.rows.map((r) => r.map((v) => (v === '' ? null : v))) };
    const fields = detectFields(table).fields;
    const rightFields = registerFieldsFor(fields);
    const labels = e.truth.rows.flatMap((r) => (r.personId === null ? [] : [{ leftId: r.recordId, rightId: r.personId, match: true }]));
    const right = registerTable(snapshot).table;
    const res = link(table, right, { fields, rightFields, labels, seed: 1, threshold: 0.99, randomPairs: 100_000 });
    return { model: res.model, fields, rightFields };
  }

  /** The decision for one claimed identity. */
  async match(claim: ClaimedIdentity): Promise<MatchDecision> {
    const { model, fields, rightFields } = await this.model();
    const ids = await this.#registers.peopleBornOn(REGISTRY_IDS.population, claim.birthDate, MAX_CANDIDATES + 1);
    if (ids.length > MAX_CANDIDATES) throw new OnceOnlyError('service_unavailable', `more than ${MAX_CANDIDATES} people share the birth date: matching would not be reliable`);
    if (ids.length === 0) return { outcome: 'none', person: null, score: null, fields: [], candidates: 0 };
    const people = await registerPeopleFromStore(this.#registers, ids);
    // Each person as known now and with their earlier names and addresses: someone who moved or
    // married since their identity was proved is still found.
    const { table: right, personOf } = registerTable({ source: 'population register', people }, { history: true });
    const left = claimTable(claim);
    const res = link(left, right, { fields, rightFields, model, threshold: 0, blocking: [parseBlockingRule('dob')] });
    const best = new Map<number, { probability: number; row: number }>();
    for (const p of res.pairs) {
      const person = personOf[p.right]!;
      const seen = best.get(person);
      if (!seen || p.probability > seen.probability) best.set(person, { probability: p.probability, row: p.right });
    }
    const ranked = [...best.entries()].sort((a, b) => b[1].probability - a[1].probability);
    const top = ranked[0];
    if (!top) return { outcome: 'none', person: null, score: null, fields: [], candidates: people.length };
    const why = explain(model, left, 0, right, top[1].row, { fields, rightFields });
    const agreement = why.steps.map((s) => ({ field: s.comparison, level: s.level, agreed: s.weight > 0 }));
    const score = top[1].probability;
    const second = ranked[1]?.[1].probability ?? 0;
    if (score >= MATCH_THRESHOLD && second < PLAUSIBLE) return { outcome: 'matched', person: people[top[0]]!.id, score, fields: agreement, candidates: people.length };
    // Plausible but not certain (or two plausible people): "we could not be sure", never a guess.
    return { outcome: score >= PLAUSIBLE ? 'ambiguous' : 'none', person: null, score, fields: agreement, candidates: people.length };
  }
}
