/**
 * @module registry/generate
 * A seeded synthetic population for the demo registries: addresses, people (with address and name
 * histories) and companies with officers, streamed as records from a generator so that a million
 * people can be loaded without ever being held in memory at once.
 *
 * The stream is built household by household: a household's new addresses are yielded, then its
 * people, then any companies that have fallen due. Companies only ever name people and addresses
 * that were already yielded, so a loader can insert records in stream order without deferring
 * foreign keys. The only state kept between households is a pair of fixed-size rings of recent
 * addresses and adults to reuse, so memory does not grow with the population.
 *
 * Every random choice comes either from a small seeded PRNG (structure, dates, ages) or from a
 * Faker instance seeded with the same seed (names, streets, company names), so a seed and a set of
 * options always give the same stream, and nothing depends on the clock. The distributions and
 * their sources are described in docs/synthetic-data.md.
 */
import { Faker, base, en, en_GB } from '@faker-js/faker';
import { isIsoDate } from '../core/dates.ts';
import { makeId } from '../core/subjects.ts';

/** An address in the address register. */
export interface GeneratedAddress {
  kind: 'address';
  id: string;
  /** Street lines, most specific first (e.g. `["Flat 2", "14 Mill Lane"]`). */
  lines: string[];
  /** Post town. */
  town: string;
  /** Full UK postcode, upper case with one space (`SW1A 1AA`). */
  postcode: string;
  location: { latitude: number; longitude: number };
  /** When the address was first registered, `YYYY-MM-DD`. */
  createdOn: string;
}

/** One period at one address; `to` is exclusive and `null` while it is (or was at death) current. */
export interface AddressSpell {
  addressId: string;
  from: string;
  to: string | null;
}

/** One period under one name; `to` is exclusive and `null` for the name now (or at death) in use. */
export interface NameSpell {
  givenName: string;
  familyName: string;
  from: string;
  to: string | null;
}

/** A person in the population register. */
export interface GeneratedPerson {
  kind: 'person';
  id: string;
  givenName: string;
  familyName: string;
  birthDate: string;
  /** ISO 3166-1 alpha-2. */
  nationality: string;
  /**
   * Chronological, contiguous and non-overlapping. The first starts at birth, or on arrival in the
   * UK for someone who came from abroad; the last has `to: null` (for the deceased, where they
   * lived when they died).
   */
  addresses: AddressSpell[];
  /** Chronological and contiguous from birth; the last equals `givenName`/`familyName`. */
  names: NameSpell[];
  deathDate?: string;
}

/** A company in the business register. */
export interface GeneratedCompany {
  kind: 'company';
  id: string;
  name: string;
  registeredAddressId: string;
  incorporationDate: string;
  status: 'active' | 'dissolved' | 'liquidation';
  /** Present only when `status` is `dissolved`. */
  dissolvedOn?: string;
  /** People yielded earlier in the stream, each at least 18 on `appointedOn`. */
  officers: { personId: string; role: 'director' | 'secretary'; appointedOn: string }[];
}

/** Any record of the stream; `kind` tells which. */
export type GeneratedRecord = GeneratedAddress | GeneratedPerson | GeneratedCompany;

/** What to generate. */
export interface GenerateOptions {
  /** Exact number of person records to yield. */
  people: number;
  /** PRNG seed (an integer); default 1. */
  seed?: number;
  /** The day the population is observed, `YYYY-MM-DD`; default `2026-01-01`, so output never depends on the clock. */
  today?: string;
  /** Companies per thousand people; default 30. */
  companiesPerThousand?: number;
}

/** Counts over a stream, as {@link summarize} computes them. */
export interface GenerateSummary {
  people: number;
  addresses: number;
  companies: number;
  /** People with a death date. */
  deceased: number;
  /** People with more than one address spell. */
  movers: number;
  /** People with more than one name spell. */
  nameChanges: number;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/**
 * sfc32 seeded through splitmix32: a few nanoseconds per draw, which matters when a million
 * people take dozens of draws each; Faker's own Mersenne Twister is kept for Faker's data only.
 */
export function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  const split = (): number => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/** A weighted table with its cumulative weights precomputed, sampled by linear scan (tables are short). */
interface Weighted<T> {
  values: T[];
  cumulative: number[];
  total: number;
}

function weighted<T>(pairs: readonly (readonly [T, number])[]): Weighted<T> {
  const values: T[] = [];
  const cumulative: number[] = [];
  let total = 0;
  for (const [value, weight] of pairs) {
    total += weight;
    values.push(value);
    cumulative.push(total);
  }
  return { values, cumulative, total };
}

function pick<T>(table: Weighted<T>, u: number): T {
  const x = u * table.total;
  const { cumulative, values } = table;
  for (let i = 0; i < cumulative.length; i++) if (x < cumulative[i]!) return values[i]!;
  return values[values.length - 1]!;
}

// ---------------------------------------------------------------------------------------------
// Distributions (sources and reasoning in docs/synthetic-data.md)

/**
 * Age bands `[from, to]` inclusive. The whole-population pyramid (ONS mid-2022 UK estimates, %
 * per five-year band) is not sampled directly: ages are drawn per household role below, and these
 * role tables were tuned so that the resulting population reproduces it (under-18s about 21%,
 * 65 and over about 19%).
 */
type Band = readonly [number, number];

/** Living alone: ONS Families and Households 2023, about half of one-person households are 65+. */
const SINGLE_AGE = weighted<Band>([
  [[18, 24], 2], [[25, 34], 8], [[35, 44], 8], [[45, 54], 12], [[55, 64], 17],
  [[65, 74], 21], [[75, 84], 21], [[85, 89], 7], [[90, 94], 3], [[95, 100], 1],
]);
/** First partner of a couple with no children at home: mostly before children or after they left. */
const COUPLE_AGE = weighted<Band>([
  [[20, 24], 2], [[25, 34], 8], [[35, 44], 5], [[45, 54], 9], [[55, 64], 24],
  [[65, 74], 28], [[75, 84], 19], [[85, 91], 5],
]);
/** Younger parent in a household with children. */
const PARENT_AGE = weighted<Band>([
  [[20, 24], 2], [[25, 29], 5], [[30, 34], 11], [[35, 39], 17], [[40, 44], 19],
  [[45, 49], 18], [[50, 54], 14], [[55, 59], 9], [[60, 64], 5],
]);
/** Unrelated adults sharing (students, young workers, lodgers). */
const SHARER_AGE = weighted<Band>([
  [[18, 24], 30], [[25, 34], 35], [[35, 44], 14], [[45, 64], 15], [[65, 90], 6],
]);

/** ONS Families and Households 2023 (UK): share of households by number of people. */
const HOUSEHOLD_SIZE = weighted<number>([[1, 30], [2, 35], [3, 15], [4, 13], [5, 5], [6, 2]]);

/**
 * Nationality of the household reference person. ONS "Population of the UK by country of birth
 * and nationality" (APS, 2021): about 9% of residents hold a non-British nationality, led by
 * these countries (weights in thousands of residents). GB is weighted below its real count
 * because some partners of non-British people are British, which pulls the share back up.
 */
const NATIONALITY = weighted<string>([
  ['GB', 52000], ['PL', 680], ['RO', 550], ['IN', 360], ['IE', 370], ['IT', 300], ['PT', 230],
  ['ES', 200], ['LT', 150], ['BG', 150], ['FR', 150], ['PK', 150], ['DE', 130], ['CN', 130],
  ['US', 130], ['NG', 120], ['HU', 90], ['LV', 90], ['GR', 80], ['PH', 80], ['BD', 70],
  ['ZA', 70], ['AU', 60], ['NL', 60], ['SK', 60], ['BR', 60], ['ZW', 50], ['SE', 40],
]);

/**
 * Post towns by postcode area, with an approximate centre and population (thousands), so that a
 * postcode's area, its town and its coordinates agree and people are spread roughly as Great
 * Britain's population is. The areas are those in Faker's en_GB postcode data, less BT (Northern
 * Ireland), which keeps every coordinate on Great Britain.
 */
const AREAS: readonly (readonly [area: string, town: string, lat: number, lon: number, pop: number])[] = [
  ['AB', 'Aberdeen', 57.15, -2.09, 480], ['AL', 'St Albans', 51.75, -0.34, 260],
  ['B', 'Birmingham', 52.48, -1.9, 1700], ['BA', 'Bath', 51.38, -2.36, 390],
  ['BB', 'Blackburn', 53.75, -2.48, 460], ['BD', 'Bradford', 53.79, -1.75, 700],
  ['BH', 'Bournemouth', 50.72, -1.88, 520], ['BL', 'Bolton', 53.58, -2.43, 380],
  ['BN', 'Brighton', 50.83, -0.14, 800], ['BR', 'Bromley', 51.41, 0.02, 330],
  ['BS', 'Bristol', 51.45, -2.59, 1000], ['CA', 'Carlisle', 54.89, -2.93, 330],
  ['CB', 'Cambridge', 52.21, 0.12, 420], ['CF', 'Cardiff', 51.48, -3.18, 1050],
  ['CH', 'Chester', 53.19, -2.89, 560], ['CM', 'Chelmsford', 51.74, 0.47, 780],
  ['CO', 'Colchester', 51.89, 0.9, 440], ['CR', 'Croydon', 51.37, -0.1, 420],
  ['CT', 'Canterbury', 51.28, 1.08, 450], ['CV', 'Coventry', 52.41, -1.51, 850],
  ['CW', 'Crewe', 53.1, -2.44, 300], ['DA', 'Dartford', 51.45, 0.22, 450],
  ['DD', 'Dundee', 56.46, -2.97, 330], ['DE', 'Derby', 52.92, -1.48, 870],
  ['DG', 'Dumfries', 55.07, -3.61, 150], ['DH', 'Durham', 54.78, -1.57, 310],
  ['DL', 'Darlington', 54.52, -1.55, 360], ['DN', 'Doncaster', 53.52, -1.13, 880],
  ['DT', 'Dorchester', 50.71, -2.44, 200], ['DY', 'Dudley', 52.51, -2.08, 480],
  ['E', 'London', 51.53, -0.02, 1000], ['EC', 'London', 51.52, -0.09, 40],
  ['EH', 'Edinburgh', 55.95, -3.19, 880], ['EN', 'Enfield', 51.65, -0.08, 350],
  ['EX', 'Exeter', 50.72, -3.53, 480], ['FK', 'Falkirk', 56.0, -3.78, 300],
  ['FY', 'Blackpool', 53.82, -3.05, 250], ['G', 'Glasgow', 55.86, -4.25, 1300],
  ['GL', 'Gloucester', 51.86, -2.24, 620], ['GU', 'Guildford', 51.24, -0.57, 880],
  ['HA', 'Harrow', 51.58, -0.34, 530], ['HD', 'Huddersfield', 53.65, -1.78, 330],
  ['HG', 'Harrogate', 54.0, -1.54, 160], ['HP', 'Hemel Hempstead', 51.75, -0.47, 470],
  ['HR', 'Hereford', 52.06, -2.72, 180], ['HS', 'Stornoway', 58.21, -6.39, 27],
  ['HU', 'Hull', 53.74, -0.33, 600], ['HX', 'Halifax', 53.72, -1.86, 200],
  ['IG', 'Ilford', 51.56, 0.07, 450], ['IP', 'Ipswich', 52.06, 1.16, 550],
  ['IV', 'Inverness', 57.48, -4.22, 230], ['KA', 'Kilmarnock', 55.61, -4.5, 380],
  ['KT', 'Kingston upon Thames', 51.41, -0.3, 560], ['KW', 'Kirkwall', 58.98, -2.96, 50],
  ['KY', 'Kirkcaldy', 56.11, -3.16, 370], ['L', 'Liverpool', 53.41, -2.98, 1000],
  ['LA', 'Lancaster', 54.05, -2.8, 330], ['LD', 'Llandrindod Wells', 52.24, -3.38, 55],
  ['LE', 'Leicester', 52.64, -1.13, 1050], ['LL', 'Llandudno', 53.32, -3.83, 520],
  ['LN', 'Lincoln', 53.23, -0.54, 330], ['LS', 'Leeds', 53.8, -1.55, 930],
  ['LU', 'Luton', 51.88, -0.42, 280], ['M', 'Manchester', 53.48, -2.24, 1050],
  ['ME', 'Rochester', 51.39, 0.5, 620], ['MK', 'Milton Keynes', 52.04, -0.76, 440],
  ['ML', 'Motherwell', 55.79, -3.99, 340], ['N', 'London', 51.57, -0.11, 840],
  ['NE', 'Newcastle upon Tyne', 54.97, -1.61, 1300], ['NG', 'Nottingham', 52.95, -1.15, 1100],
  ['NN', 'Northampton', 52.24, -0.9, 730], ['NP', 'Newport', 51.58, -3.0, 500],
  ['NR', 'Norwich', 52.63, 1.3, 600], ['NW', 'London', 51.55, -0.19, 500],
  ['OL', 'Oldham', 53.54, -2.12, 560], ['OX', 'Oxford', 51.75, -1.26, 620],
  ['PA', 'Paisley', 55.85, -4.42, 330], ['PE', 'Peterborough', 52.57, -0.24, 1000],
  ['PH', 'Perth', 56.4, -3.44, 220], ['PL', 'Plymouth', 50.38, -4.14, 520],
  ['PO', 'Portsmouth', 50.82, -1.09, 830], ['PR', 'Preston', 53.76, -2.7, 620],
  ['RG', 'Reading', 51.45, -0.97, 830], ['RH', 'Redhill', 51.24, -0.17, 580],
  ['RM', 'Romford', 51.58, 0.18, 550], ['S', 'Sheffield', 53.38, -1.47, 1350],
  ['SA', 'Swansea', 51.62, -3.94, 700], ['SE', 'London', 51.47, -0.07, 1200],
  ['SG', 'Stevenage', 51.9, -0.2, 380], ['SK', 'Stockport', 53.41, -2.16, 630],
  ['SL', 'Slough', 51.51, -0.59, 420], ['SM', 'Sutton', 51.36, -0.19, 200],
  ['SN', 'Swindon', 51.56, -1.78, 500], ['SO', 'Southampton', 50.91, -1.4, 700],
  ['SP', 'Salisbury', 51.07, -1.79, 180], ['SR', 'Sunderland', 54.91, -1.38, 300],
  ['SS', 'Southend-on-Sea', 51.54, 0.71, 550], ['ST', 'Stoke-on-Trent', 53.0, -2.18, 850],
  ['SW', 'London', 51.46, -0.17, 900], ['SY', 'Shrewsbury', 52.71, -2.75, 530],
  ['TA', 'Taunton', 51.02, -3.1, 400], ['TD', 'Galashiels', 55.61, -2.81, 130],
  ['TF', 'Telford', 52.68, -2.45, 280], ['TN', 'Tunbridge Wells', 51.13, 0.26, 1000],
  ['TQ', 'Torquay', 50.46, -3.53, 280], ['TR', 'Truro', 50.26, -5.05, 400],
  ['TS', 'Middlesbrough', 54.57, -1.23, 560], ['TW', 'Twickenham', 51.45, -0.33, 560],
  ['UB', 'Southall', 51.51, -0.38, 450], ['W', 'London', 51.51, -0.2, 500],
  ['WA', 'Warrington', 53.39, -2.59, 780], ['WC', 'London', 51.52, -0.12, 40],
  ['WD', 'Watford', 51.66, -0.4, 280], ['WF', 'Wakefield', 53.68, -1.5, 600],
  ['WN', 'Wigan', 53.55, -2.63, 350], ['WR', 'Worcester', 52.19, -2.22, 350],
  ['WS', 'Walsall', 52.59, -1.98, 500], ['WV', 'Wolverhampton', 52.59, -2.13, 530],
  ['YO', 'York', 53.96, -1.08, 600], ['ZE', 'Lerwick', 60.15, -1.15, 23],
];

interface Area {
  area: string;
  town: string;
  lat: number;
  lon: number;
  /** Half-width of the scatter around the centre, in degrees of latitude. */
  spread: number;
}

const AREA_TABLE = weighted<Area>(
  AREAS.map(([area, town, lat, lon, pop]) => [
    // London districts and the islands are small; a wide scatter would put them in the sea or Kent.
    { area, town, lat, lon, spread: town === 'London' ? 0.03 : pop < 60 ? 0.04 : 0.1 },
    pop,
  ]),
);

/**
 * Letters used in the inward code: Royal Mail never uses C, I, K, M, O or V there, because they
 * are too easily misread in handwriting.
 */
const INWARD_LETTERS = 'ABDEFGHJLNPQRSTUWXYZ';
/** The UK postcode shape every generated postcode is checked against. */
const POSTCODE = /^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$/;

const COMPANY_SUFFIX = weighted<string>([[' Ltd', 60], [' Limited', 32], [' LLP', 8]]);
const OFFICER_COUNT = weighted<number>([[1, 45], [2, 35], [3, 12], [4, 8]]);

/**
 * Chance that someone dies in the ten years before `today`, by age they would be today, chosen
 * so about 1% of the stream is deceased and most of them old.
 */
function deathChance(age: number): number {
  if (age >= 85) return 0.12;
  if (age >= 75) return 0.05;
  if (age >= 65) return 0.015;
  if (age >= 45) return 0.004;
  return 0.0005;
}

// ---------------------------------------------------------------------------------------------
// Dates as day numbers

const DAY_MS = 86_400_000;
/** A day count that is always at least 18 calendar years, leap days included. */
const EIGHTEEN_YEARS = 18 * 365 + 5;
const YEAR = 365.2425;

function dayNumber(iso: string): number {
  return Math.floor(Date.parse(`${iso}T00:00:00Z`) / DAY_MS);
}

/** ISO strings for every day from `first` to `last`, so formatting a date is an array lookup. */
function dateTable(first: number, last: number): string[] {
  const table: string[] = new Array<string>(last - first + 1);
  for (let d = first; d <= last; d++) table[d - first] = new Date(d * DAY_MS).toISOString().slice(0, 10);
  return table;
}

// ---------------------------------------------------------------------------------------------
// The generator

/** A person being assembled for one household. */
interface Member {
  female: boolean;
  age: number;
  givenName: string;
  familyName: string;
  /** The partner who shares the other's family name, who may have taken it on marriage. */
  tookName: boolean;
  nationality: string;
}

/** Fixed-size ring buffer: remembers the last `size` entries and forgets the rest. */
class Ring<T> {
  readonly items: T[] = [];
  private next = 0;
  private readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
  push(item: T): void {
    if (this.items.length < this.size) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.size;
  }
}

interface KnownAddress {
  id: string;
  createdOn: number;
}

interface KnownAdult {
  id: string;
  /** First day on which they are 18. */
  adultFrom: number;
  homeAddressId: string;
}

/**
 * Streams a synthetic population: exactly `opts.people` people, the addresses they live and lived
 * at, and about `companiesPerThousand` companies per thousand people. Every address is yielded
 * before any record that refers to it, and every person before any company that names them.
 * The same options always give the same records in the same order.
 */
export function* generate(opts: GenerateOptions): Generator<GeneratedRecord> {
  const people = opts.people;
  const seed = opts.seed ?? 1;
  const todayIso = opts.today ?? '2026-01-01';
  const companyRate = (opts.companiesPerThousand ?? 30) / 1000;
  if (!Number.isSafeInteger(people) || people < 0 || people >= 1e9) {
    throw new RangeError(`people must be a whole number from 0 to 999999999, not ${people}`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, not ${seed}`);
  if (!isIsoDate(todayIso) || todayIso < '1960-01-01') {
    throw new RangeError(`today must be a date YYYY-MM-DD from 1960 on, not ${todayIso}`);
  }
  if (!Number.isFinite(companyRate) || companyRate < 0) {
    throw new RangeError(`companiesPerThousand must be zero or more, not ${opts.companiesPerThousand}`);
  }

  const rng = makeRng(seed);
  const int = (n: number): number => Math.floor(rng() * n);
  const faker = new Faker({ locale: [en_GB, en, base], seed });

  const today = dayNumber(todayIso);
  // Oldest possible birth is about 101 years back; 1900 is the floor for address creation dates.
  const firstDay = Math.min(dayNumber('1900-01-01'), today - 110 * 366);
  const dates = dateTable(firstDay, today);
  const iso = (day: number): string => dates[day - firstDay]!;
  const companyEpoch = dayNumber('1950-01-01');

  // Pools drawn once, because Faker's pattern expansion costs microseconds per call.
  const streets: string[] = [];
  for (let i = 0; i < 4096; i++) streets.push(faker.location.street());

  const recentAddresses = new Ring<KnownAddress>(4096);
  const recentAdults = new Ring<KnownAdult>(4096);
  let addressCount = 0;
  let personCount = 0;
  let companyCount = 0;
  let companiesOwed = 0;

  const ageIn = (band: Band): number => band[0] + int(band[1] - band[0] + 1);
  const birthDayFor = (age: number): number => today - 1 - Math.floor((age + rng()) * YEAR);

  const postcodeIn = (area: string): string => {
    let district: string;
    if (area === 'EC') district = `${1 + int(4)}${'AMNRVY'[int(6)]!}`;
    else if (area === 'WC') district = `${1 + int(2)}${'ABEHNR'[int(6)]!}`;
    else district = String(1 + int(area.length === 1 ? 30 : 20));
    const code = `${area}${district} ${int(10)}${INWARD_LETTERS[int(20)]!}${INWARD_LETTERS[int(20)]!}`;
    if (!POSTCODE.test(code)) throw new Error(`generated an invalid postcode: ${code}`);
    return code;
  };

  /** A new address registered on or before `latestCreatedOn`; homes are remembered for reuse as someone's earlier address. */
  const newAddress = (latestCreatedOn: number, home: boolean): GeneratedAddress => {
    const area = pick(AREA_TABLE, rng());
    const lat = area.lat + (rng() + rng() - 1) * area.spread;
    const lon = area.lon + ((rng() + rng() - 1) * area.spread) / Math.cos((area.lat * Math.PI) / 180);
    const createdOn = Math.max(firstDay, latestCreatedOn - int(20 * 365));
    const number = 1 + Math.floor(rng() * rng() * 240);
    const street = `${number} ${streets[int(streets.length)]!}`;
    const address: GeneratedAddress = {
      kind: 'address',
      id: makeId('address', ++addressCount),
      lines: rng() < 0.12 ? [`Flat ${1 + int(24)}`, street] : [street],
      town: area.town,
      postcode: postcodeIn(area.area),
      location: { latitude: Math.round(lat * 1e5) / 1e5, longitude: Math.round(lon * 1e5) / 1e5 },
      createdOn: iso(createdOn),
    };
    if (home) recentAddresses.push({ id: address.id, createdOn });
    return address;
  };

  const newMember = (female: boolean, age: number, familyName: string, nationality: string): Member => ({
    female,
    age,
    givenName: faker.person.firstName(female ? 'female' : 'male'),
    familyName,
    nationality,
    tookName: false,
  });

  /** Makes up one household of `size` people: who they are and how old. */
  const household = (size: number): Member[] => {
    const nationality = pick(NATIONALITY, rng());
    const family = faker.person.lastName();
    const members: Member[] = [];
    const addChildren = (parentAge: number, count: number): void => {
      for (let i = 0; i < count; i++) {
        // Parent's age at the birth: 18-44, peaking around 31 as ONS births by age of mother do.
        let age = parentAge - (18 + int(14) + int(14));
        if (age < 0) age = int(Math.min(18, parentAge - 17));
        members.push(newMember(rng() < 0.49, age, family, nationality));
      }
    };
    const addCouple = (firstAge: number): void => {
      // Mostly the man first, so that it is mostly women who took a partner's name, as in the UK.
      const first = newMember(rng() < 0.15, firstAge, family, nationality);
      const female = rng() < 0.96 ? !first.female : first.female;
      const age = Math.min(100, Math.max(18, firstAge + int(9) - 4 + (female ? -1 : 1)));
      const shares = rng() < 0.8;
      const second = newMember(female, age, shares ? family : faker.person.lastName(), rng() < 0.9 ? nationality : 'GB');
      second.tookName = shares;
      members.push(first, second);
    };
    const r = rng();
    if (size === 1) {
      members.push(newMember(rng() < 0.55, ageIn(pick(SINGLE_AGE, rng())), family, nationality));
    } else if (size === 2 && r < 0.62) {
      addCouple(ageIn(pick(COUPLE_AGE, rng())));
    } else if ((size === 2 && r < 0.82) || (size > 2 && r < 0.15)) {
      // Lone parent, nine in ten of them mothers (ONS Families and Households).
      const age = ageIn(pick(PARENT_AGE, rng()));
      members.push(newMember(rng() < 0.9, age, family, nationality));
      addChildren(age, size - 1);
    } else if (size === 2 || (size > 2 && r < 0.24)) {
      for (let i = 0; i < size; i++) {
        members.push(newMember(rng() < 0.5, ageIn(pick(SHARER_AGE, rng())), faker.person.lastName(), pick(NATIONALITY, rng())));
      }
    } else if (r < 0.3) {
      // Three generations: a couple, their children and one grandparent.
      const age = ageIn(pick(PARENT_AGE, rng()));
      addCouple(age);
      addChildren(age, size - 3);
      members.push(newMember(rng() < 0.65, Math.min(100, age + 22 + int(14)), faker.person.lastName(), nationality));
    } else {
      const age = ageIn(pick(PARENT_AGE, rng()));
      addCouple(age);
      addChildren(age, size - 2);
    }
    return members;
  };

  /**
   * A previous address for a spell starting on `from`: one seen earlier in the stream when one
   * registered in time turns up, otherwise a new one, which is queued to be yielded first.
   */
  const previousAddress = (from: number, home: string, last: string, queue: GeneratedAddress[]): string => {
    if (rng() < 0.5 && recentAddresses.items.length > 0) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const known = recentAddresses.items[int(recentAddresses.items.length)]!;
        if (known.createdOn <= from && known.id !== home && known.id !== last) return known.id;
      }
    }
    const address = newAddress(from, true);
    queue.push(address);
    return address.id;
  };

  const pendingAddresses: GeneratedAddress[] = [];
  const pendingPeople: GeneratedPerson[] = [];

  while (personCount < people) {
    const members = household(Math.min(pick(HOUSEHOLD_SIZE, rng()), people - personCount));
    // The day the household moved in, for members already born (or in the country) by then.
    const movedIn = rng() < 0.38 ? today - 30 - Math.floor(-Math.log(1 - rng()) * 8 * YEAR) : Number.NaN;
    const arrived = today - 1 - int(Math.floor(25 * YEAR));

    // Children are never left without a living adult at home: the last adult does not die.
    const hasChildren = members.some((m) => m.age < 18);
    let livingAdults = members.filter((m) => m.age >= 18).length;
    let firstFrom = today;
    const drafts: { member: Member; birth: number; death: number | null; start: number; current: number; previous: number[] }[] = [];
    for (const member of members) {
      const birth = birthDayFor(member.age);
      let death: number | null = null;
      if (birth < today - 2 && rng() < deathChance(member.age) && !(member.age >= 18 && hasChildren && livingAdults === 1)) {
        death = Math.max(birth + 1, today - 1 - int(10 * 365));
        if (member.age >= 18) livingAdults--;
      }
      const end = death ?? today;
      // Someone from abroad is on the register from arrival, unless born here after it.
      const start = member.nationality !== 'GB' && arrived > birth && arrived < end ? arrived : birth;
      let current = start;
      const previous: number[] = [];
      // Those born (or arrived) after the household moved in have only ever lived here.
      const isMover = Number.isNaN(movedIn) ? rng() < 0.08 : movedIn > start + 2 && rng() < 0.9;
      if (isMover && end - start > 8) {
        current = movedIn > start + 2 && movedIn < end ? movedIn : start + 2 + int(end - start - 2);
        // Up to three earlier homes, split at distinct days between arrival and the move.
        const count = 1 + Math.min(int(3), int(3), current - start - 1);
        const cuts = new Set<number>();
        for (let i = 1; i < count; i++) cuts.add(start + 1 + int(current - start - 1));
        previous.push(start, ...[...cuts].sort((a, b) => a - b));
      }
      firstFrom = Math.min(firstFrom, current);
      drafts.push({ member, birth, death, start, current, previous });
    }

    const home = newAddress(firstFrom, true);
    pendingAddresses.push(home);
    for (const { member, birth, death, current, previous } of drafts) {
      const addresses: AddressSpell[] = [];
      let last = '';
      for (let i = 0; i < previous.length; i++) {
        const from = previous[i]!;
        last = previousAddress(from, home.id, last, pendingAddresses);
        addresses.push({ addressId: last, from: iso(from), to: iso(previous[i + 1] ?? current) });
      }
      addresses.push({ addressId: home.id, from: iso(current), to: null });

      const end = death ?? today;
      const names: NameSpell[] = [];
      let givenName = member.givenName;
      const familyName = member.familyName;
      const adultFrom = birth + EIGHTEEN_YEARS;
      if (member.age >= 18 && adultFrom < end - 1) {
        if (member.tookName && rng() < 0.35) {
          // Took the partner's name on marriage, usually in their twenties or thirties.
          const married = Math.min(end - 1, adultFrom + int(Math.min(end - 1 - adultFrom, 20 * 365)) + 1);
          let birthName = faker.person.lastName();
          if (birthName === familyName) birthName = `${birthName}-${faker.person.lastName()}`;
          names.push({ givenName, familyName: birthName, from: iso(birth), to: iso(married) });
          names.push({ givenName, familyName, from: iso(married), to: null });
        } else if (rng() < 0.006) {
          const changed = adultFrom + 1 + int(end - 1 - adultFrom - 1);
          names.push({ givenName, familyName, from: iso(birth), to: iso(changed) });
          const sex = member.female ? 'female' : 'male';
          givenName = faker.person.firstName(sex);
          if (givenName === member.givenName) givenName = `${givenName} ${faker.person.firstName(sex)}`;
          names.push({ givenName, familyName, from: iso(changed), to: null });
        }
      }
      if (names.length === 0) names.push({ givenName, familyName, from: iso(birth), to: null });

      const id = makeId('person', ++personCount);
      const person: GeneratedPerson = {
        kind: 'person',
        id,
        givenName,
        familyName,
        birthDate: iso(birth),
        nationality: member.nationality,
        addresses,
        names,
      };
      if (death !== null) person.deathDate = iso(death);
      else if (adultFrom <= today) recentAdults.push({ id, adultFrom, homeAddressId: home.id });
      pendingPeople.push(person);
    }

    for (const address of pendingAddresses) yield address;
    for (const person of pendingPeople) yield person;
    pendingAddresses.length = 0;
    pendingPeople.length = 0;

    companiesOwed += members.length * companyRate;
    while (companiesOwed >= 1 && recentAdults.items.length > 0) {
      companiesOwed -= 1;
      yield* company();
    }
  }

  function* company(): Generator<GeneratedRecord> {
    const adults = recentAdults.items;
    const founder = adults[int(adults.length)]!;
    const earliest = Math.max(companyEpoch, founder.adultFrom);
    // Skewed to recent years: most companies on the register today were formed lately.
    const incorporated = earliest + Math.floor(Math.sqrt(rng()) * (today - earliest));
    const s = rng();
    const status = s < 0.85 || incorporated >= today - 1 ? 'active' : s < 0.95 ? 'dissolved' : 'liquidation';
    const dissolved = status === 'dissolved' ? incorporated + 1 + int(today - incorporated - 1) : null;
    const end = dissolved ?? today;

    const officers: GeneratedCompany['officers'] = [];
    const wanted = pick(OFFICER_COUNT, rng());
    const chosen = new Set<string>();
    const appoint = (adult: KnownAdult): void => {
      const from = Math.max(incorporated, adult.adultFrom);
      if (from > end || chosen.has(adult.id)) return;
      chosen.add(adult.id);
      const appointedOn = rng() < 0.75 ? from : from + int(end - from + 1);
      officers.push({ personId: adult.id, role: 'director', appointedOn: iso(Math.min(appointedOn, end)) });
    };
    appoint(founder);
    for (let attempt = 0; officers.length < wanted && attempt < wanted * 3; attempt++) appoint(adults[int(adults.length)]!);
    if (officers.length > 1 && rng() < 0.25) officers[officers.length - 1]!.role = 'secretary';

    let registeredAddressId = founder.homeAddressId;
    if (rng() < 0.5) {
      const office = newAddress(incorporated, false);
      registeredAddressId = office.id;
      yield office;
    }
    // Faker's en data mixes in American legal forms; a UK suffix follows instead.
    const stem = faker.company.name().replace(/ (Inc|LLC)$/, '').replace(/ - /g, ' & ');
    const record: GeneratedCompany = {
      kind: 'company',
      id: makeId('company', ++companyCount),
      name: stem + pick(COMPANY_SUFFIX, rng()),
      registeredAddressId,
      incorporationDate: iso(incorporated),
      status,
      officers,
    };
    if (dissolved !== null) record.dissolvedOn = iso(dissolved);
    yield record;
  }
}

/** Counts records by kind, and people who died, moved or changed name, over any stream of records. */
export function summarize(records: Iterable<GeneratedRecord>): GenerateSummary {
  const summary: GenerateSummary = { people: 0, addresses: 0, companies: 0, deceased: 0, movers: 0, nameChanges: 0 };
  for (const record of records) {
    if (record.kind === 'address') summary.addresses++;
    else if (record.kind === 'company') summary.companies++;
    else {
      summary.people++;
      if (record.deathDate !== undefined) summary.deceased++;
      if (record.addresses.length > 1) summary.movers++;
      if (record.names.length > 1) summary.nameChanges++;
    }
  }
  return summary;
}
