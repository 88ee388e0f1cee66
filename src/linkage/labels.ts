/**
 * @module linkage/labels
 * Labelled pairs for training m from known matches: our own `left_id,right_id,match` layout or
 * Splink's clerical labels (`unique_id_l,unique_id_r,clerical_match_score`).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { OnceOnlyError } from '../core/errors.ts';

export interface Label {
  leftId: string;
  rightId: string;
  match: boolean;
}

const LEFT = ['left_id', 'unique_id_l'];
const RIGHT = ['right_id', 'unique_id_r'];
const MATCH = ['match', 'is_match', 'clerical_match_score'];

/** Reads labelled pairs; a score column counts as a match at 0.5 or more (Splink's convention for clerical scores). */
export function readLabels(file: string): Label[] {
  let rows: string[][];
  let lines: number[];
  try {
    const parsed = parse(readFileSync(file), { trim: true, skip_empty_lines: true, bom: true, info: true }) as unknown as { record: string[]; info: { lines: number } }[];
    rows = parsed.map((p) => p.record);
    lines = parsed.map((p) => p.info.lines);
  } catch (e) {
    const err = e as { code?: string; lines?: number; message?: string };
    if (err.code === 'ENOENT') throw new OnceOnlyError('invalid_file', `${file} does not exist`, { file });
    throw new OnceOnlyError('invalid_file', `${file} is not a readable CSV file: ${err.message ?? String(e)}`, { file, ...(err.lines ? { line: err.lines } : {}) });
  }
  const header = (rows[0] ?? []).map((h) => h.toLowerCase());
  const find = (names: string[]): number => header.findIndex((h) => names.includes(h));
  const l = find(LEFT);
  const r = find(RIGHT);
  const m = find(MATCH);
  if (l < 0 || r < 0 || m < 0) {
    throw new OnceOnlyError('invalid_file', `${file} needs columns for the left id, the right id and the label`, { file, line: 1, field: 'header', expected: `${LEFT.join('|')}, ${RIGHT.join('|')}, ${MATCH.join('|')}`, columns: header });
  }
  return rows.slice(1).map((row, k) => {
    const line = lines[k + 1]!;
    const raw = (row[m] ?? '').toLowerCase();
    const n = Number(raw);
    let match: boolean;
    if (raw === 'true' || raw === 'yes') match = true;
    else if (raw === 'false' || raw === 'no') match = false;
    else if (raw !== '' && Number.isFinite(n) && n >= 0 && n <= 1) match = n >= 0.5;
    else throw new OnceOnlyError('invalid_file', `${file} line ${line}: the label ${JSON.stringify(row[m] ?? '')} is not a match flag`, { file, line, field: header[m] ?? 'match', expected: 'true/false, yes/no, or a score from 0 to 1' });
    const leftId = row[l] ?? '';
    const rightId = row[r] ?? '';
    if (!leftId || !rightId) throw new OnceOnlyError('invalid_file', `${file} line ${line}: a record id is empty`, { file, line, field: (leftId ? header[r] : header[l]) ?? 'id', expected: 'a record id' });
    return { leftId, rightId, match };
  });
}
