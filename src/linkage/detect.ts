/**
 * @module linkage/detect
 * Sensible defaults for person data: which column holds which field, from the header and checked
 * against the content, with a note in words for every choice so the operator can see (and
 * override) what the engine decided.
 */
import { isCalendarDate, normaliseDob } from './compare.ts';
import type { FieldKind, FieldSpec, Table } from './types.ts';
import { clip } from './shown.ts';

/** Header spellings per kind, compared after lower-casing and turning non-alphanumerics into `_`. */
const HEADERS: [FieldKind, RegExp][] = [
  ['given_name', /^(given_?names?|first_?names?|forenames?|fore_?names?|fname|christian_?names?|first)$/],
  ['surname', /^(surnames?|last_?names?|family_?names?|lname|last)$/],
  ['full_name', /^(name|full_?name|person_?name|names)$/],
  ['dob', /^(dob|d_o_b|date_?of_?birth|birth_?date|birthdate|born|birth_?day)$/],
  ['postcode', /^(post_?code|postal_?code|zip|zip_?code|pcode)$/],
  ['house_number', /^(street_?number|house_?number|house_?no|building_?number|number)$/],
  ['street', /^(address_?1|address_?line_?1|street|street_?name|street_?address|addr_?1|address_?line1)$/],
  ['address', /^(address|full_?address|address_?lines?|home_?address)$/],
  ['locality', /^(town|city|suburb|locality|post_?town|village)$/],
  ['email', /^(e_?mail|email_?address|e_?mail_?address)$/],
  ['identifier', /^(soc_?sec_?id|ssn|nino|ni_?number|national_?insurance(_?number)?|nhs_?number|national_?id)$/],
  ['sex', /^(sex|gender)$/],
];

const EMAIL_RE = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const UK_POSTCODE_RE = /^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$/i;

function headerKey(h: string): string {
  return h.trim().toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
}

/** Share of a column's non-empty sample values that satisfy `ok`, and how many were non-empty. */
function share(table: Table, c: number, ok: (v: string) => boolean): { share: number; filled: number } {
  let filled = 0;
  let good = 0;
  const step = Math.max(1, Math.floor(table.rows.length / 2000));
  for (let i = 0; i < table.rows.length; i += step) {
    const v = table.rows[i]![c];
    if (v == null) continue;
    filled++;
    if (ok(v)) good++;
  }
  return { share: filled ? good / filled : 0, filled };
}

const CONTENT: Partial<Record<FieldKind, (v: string) => boolean>> = {
  dob: (v) => {
    const d = normaliseDob(v);
    return d !== null && isCalendarDate(d);
  },
  email: (v) => EMAIL_RE.test(v),
  postcode: (v) => UK_POSTCODE_RE.test(v.trim()) || /^\d{4,5}$/.test(v.trim()),
};

/** Whether a column is the table's record id (its every sampled cell equals the row's id). */
function isIdColumn(table: Table, c: number): boolean {
  const n = Math.min(table.rows.length, 200);
  if (n === 0) return false;
  for (let i = 0; i < n; i++) if (table.rows[i]![c] !== table.ids[i]) return false;
  return true;
}

/**
 * Chooses the columns to link on. A header recognised by name is kept when its content agrees
 * (for dates, emails and postcodes at least 50% of sampled values must look right, since real
 * extracts are dirty); an unrecognised header is tried by content alone (90%, to be sure).
 */
export function detectFields(table: Table): { fields: FieldSpec[]; notes: string[] } {
  const fields: FieldSpec[] = [];
  const notes: string[] = [];
  const taken = new Set<FieldKind>();
  const unknown: number[] = [];
  table.columns.forEach((h, c) => {
    if (isIdColumn(table, c)) {
      notes.push(`${clip(h)}: the record id, not compared`);
      return;
    }
    const key = headerKey(h);
    const kind = HEADERS.find(([, re]) => re.test(key))?.[0];
    if (!kind) {
      unknown.push(c);
      return;
    }
    if (taken.has(kind)) {
      notes.push(`${clip(h)}: ignored, ${kind} is already taken from another column`);
      return;
    }
    const check = CONTENT[kind];
    if (check) {
      const s = share(table, c, check);
      if (s.filled > 0 && s.share < 0.5) {
        notes.push(`${clip(h)}: header says ${kind} but only ${Math.round(s.share * 100)}% of values look like one; not used`);
        return;
      }
    }
    taken.add(kind);
    fields.push({ column: h, kind });
    notes.push(`${clip(h)}: ${kind} (by header)`);
  });
  for (const c of unknown) {
    const h = table.columns[c]!;
    let chosen: FieldKind | undefined;
    for (const [kind, check] of Object.entries(CONTENT) as [FieldKind, (v: string) => boolean][]) {
      if (taken.has(kind)) continue;
      const s = share(table, c, check);
      if (s.filled >= 20 && s.share >= 0.9) {
        chosen = kind;
        break;
      }
    }
    if (chosen) {
      taken.add(chosen);
      fields.push({ column: h, kind: chosen });
      notes.push(`${clip(h)}: ${chosen} (by content)`);
    } else {
      notes.push(`${clip(h)}: not recognised, not compared`);
    }
  }
  return { fields, notes };
}
