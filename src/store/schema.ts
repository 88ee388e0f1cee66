/**
 * @module store/schema
 * Kysely table types. Dates are `YYYY-MM-DD` text, instants UTC ISO text, JSON values text, on
 * both engines (see core/dates for why); sequence numbers are numbers on both (the PostgreSQL
 * driver is told to parse int8 as a JS number, safe below 2^53).
 */
import type { Generated } from 'kysely';

/** A record held by a registry: a person, an address, a company. */
export interface SubjectTable {
  /** Registry subsystem id that masters the record, e.g. `UK/GOV/GRO/population`. */
  registry: string;
  /** The record's identifier inside that registry (national id, address id, company number). */
  id: string;
  /** When the registry first recorded it (UTC instant). */
  recorded_at: string;
}

/**
 * One bitemporal fact: `item` of `subject` had `value` from `valid_from` (inclusive) to
 * `valid_to` (exclusive, null = still true), as the registry believed from `recorded_at` until
 * `superseded_at` (null = current belief). Rows are never updated except to set `superseded_at`,
 * so "what did we know on day X" stays answerable.
 */
export interface FactTable {
  seq: Generated<number>;
  registry: string;
  subject: string;
  item: string;
  /** JSON text of the value. */
  value: string;
  valid_from: string;
  valid_to: string | null;
  recorded_at: string;
  superseded_at: string | null;
  /** `initial`, `change` or `correction`. */
  kind: string;
  /** The change or correction that wrote this row. */
  change_id: string;
}

/** The journal of changes and corrections as they were requested: what happened, not its effect. */
export interface ChangeTable {
  id: string;
  registry: string;
  subject: string;
  /** e.g. `move`, `name`, `death`, `correction`, `register`. */
  type: string;
  effective_date: string;
  recorded_at: string;
  /** JSON text of the validated request. */
  payload: string;
}

export interface Database {
  subject: SubjectTable;
  fact: FactTable;
  change: ChangeTable;
}
