/**
 * @module audit/input
 * What the audit reads besides the register: agencies' extracts (a file or text, through the
 * linkage engine's CSV reader) and the cost settings (a small JSON or YAML file). Every problem
 * is a typed error naming the file.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Type, type Static } from 'typebox';
import { OnceOnlyError } from '../core/errors.ts';
import { checker } from '../core/schema.ts';
import { parseCsvRecords, readTable, readTableFromString, type ReadTableResult } from '../linkage/csv.ts';
import { DEFAULT_COSTS, type CostSettings } from './audit.ts';
import { ITEMS, type Item } from './values.ts';

/** An agency's name from its file name: `council-tax.csv` is "council tax". */
export function agencyFromFile(file: string): string {
  return basename(file, extname(file)).replace(/[-_]+/g, ' ').trim() || basename(file);
}

/** The first column of the header, the id column when none is named. */
function firstColumn(headerText: string, source: string): string | undefined {
  const nl = headerText.indexOf('\n');
  const line = nl < 0 ? headerText : headerText.slice(0, nl + 1);
  try {
    return parseCsvRecords(line, source)[0]?.cells[0] ?? undefined;
  } catch {
    // A header that does not parse is reported by the reader proper, with its line.
    return undefined;
  }
}

function headOf(file: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const buf = Buffer.alloc(64 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Reads an extract file; the id column is `idColumn`, else the first column. */
export function readExtractFile(file: string, idColumn?: string): ReadTableResult {
  const id = idColumn ?? firstColumn(headOf(file).replace(/^\uFEFF/, ''), file) ?? '';
  return readTable(file, { idColumn: id });
}

/** Reads an extract given as text (an API request); `source` names it in messages. */
export function readExtractText(text: string, source: string, idColumn?: string, maxBytes?: number): ReadTableResult {
  const id = idColumn ?? firstColumn(text.replace(/^\uFEFF/, ''), source) ?? '';
  return readTableFromString(text, source, { idColumn: id, ...(maxBytes !== undefined ? { maxBytes } : {}) });
}

function bad(file: string, field: string, expected: string, message: string): OnceOnlyError {
  return new OnceOnlyError('invalid_file', `${file}: ${message}`, { file, field, expected });
}

const Amount = Type.Number({ minimum: 0, description: 'a number, zero or more' });
/** The cost settings a file or a request may give: every key optional, no other. */
const CostsSchema = Type.Object(
  {
    currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$', description: 'an ISO 4217 code such as GBP or EUR' })),
    perRecord: Type.Optional(Amount),
    perItem: Type.Optional(Type.Object(Object.fromEntries(ITEMS.map((i) => [i, Type.Optional(Amount)])), { additionalProperties: false })),
    perDiscrepancy: Type.Optional(Amount),
  },
  { additionalProperties: false, description: 'an object with any of currency, perRecord, perItem, perDiscrepancy' },
);
const checkCosts = checker(CostsSchema, 'costs', 'invalid_file');

/** Validates cost settings given as data (from a file or a request); unset figures keep their defaults. */
export function parseCosts(data: unknown, file: string): CostSettings {
  let o: Static<typeof CostsSchema>;
  try {
    o = checkCosts(data, '');
  } catch (e) {
    // In the file it came from, the field as the settings spell it (`perItem.address`).
    const err = e as OnceOnlyError;
    throw bad(file, String(err.detail.field), String(err.detail.expected), err.message);
  }
  const perItem = { ...DEFAULT_COSTS.perItem };
  for (const [k, v] of Object.entries(o.perItem ?? {})) if (v !== undefined) perItem[k as Item] = v;
  return {
    currency: o.currency ?? DEFAULT_COSTS.currency,
    perRecord: o.perRecord ?? DEFAULT_COSTS.perRecord,
    perItem,
    perDiscrepancy: o.perDiscrepancy ?? DEFAULT_COSTS.perDiscrepancy,
  };
}

/** Largest costs file read: a handful of figures, so anything bigger is not one. */
const MAX_COSTS_BYTES = 1024 * 1024;

/** Reads cost settings from a JSON or YAML file. */
export function loadCosts(file: string): CostSettings {
  let text: string;
  try {
    // A device such as /dev/zero never ends, so only a regular file of modest size is read.
    const st = statSync(file);
    if (!st.isFile()) throw new OnceOnlyError('invalid_file', `${file} is not a file`, { file, expected: 'a JSON or YAML file of costs' });
    if (st.size > MAX_COSTS_BYTES) throw new OnceOnlyError('invalid_file', `${file} is ${st.size} bytes, too large for a costs file`, { file, expected: `a JSON or YAML file of at most ${MAX_COSTS_BYTES} bytes` });
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof OnceOnlyError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OnceOnlyError('not_found', `${file} does not exist`, { file, expected: 'a JSON or YAML file of costs' });
    throw new OnceOnlyError('invalid_file', `${file} could not be read (${code ?? String(e)})`, { file, expected: 'a readable JSON or YAML file' });
  }
  let data: unknown;
  try {
    data = parseYaml(text) as unknown;
  } catch (e) {
    const line = (e as { linePos?: { line: number }[] }).linePos?.[0]?.line;
    throw new OnceOnlyError('invalid_file', `${file} is not valid JSON or YAML: ${(e as Error).message.split('\n')[0]}`, { file, ...(line !== undefined ? { line } : {}), expected: 'JSON or YAML' });
  }
  return parseCosts(data, file);
}
