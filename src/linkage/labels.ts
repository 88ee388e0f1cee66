/**
 * @module linkage/labels
 * Labelled pairs for training m from known matches: our own `left_id,right_id,match` layout or
 * Splink's clerical labels (`unique_id_l,unique_id_r,clerical_match_score`).
 */
import { readFileSync, statSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { OnceOnlyError } from '../core/errors.ts';
import { clip, clipList, shown } from './shown.ts';

export interface Label {
  leftId: string;
  rightId: string;
  match: boolean;
}

const LEFT = ['left_id', 'unique_id_l'];
const RIGHT = ['right_id', 'unique_id_r'];
const MATCH = ['match', 'is_match', 'clerical_match_score'];

/** Largest labels file read, in bytes: labels are a clerical sample, not a table of millions. */
const MAX_BYTES = 256 * 1024 * 1024;

/**
 * Reads labelled pairs; a score column counts as a match at 0.5 or more (Splink's convention for
 * clerical scores). Refuses a file with no labelled pair, since training would then silently fall
 * back to learning without labels.
 */
export function readLabels(file: string): Label[] {
  let rows: string[][];
  let lines: number[];
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw new OnceOnlyError('invalid_file', `${file} is a folder, not a CSV file of labels`, { file, expected: 'a CSV file of labelled pairs' });
    if (!st.isFile() && !st.isFIFO()) throw new OnceOnlyError('invalid_file', `${file} is a device or a socket, not a CSV file of labels`, { file, expected: 'a CSV file of labelled pairs' });
    if (st.size > MAX_BYTES) throw new OnceOnlyError('invalid_file', `${file} is ${st.size} bytes, more than the ${MAX_BYTES} accepted for labels`, { file, expected: `at most ${MAX_BYTES} bytes` });
    const parsed = parse(readFileSync(file), { trim: true, skip_empty_lines: true, bom: true, info: true }) as unknown as { record: string[]; info: { lines: number } }[];
    rows = parsed.map((p) => p.record);
    lines = parsed.map((p) => p.info.lines);
  } catch (e) {
    if (e instanceof OnceOnlyError) throw e;
    const err = e as { code?: string; lines?: number; message?: string };
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') throw new OnceOnlyError('not_found', `${file} does not exist`, { file, expected: 'an existing CSV file of labelled pairs' });
    if (err.code === 'EACCES' || err.code === 'EPERM') throw new OnceOnlyError('invalid_file', `${file} could not be read (permission denied)`, { file, expected: 'a readable CSV file' });
    throw new OnceOnlyError('invalid_file', `${file} is not a readable CSV file: ${err.message ?? String(e)}`, { file, ...(err.lines ? { line: err.lines } : {}) });
  }
  const header = (rows[0] ?? []).map((h) => h.toLowerCase());
  const find = (names: string[]): number => header.findIndex((h) => names.includes(h));
  const l = find(LEFT);
  const r = find(RIGHT);
  const m = find(MATCH);
  if (l < 0 || r < 0 || m < 0) {
    throw new OnceOnlyError('invalid_file', `${file} needs columns for the left id, the right id and the label`, { file, line: 1, field: 'header', expected: `${LEFT.join('|')}, ${RIGHT.join('|')}, ${MATCH.join('|')}`, columns: clipList(header) });
  }
  if (rows.length < 2) {
    throw new OnceOnlyError('invalid_file', `${file} has a header but no labelled pairs`, { file, line: 2, expected: 'one labelled pair per line after the header' });
  }
  return rows.slice(1).map((row, k) => {
    const line = lines[k + 1]!;
    const raw = (row[m] ?? '').toLowerCase();
    const n = Number(raw);
    let match: boolean;
    if (raw === 'true' || raw === 'yes') match = true;
    else if (raw === 'false' || raw === 'no') match = false;
    else if (raw !== '' && Number.isFinite(n) && n >= 0 && n <= 1) match = n >= 0.5;
    else throw new OnceOnlyError('invalid_file', `${file} line ${line}: the label ${shown(row[m] ?? '')} is not a match flag`, { file, line, field: clip(header[m] ?? 'match'), expected: 'true/false, yes/no, or a score from 0 to 1' });
    const leftId = row[l] ?? '';
    const rightId = row[r] ?? '';
    if (!leftId || !rightId) throw new OnceOnlyError('invalid_file', `${file} line ${line}: a record id is empty`, { file, line, field: clip((leftId ? header[r] : header[l]) ?? 'id'), expected: 'a record id' });
    return { leftId, rightId, match };
  });
}
