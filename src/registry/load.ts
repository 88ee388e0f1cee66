/**
 * @module registry/load
 * Streams generated records into the store. This is the one place that writes without going
 * through {@link RegistryService}: a million people through one transaction per person would take
 * hours, so rows are batched (many records per transaction, many rows per statement). Each batch
 * is one transaction, and a crash part-way leaves whole batches only; the load journals itself so
 * a half-finished load is visible and the caller can start again on an empty store.
 */
import { randomUUID } from 'node:crypto';
import type { Store } from '../store/db.ts';
import type { FactTable, SubjectTable } from '../store/schema.ts';
import type { GeneratedRecord } from './generate.ts';
import { REGISTRY_IDS } from './registries.ts';

type FactInsert = Omit<FactTable, 'seq'>;

/** Progress callback: records written so far. */
export type Progress = (done: { records: number; people: number }) => void;

export interface LoadResult {
  loadId: string;
  records: number;
  people: number;
  addresses: number;
  companies: number;
  facts: number;
}

// The generated history is recorded as if the register had learnt each fact on the day it took
// effect, so `lastUpdated` in envelopes is meaningful; nothing is recorded after the load itself.
function recordedOn(date: string, loadedAt: string): string {
  const t = `${date}T12:00:00.000Z`;
  return t < loadedAt ? t : loadedAt;
}

/** Turns one generated record into its subject and fact rows. */
export function rowsFor(r: GeneratedRecord, loadId: string, loadedAt: string): { subject: SubjectTable; facts: FactInsert[] } {
  const out: FactInsert[] = [];
  const registry = r.kind === 'person' ? REGISTRY_IDS.population : r.kind === 'address' ? REGISTRY_IDS.addresses : REGISTRY_IDS.companies;
  const add = (item: string, value: unknown, from: string, to: string | null = null): void => {
    out.push({ registry, subject: r.id, item, value: JSON.stringify(value), valid_from: from, valid_to: to, recorded_at: recordedOn(from, loadedAt), superseded_at: null, kind: 'initial', change_id: loadId });
  };
  let start: string;
  if (r.kind === 'address') {
    start = r.createdOn;
    add('address.lines', r.lines, start);
    add('address.town', r.town, start);
    add('address.postcode', r.postcode, start);
    add('address.location', r.location, start);
  } else if (r.kind === 'person') {
    start = r.birthDate;
    add('person.birthDate', r.birthDate, start);
    add('person.nationality', r.nationality, start);
    for (const n of r.names) {
      add('person.givenName', n.givenName, n.from, n.to);
      add('person.familyName', n.familyName, n.from, n.to);
    }
    for (const a of r.addresses) add('person.address', { addressId: a.addressId }, a.from, a.to);
    if (r.deathDate) {
      add('person.status', 'alive', start, r.deathDate);
      add('person.status', 'deceased', r.deathDate);
      add('person.deathDate', r.deathDate, r.deathDate);
    } else {
      add('person.status', 'alive', start);
    }
  } else {
    start = r.incorporationDate;
    add('business.name', r.name, start);
    add('business.incorporationDate', r.incorporationDate, start);
    add('business.registeredAddress', { addressId: r.registeredAddressId }, start);
    add('business.officers', r.officers, start);
    if (r.status !== 'active' && r.dissolvedOn) {
      add('business.status', 'active', start, r.dissolvedOn);
      add('business.status', r.status, r.dissolvedOn);
    } else {
      add('business.status', r.status, start);
    }
  }
  return { subject: { registry, id: r.id, recorded_at: recordedOn(start, loadedAt) }, facts: out };
}

const FACT_COLS = ['registry', 'subject', 'item', 'value', 'valid_from', 'valid_to', 'recorded_at', 'superseded_at', 'kind', 'change_id'] as const;

/** Loads a stream of generated records; returns counts. */
export async function loadGenerated(store: Store, records: Iterable<GeneratedRecord>, opts: { batch?: number; onProgress?: Progress } = {}): Promise<LoadResult> {
  const loadId = randomUUID();
  const loadedAt = new Date().toISOString();
  const batchSize = opts.batch ?? 5000;
  const res: LoadResult = { loadId, records: 0, people: 0, addresses: 0, companies: 0, facts: 0 };
  let subjects: SubjectTable[] = [];
  let facts: FactInsert[] = [];

  const write = store.sqlite ? sqliteWriter(store) : pgWriter(store);
  for (const r of records) {
    const rows = rowsFor(r, loadId, loadedAt);
    subjects.push(rows.subject);
    for (const f of rows.facts) facts.push(f);
    res.records++;
    if (r.kind === 'person') res.people++;
    else if (r.kind === 'address') res.addresses++;
    else res.companies++;
    if (subjects.length >= batchSize) {
      await write(subjects, facts);
      res.facts += facts.length;
      subjects = [];
      facts = [];
      opts.onProgress?.({ records: res.records, people: res.people });
    }
  }
  if (subjects.length > 0) {
    await write(subjects, facts);
    res.facts += facts.length;
  }
  opts.onProgress?.({ records: res.records, people: res.people });
  await store.db
    .insertInto('change')
    .values({ id: loadId, registry: '*', subject: '*', type: 'bulk-load', effective_date: loadedAt.slice(0, 10), recorded_at: new Date().toISOString(), payload: JSON.stringify({ records: res.records, people: res.people, addresses: res.addresses, companies: res.companies }) })
    .execute();
  return res;
}

type Writer = (subjects: SubjectTable[], facts: FactInsert[]) => Promise<void>;

// On SQLite a prepared statement per row inside one transaction is the fastest path
// better-sqlite3 offers (no SQL text to build per batch).
function sqliteWriter(store: Store): Writer {
  const db = store.sqlite!;
  const insS = db.prepare('INSERT INTO subject (registry, id, recorded_at) VALUES (?, ?, ?)');
  const insF = db.prepare(`INSERT INTO fact (${FACT_COLS.join(', ')}) VALUES (${FACT_COLS.map(() => '?').join(', ')})`);
  const tx = db.transaction((subjects: SubjectTable[], facts: FactInsert[]) => {
    for (const s of subjects) insS.run(s.registry, s.id, s.recorded_at);
    for (const f of facts) insF.run(f.registry, f.subject, f.item, f.value, f.valid_from, f.valid_to, f.recorded_at, f.superseded_at, f.kind, f.change_id);
  });
  return (subjects, facts) => {
    tx(subjects, facts);
    return Promise.resolve();
  };
}

// PostgreSQL caps a statement at 65,535 parameters; 10 columns a row leaves room for 6,000 rows.
function pgWriter(store: Store): Writer {
  return async (subjects, facts) => {
    await store.db.transaction().execute(async (trx) => {
      for (let i = 0; i < subjects.length; i += 6000) await trx.insertInto('subject').values(subjects.slice(i, i + 6000)).execute();
      for (let i = 0; i < facts.length; i += 6000) await trx.insertInto('fact').values(facts.slice(i, i + 6000)).execute();
    });
  };
}
