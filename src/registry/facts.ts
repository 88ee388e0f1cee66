/**
 * @module registry/facts
 * The bitemporal fact store under every registry (thin Kysely queries, no business rules).
 * Valid time says when something was true in the world; transaction time (`recorded_at` to
 * `superseded_at`) says when the registry believed it. A change or a correction never updates a
 * value in place: it closes the belief in the old row and writes new rows, so history and "what
 * did we know then" both survive (Snodgrass, "Developing Time-Oriented Database Applications in
 * SQL", ch. 10).
 */
import type { CompiledQuery, Kysely, Transaction } from 'kysely';
import type { Database, FactTable } from '../store/schema.ts';
import { OnceOnlyError } from '../core/errors.ts';

export type Db = Kysely<Database> | Transaction<Database>;

/** A stored fact as read back. */
export interface FactRow {
  seq: number;
  item: string;
  value: unknown;
  validFrom: string;
  validTo: string | null;
  recordedAt: string;
  supersededAt: string | null;
  kind: string;
  changeId: string;
}

/** Bitemporal coordinates of a read: valid at `asAt`, as believed at `knownAt` (null = now). */
export interface ReadTime {
  asAt: string;
  knownAt: string | null;
}

function toRow(r: Pick<FactTable, 'item' | 'value' | 'valid_from' | 'valid_to' | 'recorded_at' | 'superseded_at' | 'kind' | 'change_id'> & { seq: number }): FactRow {
  return {
    seq: r.seq,
    item: r.item,
    value: JSON.parse(r.value) as unknown,
    validFrom: r.valid_from,
    validTo: r.valid_to,
    recordedAt: r.recorded_at,
    supersededAt: r.superseded_at,
    kind: r.kind,
    changeId: r.change_id,
  };
}

/** True when the registry holds a record with this id. */
export async function subjectExists(db: Db, registry: string, subject: string): Promise<boolean> {
  const row = await db
    .selectFrom('subject')
    .select('id')
    .where('registry', '=', registry)
    .where('id', '=', subject)
    .executeTakeFirst();
  return row !== undefined;
}

/** Adds a subject row; a duplicate id is a typed conflict, not a driver error. */
export async function insertSubject(db: Db, registry: string, subject: string, recordedAt: string): Promise<void> {
  if (await subjectExists(db, registry, subject)) {
    throw new OnceOnlyError('conflict', `a record with this id already exists`, { field: 'id', expected: 'an id not yet registered' });
  }
  await db.insertInto('subject').values({ registry, id: subject, recorded_at: recordedAt }).execute();
}

// Reads are the hot path: building and compiling the same query shape with Kysely costs more
// than running it. The compiled SQL depends only on how many items are asked for and whether
// `knownAt` is given, so it is compiled once per shape and run with fresh parameters.
const readShapes = new WeakMap<object, Map<string, CompiledQuery>>();

/** The compiled read for `itemCount` items, with or without `knownAt` (exported for the query-plan test). */
export function readShape(db: Db, itemCount: number, withKnownAt: boolean): CompiledQuery {
  let byShape = readShapes.get(db);
  if (!byShape) readShapes.set(db, (byShape = new Map<string, CompiledQuery>()));
  const key = `${itemCount}:${withKnownAt ? 1 : 0}`;
  let compiled = byShape.get(key);
  if (!compiled) {
    let q = db
      .selectFrom('fact')
      .select(['seq', 'item', 'value', 'valid_from', 'valid_to', 'recorded_at', 'superseded_at', 'kind', 'change_id'])
      .where('registry', '=', '')
      .where('subject', '=', '')
      .where('item', 'in', Array.from({ length: itemCount }, () => ''))
      .where('valid_from', '<=', '')
      .where((eb) => eb.or([eb('valid_to', 'is', null), eb('valid_to', '>', '')]));
    q = withKnownAt
      ? q.where('recorded_at', '<=', '').where((eb) => eb.or([eb('superseded_at', 'is', null), eb('superseded_at', '>', '')]))
      : q.where('superseded_at', 'is', null);
    compiled = q.compile();
    byShape.set(key, compiled);
  }
  return compiled;
}

/** The facts of `items` valid at `t.asAt`, as believed at `t.knownAt`: at most one per item. */
export async function factsAt(db: Db, registry: string, subject: string, items: readonly string[], t: ReadTime): Promise<FactRow[]> {
  if (items.length === 0) return [];
  const compiled = readShape(db, items.length, t.knownAt !== null);
  // Parameters in the order their markers appear in the compiled SQL above.
  const parameters: unknown[] = [registry, subject, ...items, t.asAt, t.asAt];
  if (t.knownAt !== null) parameters.push(t.knownAt, t.knownAt);
  const res = await db.executeQuery<Pick<FactTable, 'item' | 'value' | 'valid_from' | 'valid_to' | 'recorded_at' | 'superseded_at' | 'kind' | 'change_id'> & { seq: number }>({ ...compiled, parameters });
  return res.rows.map(toRow);
}

/** Every valid-time period of one item in the current belief, oldest first. */
export async function timeline(db: Db, registry: string, subject: string, item: string, knownAt: string | null = null): Promise<FactRow[]> {
  let q = db
    .selectFrom('fact')
    .select(['seq', 'item', 'value', 'valid_from', 'valid_to', 'recorded_at', 'superseded_at', 'kind', 'change_id'])
    .where('registry', '=', registry)
    .where('subject', '=', subject)
    .where('item', '=', item);
  if (knownAt === null) q = q.where('superseded_at', 'is', null);
  else q = q.where('recorded_at', '<=', knownAt).where((eb) => eb.or([eb('superseded_at', 'is', null), eb('superseded_at', '>', knownAt)]));
  const rows = await q.orderBy('valid_from').orderBy('seq').execute();
  return rows.map(toRow);
}

/** Every row ever written for an item of a subject, superseded ones included (for auditors). */
export async function fullHistory(db: Db, registry: string, subject: string, item: string): Promise<FactRow[]> {
  const rows = await db
    .selectFrom('fact')
    .select(['seq', 'item', 'value', 'valid_from', 'valid_to', 'recorded_at', 'superseded_at', 'kind', 'change_id'])
    .where('registry', '=', registry)
    .where('subject', '=', subject)
    .where('item', '=', item)
    .orderBy('seq')
    .execute();
  return rows.map(toRow);
}

/** What a write does to one item. */
export interface FactWrite {
  item: string;
  value: unknown;
  /** The date from which the new value holds. */
  from: string;
}

interface WriteContext {
  registry: string;
  subject: string;
  changeId: string;
  recordedAt: string;
}

async function currentCovering(db: Db, ctx: WriteContext, item: string, date: string): Promise<(FactRow & { seq: number }) | undefined> {
  const rows = await factsAt(db, ctx.registry, ctx.subject, [item], { asAt: date, knownAt: null });
  return rows[0];
}

async function supersede(db: Db, seq: number, at: string): Promise<void> {
  const res = await db.updateTable('fact').set({ superseded_at: at }).where('seq', '=', seq).where('superseded_at', 'is', null).executeTakeFirst();
  // A concurrent writer superseded the same row first: refuse rather than fork the history.
  if (Number(res.numUpdatedRows) !== 1) {
    throw new OnceOnlyError('conflict', 'the record changed while this change was being applied; try again', { field: 'item' });
  }
}

async function insertFact(db: Db, ctx: WriteContext, item: string, value: unknown, from: string, to: string | null, kind: string): Promise<void> {
  await db
    .insertInto('fact')
    .values({
      registry: ctx.registry,
      subject: ctx.subject,
      item,
      value: JSON.stringify(value),
      valid_from: from,
      valid_to: to,
      recorded_at: ctx.recordedAt,
      superseded_at: null,
      kind,
      change_id: ctx.changeId,
    })
    .execute();
}

/**
 * Records that `w.item` has `w.value` from `w.from` until the next already-known change (or open
 * ended). If the item had no value at that date the new value starts a period that runs until
 * the next known period begins, so a back-dated fact never overwrites later knowledge.
 */
export async function applyChange(db: Db, ctx: WriteContext, w: FactWrite): Promise<void> {
  const covering = await currentCovering(db, ctx, w.item, w.from);
  if (covering) {
    await supersede(db, covering.seq, ctx.recordedAt);
    if (covering.validFrom < w.from) {
      await insertFact(db, ctx, w.item, covering.value, covering.validFrom, w.from, covering.kind === 'correction' ? 'correction' : covering.kind);
    }
    await insertFact(db, ctx, w.item, w.value, w.from, covering.validTo, 'change');
    return;
  }
  const later = (await timeline(db, ctx.registry, ctx.subject, w.item)).find((f) => f.validFrom > w.from);
  await insertFact(db, ctx, w.item, w.value, w.from, later ? later.validFrom : null, 'change');
}

/**
 * Corrects the value believed for the period covering `w.from`: the period keeps its dates, the
 * old belief is kept as superseded, and the new row is marked `correction` so that corrections
 * stay distinguishable from changes in the world.
 */
export async function applyCorrection(db: Db, ctx: WriteContext, w: FactWrite): Promise<void> {
  const covering = await currentCovering(db, ctx, w.item, w.from);
  if (!covering) {
    throw new OnceOnlyError('invalid_change', `there is no value of ${w.item} at ${w.from} to correct`, {
      field: 'effectiveDate',
      expected: 'a date on which the item has a value',
    });
  }
  await supersede(db, covering.seq, ctx.recordedAt);
  await insertFact(db, ctx, w.item, w.value, covering.validFrom, covering.validTo, 'correction');
}

/** Writes the first facts of a new subject (no history to close). */
export async function insertInitial(db: Db, ctx: WriteContext, writes: readonly (FactWrite & { to?: string | null })[]): Promise<void> {
  for (const w of writes) await insertFact(db, ctx, w.item, w.value, w.from, w.to ?? null, 'initial');
}

/** Journals a change request (in the caller's transaction). */
export async function journal(db: Db, row: Database['change']): Promise<void> {
  await db.insertInto('change').values(row).execute();
}
