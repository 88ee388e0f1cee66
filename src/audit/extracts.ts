/**
 * @module audit/extracts
 * Three agencies' extracts of personal data, made from the register with the damage real copies
 * have: typos, nicknames, given and family names swapped, transposed date digits, old addresses
 * and old names (stale copies), addresses the register never held (conflicts), missing values,
 * the same person twice in one agency, people the register has recorded as dead, and people the
 * register does not know at all. The agencies overlap, as real ones do: a parent is on the council
 * tax list, the school admissions list and a GP's list.
 *
 * The generator keeps its own truth (which register person each row is, what was done to which
 * item, what state each item is therefore in) and writes it to a JSON file beside the CSVs, never
 * into them, so the audit can be checked against it. Everything is seeded: the same register and
 * seed give the same files byte for byte. Rates and their reasons are in docs/audit.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate, makeRng } from '../registry/generate.ts';
import { writeCsv } from '../linkage/csv.ts';
import { heldValues, registerFromRecords, type HeldAddress, type RegisterPerson, type RegisterSnapshot } from './register.ts';
import { classify, ITEMS, NICKNAMES, valueKey, type HeldValues, type Item, type ItemState } from './values.ts';

/** Kinds of damage, each recorded against the item it changed. */
export type DamageKind =
  | 'typo'
  | 'nickname'
  | 'swapped'
  | 'transposed'
  | 'old-name'
  | 'old-address'
  | 'other-address'
  | 'missing';

/** Rates, each a probability per row (or per eligible row, as described). */
export interface DamageRates {
  /** Per name item and per address line: one character edit. */
  typo: number;
  /** Per row whose given name has a nickname in the table. */
  nickname: number;
  /** Per row: given and family name entered in each other's box. */
  swapped: number;
  /** Per row: two adjacent digits of the date of birth transposed (when that gives a real date). */
  transposed: number;
  /** Per row of a person with an earlier name: the earlier name kept. */
  oldName: number;
  /** Per row of a person with an earlier address: an earlier address kept. */
  oldAddress: number;
  /** Per row: an address the register never held for the person (moved without telling it, or keyed wrongly). */
  otherAddress: number;
  /** Per item: left empty. `town` is not an audit item but is damaged too. */
  missing: Record<Item | 'town', number>;
  /** Per person held: a second row for them. */
  duplicate: number;
  /** Share of the agency's rows that are people the register does not know. */
  unknown: number;
  /** Share of the eligible dead the agency still holds. */
  deceased: number;
}

type DateFormat = 'iso' | 'dmy' | 'compact';

/** One synthetic agency: who it holds, how its file looks, how damaged its copy is. */
export interface AgencySpec {
  /** File stem and key: `council-tax`. */
  key: string;
  name: string;
  idPrefix: string;
  /** Headers in order: id, given name, family name, date of birth, address, town, postcode. */
  header: [string, string, string, string, string, string, string];
  dateFormat: DateFormat;
  /** Share of eligible living people it holds. */
  share: number;
  rates: DamageRates;
}

const BASE_MISSING = { givenName: 0.003, familyName: 0.002, birthDate: 0.03, address: 0.015, postcode: 0.02, town: 0.03 };

/** The three demo agencies. Rates are chosen to be plausible, not measured; see docs/audit.md. */
export const AGENCIES: readonly AgencySpec[] = [
  {
    key: 'council-tax',
    name: 'Council tax office (synthetic)',
    idPrefix: 'CT',
    header: ['account_ref', 'first_name', 'last_name', 'date_of_birth', 'address_1', 'town', 'postcode'],
    dateFormat: 'dmy',
    share: 0.25,
    rates: { typo: 0.03, nickname: 0.3, swapped: 0.01, transposed: 0.02, oldName: 0.35, oldAddress: 0.12, otherAddress: 0.02, missing: { ...BASE_MISSING, birthDate: 0.08 }, duplicate: 0.04, unknown: 0.04, deceased: 0.15 },
  },
  {
    key: 'school-admissions',
    name: 'School admissions service (synthetic)',
    idPrefix: 'SA',
    header: ['applicant_id', 'forename', 'surname', 'dob', 'address', 'city', 'postcode'],
    dateFormat: 'iso',
    share: 0.5,
    rates: { typo: 0.04, nickname: 0.4, swapped: 0.02, transposed: 0.03, oldName: 0.2, oldAddress: 0.06, otherAddress: 0.03, missing: BASE_MISSING, duplicate: 0.03, unknown: 0.05, deceased: 0 },
  },
  {
    key: 'gp-practice',
    name: 'GP practice patient list (synthetic)',
    idPrefix: 'GP',
    header: ['patient_id', 'given_name', 'family_name', 'birth_date', 'address_line_1', 'town', 'postcode'],
    dateFormat: 'compact',
    share: 0.3,
    rates: { typo: 0.025, nickname: 0.25, swapped: 0.01, transposed: 0.015, oldName: 0.25, oldAddress: 0.15, otherAddress: 0.02, missing: { ...BASE_MISSING, postcode: 0.01 }, duplicate: 0.05, unknown: 0.03, deceased: 0.3 },
  },
];

/** What the generator did to one row: the truth the audit is checked against. */
export interface TruthRow {
  recordId: string;
  /** The register person this row is a copy of; null for someone the register does not know. */
  personId: string | null;
  /** For people the register does not know: a stable id of the made-up person (`U-…`). */
  unknownId?: string;
  /** The record id of this person's first row in the same agency, when this row is a second one. */
  duplicateOf: string | null;
  /** The register records the person as dead. */
  deceased: boolean;
  damage: { item: Item | 'town'; kind: DamageKind }[];
  /** The state of each item in this row; null for people the register does not know. */
  states: Record<Item, ItemState> | null;
}

/** Counts over one agency's truth (or all agencies'). */
export interface TruthCounts {
  rows: number;
  /** Rows of people the register knows. */
  known: number;
  /** Rows of people the register does not know. */
  unknown: number;
  /** Rows beyond each known person's first in the same agency. */
  duplicateRows: number;
  /** Distinct register people held. */
  people: number;
  /** Rows of people the register records as dead. */
  deceasedRows: number;
  /** Over rows of known people, per item, how many are in each state. */
  items: Record<Item, Record<ItemState, number>>;
  /** Pieces of damage by kind. */
  damage: Record<DamageKind, number>;
}

export interface TruthAgency {
  key: string;
  name: string;
  file: string;
  header: string[];
  counts: TruthCounts;
  rows: TruthRow[];
}

/** The truth file. */
export interface ExtractTruth {
  version: 1;
  seed: number;
  today: string;
  registerPeople: number;
  agencies: TruthAgency[];
  /** Across agencies: distinct register people held, and how many agencies hold each. */
  across: { people: number; heldBy: Record<string, number> };
}

/** One agency's extract, ready to write. */
export interface Extract {
  spec: AgencySpec;
  file: string;
  header: string[];
  rows: string[][];
  truth: TruthAgency;
}

export interface ExtractOptions {
  seed?: number;
  /** The day ages are reckoned on; default `2026-01-01`, the generator's default, so nothing depends on the clock. */
  today?: string;
  /** Agencies to make; default {@link AGENCIES}. */
  agencies?: readonly AgencySpec[];
}

// ---------------------------------------------------------------------------------------------
// Randomness: the population generator's (sfc32 seeded by splitmix32, see makeRng).

/** A seed of its own for each agency and purpose, so adding an agency does not change the others. */
function subSeed(seed: number, key: string): number {
  let h = 2166136261 ^ seed;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Damage

const KEYBOARD = ['qwertyuiop', 'asdfghjkl', 'zxcvbnm'];
/** Letters next to each letter on a UK keyboard: the commonest substitution typos. */
const NEIGHBOURS: Record<string, string> = (() => {
  const out: Record<string, string> = {};
  KEYBOARD.forEach((row, r) => {
    [...row].forEach((ch, c) => {
      let n = (row[c - 1] ?? '') + (row[c + 1] ?? '');
      for (const other of [KEYBOARD[r - 1], KEYBOARD[r + 1]]) if (other) n += (other[c - 1] ?? '') + (other[c] ?? '') + (other[c + 1] ?? '');
      out[ch] = n;
    });
  });
  return out;
})();

/** One character edit on a letter after the first (first letters are rarely mistyped). */
function typo(v: string, rnd: () => number): string {
  const letters: number[] = [];
  for (let i = 1; i < v.length; i++) if (/[a-z]/i.test(v[i]!)) letters.push(i);
  if (letters.length < 2) return v;
  const i = letters[Math.floor(rnd() * letters.length)]!;
  const ch = v[i]!;
  const lower = ch.toLowerCase();
  const withCase = (c: string): string => (ch === lower ? c : c.toUpperCase());
  switch (Math.floor(rnd() * 4)) {
    case 0: {
      const n = NEIGHBOURS[lower] ?? 'e';
      return v.slice(0, i) + withCase(n[Math.floor(rnd() * n.length)]!) + v.slice(i + 1);
    }
    case 1:
      return v.slice(0, i) + v.slice(i + 1);
    case 2:
      return v.slice(0, i) + ch + v.slice(i);
    default: {
      const j = i + 1 < v.length && /[a-z]/i.test(v[i + 1]!) ? i + 1 : i - 1;
      const [a, b] = i < j ? [i, j] : [j, i];
      return v.slice(0, a) + v[b]! + v[a]! + v.slice(b + 1);
    }
  }
}

const DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
function realDate(iso: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (mo < 1 || mo > 12 || d < 1 || d > DAYS[mo - 1]!) return false;
  return mo !== 2 || d < 29 || (y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0));
}

/** Two adjacent digits of the day, the month or the year's last two swapped, when that is still a real date. */
function transpose(iso: string, rnd: () => number): string | null {
  const positions = [[2, 3], [5, 6], [8, 9]] as const;
  const options: string[] = [];
  for (const [a, b] of positions) {
    if (iso[a] === iso[b]) continue;
    const t = iso.slice(0, a) + iso[b]! + iso[a]! + iso.slice(b + 1);
    if (realDate(t)) options.push(t);
  }
  return options.length ? options[Math.floor(rnd() * options.length)]! : null;
}

function formatDate(iso: string, f: DateFormat): string {
  if (f === 'iso') return iso;
  if (f === 'compact') return iso.replaceAll('-', '');
  return `${iso.slice(8, 10)}/${iso.slice(5, 7)}/${iso.slice(0, 4)}`;
}

function age(birthDate: string, today: string): number {
  let a = Number(today.slice(0, 4)) - Number(birthDate.slice(0, 4));
  if (today.slice(5) < birthDate.slice(5)) a--;
  return a;
}

function emptyStates(): Record<Item, Record<ItemState, number>> {
  return Object.fromEntries(ITEMS.map((i) => [i, { current: 0, stale: 0, conflict: 0, missing: 0 }])) as Record<Item, Record<ItemState, number>>;
}

const DAMAGE_KINDS: DamageKind[] = ['typo', 'nickname', 'swapped', 'transposed', 'old-name', 'old-address', 'other-address', 'missing'];

/** Counts over truth rows. */
export function countTruth(rows: readonly TruthRow[]): TruthCounts {
  const c: TruthCounts = { rows: rows.length, known: 0, unknown: 0, duplicateRows: 0, people: 0, deceasedRows: 0, items: emptyStates(), damage: Object.fromEntries(DAMAGE_KINDS.map((k) => [k, 0])) as Record<DamageKind, number> };
  const people = new Set<string>();
  for (const r of rows) {
    for (const d of r.damage) c.damage[d.kind]++;
    if (r.personId === null) {
      c.unknown++;
      continue;
    }
    c.known++;
    people.add(r.personId);
    if (r.duplicateOf !== null) c.duplicateRows++;
    if (r.deceased) c.deceasedRows++;
    for (const item of ITEMS) c.items[item][r.states![item]]++;
  }
  c.people = people.size;
  return c;
}

// ---------------------------------------------------------------------------------------------
// The rows

/** A row's values while it is being damaged. */
interface Draft {
  givenName: string;
  familyName: string;
  birthDate: string;
  address: string;
  town: string;
  postcode: string;
}

/** Damages one copy of a known person; returns its values, damage and item states. */
function damagedCopy(p: RegisterPerson, held: HeldValues, rates: DamageRates, rnd: () => number, addressPool: readonly HeldAddress[]): { draft: Draft; damage: TruthRow['damage']; states: Record<Item, ItemState> } {
  const a = p.address ?? { line: '', town: '', postcode: '' };
  const d: Draft = { givenName: p.givenName, familyName: p.familyName, birthDate: p.birthDate, address: a.line, town: a.town, postcode: a.postcode };
  const damage: TruthRow['damage'] = [];
  const states = Object.fromEntries(ITEMS.map((i) => [i, classify(i, d[i], held)])) as Record<Item, ItemState>;
  // Every change is checked with the audit's own rule for "the same value", so that the recorded
  // state is exactly what the value is, e.g. a typo that only changed case is not recorded.
  const set = (item: Item, value: string, kind: DamageKind, want: ItemState): boolean => {
    if (classify(item, value, held) !== want) return false;
    d[item] = value;
    states[item] = want;
    damage.push({ item, kind });
    return true;
  };

  if (rnd() < rates.oldName) {
    if (p.earlierFamilyNames.length > 0) set('familyName', p.earlierFamilyNames[p.earlierFamilyNames.length - 1]!, 'old-name', 'stale');
    else if (p.earlierGivenNames.length > 0) set('givenName', p.earlierGivenNames[p.earlierGivenNames.length - 1]!, 'old-name', 'stale');
  }
  if (p.earlierAddresses.length > 0 && rnd() < rates.oldAddress) {
    // Mostly the previous address: the one an agency not told of the last move still has.
    const list = p.earlierAddresses;
    const old = rnd() < 0.75 ? list[list.length - 1]! : list[Math.floor(rnd() * list.length)]!;
    const lineChanged = valueKey('address', old.line) !== held.current.address;
    const pcChanged = valueKey('postcode', old.postcode) !== held.current.postcode;
    if (lineChanged) set('address', old.line, 'old-address', 'stale');
    if (pcChanged) set('postcode', old.postcode, 'old-address', 'stale');
    if (lineChanged || pcChanged) d.town = old.town;
  } else if (addressPool.length > 0 && rnd() < rates.otherAddress) {
    const other = addressPool[Math.floor(rnd() * addressPool.length)]!;
    if (classify('address', other.line, held) === 'conflict' && classify('postcode', other.postcode, held) === 'conflict') {
      set('address', other.line, 'other-address', 'conflict');
      set('postcode', other.postcode, 'other-address', 'conflict');
      d.town = other.town;
    }
  }
  if (rnd() < rates.swapped) {
    const [g, f] = [d.givenName, d.familyName];
    if (classify('givenName', f, held) === 'conflict' && classify('familyName', g, held) === 'conflict') {
      set('givenName', f, 'swapped', 'conflict');
      set('familyName', g, 'swapped', 'conflict');
    }
  }
  const nicks = NICKNAMES[d.givenName];
  if (nicks && rnd() < rates.nickname) set('givenName', nicks[Math.floor(rnd() * nicks.length)]!, 'nickname', 'conflict');
  for (const item of ['givenName', 'familyName', 'address'] as const) {
    if (d[item] !== '' && rnd() < rates.typo) set(item, typo(d[item], rnd), 'typo', 'conflict');
  }
  if (rnd() < rates.transposed) {
    const t = transpose(d.birthDate, rnd);
    if (t) set('birthDate', t, 'transposed', 'conflict');
  }
  for (const item of ITEMS) {
    if (d[item] !== '' && rnd() < rates.missing[item]) set(item, '', 'missing', 'missing');
  }
  if (d.town !== '' && rnd() < rates.missing.town) {
    d.town = '';
    damage.push({ item: 'town', kind: 'missing' });
  }
  return { draft: d, damage, states };
}

function shuffle<T>(list: T[], rnd: () => number): void {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
}

function addressKey(a: HeldAddress | null): string {
  return a ? `${valueKey('address', a.line)}|${valueKey('postcode', a.postcode)}` : '';
}

/** Who each agency holds: council tax the adults, school admissions children and the adults they live with, a GP anyone. */
function choosePeople(spec: AgencySpec, people: readonly RegisterPerson[], today: string, rnd: () => number): RegisterPerson[] {
  const chosen: RegisterPerson[] = [];
  const living = (p: RegisterPerson): boolean => !p.deceased;
  const takeDead = (p: RegisterPerson): boolean => p.deceased && rnd() < spec.rates.deceased;
  if (spec.key === 'school-admissions') {
    const homes = new Set<string>();
    for (const p of people) {
      const a = age(p.birthDate, today);
      if (living(p) && a >= 4 && a <= 17 && rnd() < spec.share) {
        chosen.push(p);
        homes.add(addressKey(p.address));
      }
    }
    for (const p of people) {
      if (living(p) && age(p.birthDate, today) >= 18 && homes.has(addressKey(p.address)) && rnd() < 0.9) chosen.push(p);
    }
    return chosen;
  }
  const adultsOnly = spec.key === 'council-tax';
  for (const p of people) {
    if (adultsOnly && age(p.birthDate, today) < 18) continue;
    if (living(p) ? rnd() < spec.share : takeDead(p)) chosen.push(p);
  }
  return chosen;
}

/** People the register does not know: another seeded population, minus anyone who happens to match. */
function outsiders(register: RegisterSnapshot, count: number, seed: number): RegisterPerson[] {
  if (count === 0) return [];
  const known = new Set(register.people.map((p) => `${valueKey('givenName', p.givenName)}|${valueKey('familyName', p.familyName)}|${p.birthDate}`));
  const pool = registerFromRecords(generate({ people: Math.ceil(count * 1.2) + 20, seed: subSeed(seed, 'outsiders') % 2 ** 31, companiesPerThousand: 0 }));
  return pool.people.filter((p) => !p.deceased && !known.has(`${valueKey('givenName', p.givenName)}|${valueKey('familyName', p.familyName)}|${p.birthDate}`)).slice(0, count);
}

/**
 * Makes the extracts of `opts.agencies` (default: the three demo agencies) from a register
 * snapshot. Pure: nothing is written.
 */
export function makeExtracts(register: RegisterSnapshot, opts: ExtractOptions = {}): { extracts: Extract[]; truth: ExtractTruth } {
  const seed = opts.seed ?? 1;
  const today = opts.today ?? '2026-01-01';
  const specs = opts.agencies ?? AGENCIES;
  const addressPool = register.people.filter((p) => !p.deceased && p.address).map((p) => p.address!);
  const heldCache = new Map<string, HeldValues>();
  const heldOf = (p: RegisterPerson): HeldValues => {
    let h = heldCache.get(p.id);
    if (!h) heldCache.set(p.id, (h = heldValues(p)));
    return h;
  };

  const chosenBy = specs.map((spec) => choosePeople(spec, register.people, today, makeRng(subSeed(seed, `${spec.key}:people`))));
  const unknownCounts = specs.map((spec, i) => Math.round((chosenBy[i]!.length * spec.rates.unknown) / (1 - spec.rates.unknown)));
  const strangers = outsiders(register, Math.max(0, ...unknownCounts) * 2, seed);

  const extracts: Extract[] = specs.map((spec, ai) => {
    const rnd = makeRng(subSeed(seed, `${spec.key}:rows`));
    type Pending = { draft: Draft; truth: Omit<TruthRow, 'recordId' | 'duplicateOf'>; dupOf: number | null };
    const pending: Pending[] = [];
    for (const p of chosenBy[ai]!) {
      const held = heldOf(p);
      const copies = rnd() < spec.rates.duplicate ? 2 : 1;
      const first = pending.length;
      for (let c = 0; c < copies; c++) {
        const { draft, damage, states } = damagedCopy(p, held, spec.rates, rnd, addressPool);
        pending.push({ draft, truth: { personId: p.id, deceased: p.deceased, damage, states }, dupOf: c === 0 ? null : first });
      }
    }
    // Outsiders get the ordinary damage too (against their own values); it is not counted as
    // stale or conflict because the register holds nothing to compare with.
    for (let u = 0; u < unknownCounts[ai]! && strangers.length > 0; u++) {
      const idx = Math.floor(rnd() * strangers.length);
      const s = strangers[idx]!;
      const { draft, damage } = damagedCopy(s, heldValues(s), { ...spec.rates, oldName: 0, oldAddress: 0, otherAddress: 0 }, rnd, []);
      pending.push({ draft, truth: { personId: null, unknownId: `U-${String(idx + 1).padStart(6, '0')}`, deceased: false, damage, states: null }, dupOf: null });
    }

    const order = pending.map((_, i) => i);
    shuffle(order, rnd);
    const recordIds = new Array<string>(pending.length);
    order.forEach((pi, pos) => (recordIds[pi] = `${spec.idPrefix}${String(100001 + pos * 7 + Math.floor(rnd() * 7))}`));
    const rows: string[][] = [];
    const truthRows: TruthRow[] = [];
    for (const pi of order) {
      const { draft, truth, dupOf } = pending[pi]!;
      rows.push([recordIds[pi]!, draft.givenName, draft.familyName, draft.birthDate === '' ? '' : formatDate(draft.birthDate, spec.dateFormat), draft.address, draft.town, draft.postcode]);
      truthRows.push({ recordId: recordIds[pi]!, ...truth, duplicateOf: dupOf === null ? null : recordIds[dupOf]! });
    }
    const file = `${spec.key}.csv`;
    return { spec, file, header: [...spec.header], rows, truth: { key: spec.key, name: spec.name, file, header: [...spec.header], counts: countTruth(truthRows), rows: truthRows } };
  });

  const agenciesOf = new Map<string, Set<string>>();
  for (const e of extracts) {
    for (const r of e.truth.rows) {
      if (r.personId === null) continue;
      let s = agenciesOf.get(r.personId);
      if (!s) agenciesOf.set(r.personId, (s = new Set()));
      s.add(e.spec.key);
    }
  }
  const heldBy: Record<string, number> = {};
  for (const s of agenciesOf.values()) heldBy[String(s.size)] = (heldBy[String(s.size)] ?? 0) + 1;
  return {
    extracts,
    truth: { version: 1, seed, today, registerPeople: register.people.length, agencies: extracts.map((e) => e.truth), across: { people: agenciesOf.size, heldBy } },
  };
}

/** What {@link writeExtracts} wrote. */
export interface WrittenExtracts {
  dir: string;
  files: { agency: string; name: string; path: string; rows: number }[];
  truthFile: string;
}

/** The truth file's name: not `.csv`, so `audit DIR/*.csv` never reads it. */
export const TRUTH_FILE = 'extracts-truth.json';

/** Writes the extracts as CSV files and their truth as JSON into `dir` (created if missing). */
export function writeExtracts(dir: string, register: RegisterSnapshot, opts: ExtractOptions = {}): WrittenExtracts {
  const { extracts, truth } = makeExtracts(register, opts);
  mkdirSync(dir, { recursive: true });
  const files = extracts.map((e) => {
    const path = join(dir, e.file);
    writeCsv(path, e.header, e.rows);
    return { agency: e.spec.key, name: e.spec.name, path, rows: e.rows.length };
  });
  const truthFile = join(dir, TRUTH_FILE);
  writeFileSync(truthFile, `${JSON.stringify(truth, null, 1)}\n`);
  return { dir, files, truthFile };
}
