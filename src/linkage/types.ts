/**
 * @module linkage/types
 * The data shapes of the record-linkage engine: tables in, scored pairs, a trained model and
 * explanations out. The engine is Fellegi-Sunter (Fellegi & Sunter, "A Theory for Record
 * Linkage", JASA 1969) as Splink implements it: comparisons with ordered levels, m and u per
 * level, match weight = log2(prior odds) + sum of log2(m/u), probability from the weight.
 */

/** A cell: trimmed text, or null when empty. */
export type Cell = string | null;

/** A table of records: one row per record, cells in the order of `columns`. */
export interface Table {
  /** Where the table came from (a file path or a store table), for messages. */
  source: string;
  columns: string[];
  /** The record id of each row, unique within the table. */
  ids: string[];
  rows: Cell[][];
}

/** What a column holds, so the engine knows how to normalise, block on and compare it. */
export type FieldKind =
  | 'given_name'
  | 'surname'
  | 'full_name'
  | 'dob'
  | 'postcode'
  | 'house_number'
  | 'street'
  | 'address'
  | 'locality'
  | 'email'
  | 'identifier'
  | 'sex';

/** A column used for linkage, and what it holds. */
export interface FieldSpec {
  column: string;
  kind: FieldKind;
}

/** One level of a comparison, from the strictest (first) to "else" (last). */
export interface LevelParams {
  label: string;
  /** P(level | match). */
  m: number;
  /** P(level | non-match). */
  u: number;
}

/** One comparison's trained levels. Level 0 is always "null" (either side missing): it carries no weight. */
export interface ComparisonParams {
  /** The comparison's name, e.g. `surname` or `dob`. */
  name: string;
  /** The field kinds compared; each table maps its own columns to kinds, so headers may differ. */
  kinds: FieldKind[];
  levels: LevelParams[];
  /** Whether the exact level's u is replaced by the value's term frequency. */
  tf: boolean;
}

/** A trained model: everything needed to score or explain a pair, serialisable as JSON. */
export interface Model {
  version: 1;
  /** Prior probability that two random records (one per side when linking) are a match. */
  lambda: number;
  comparisons: ComparisonParams[];
  /**
   * Whether the household rule applies (docs/linkage.md): two records at one address whose given
   * names or dates of birth disagree outright are not scored on the address and surname they
   * share, and stay below probability 1/3. Absent: true.
   */
  householdRule?: boolean;
  /** Term frequencies for the tf comparisons: comparison name -> normalised value -> share of records. */
  tf: Record<string, Record<string, number>>;
  /** How each parameter was obtained (random sampling, EM iterations, fixed, labels). */
  training: Record<string, unknown>;
}

/** A blocking rule: records are compared when all the derived keys named agree and are not null. */
export interface BlockingRule {
  name: string;
  keys: string[];
  /**
   * Whether m is estimated in a session of this rule's pairs (default true). Rules that gather
   * households (the same address) are kept out: among their pairs EM would learn "same household"
   * rather than "same person".
   */
  train?: boolean;
}

/** How many comparisons a blocking rule generated, counted before scoring; each pair once, by the first rule that produced it. */
export interface BlockingReport {
  rule: string;
  /** Pairs this rule produced that no earlier rule had produced. */
  pairs: number;
}

/** A pair judged, with indices into the tables and their record ids. */
export interface ScoredPair {
  left: number;
  right: number;
  leftId: string;
  rightId: string;
  /** log2 of the Bayes factor plus the prior's log odds. */
  weight: number;
  probability: number;
}

/** One step of an explanation: Splink's waterfall chart's bars. */
export interface ExplanationStep {
  comparison: string;
  level: string;
  /** The values compared, as normalised. */
  left: string | null;
  right: string | null;
  /** log2(m/u) for this level (tf-adjusted when applicable); 0 for the null level and for a level the household rule does not count. */
  weight: number;
  m: number;
  u: number;
  /** Why the level's weight is not counted, when it is not. */
  note?: string;
}

export interface Explanation {
  leftId: string;
  rightId: string;
  prior: number;
  steps: ExplanationStep[];
  /** What the household rule's cap took off the sum of prior and steps (zero or negative), when it applied. */
  household?: { rule: string; weight: number };
  weight: number;
  probability: number;
}
