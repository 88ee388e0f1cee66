/**
 * @module catalogue/document
 * Reading the central authority's configuration files (catalogue, agreements, form definitions)
 * and checking their shape. Two rules drive this module: a file is checked completely and every
 * problem is reported at once (an operator fixing a file should not have to re-run once per typo),
 * and every problem names its JSON path and, where the source is YAML or JSON text, its line.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { LineCounter, isNode, parseDocument, type Document } from 'yaml';
import { OnceOnlyError } from '../core/errors.ts';
import { isIsoDate } from '../core/dates.ts';
import { formatClientId, parseClientId, parseSubsystemId } from '../core/ids.ts';

/** A path into a document: keys and array indexes, e.g. `['items', 3, 'owner']`. */
export type DocPath = readonly (string | number)[];

/** Finds the 1-based source line of a path, when the document came from text. */
export type Locator = (path: DocPath) => number | undefined;

/** One problem found in a file. */
export interface Problem {
  /** JSON path such as `items[3].owner`. */
  field: string;
  message: string;
  expected?: string;
  line?: number;
}

/** A parsed file: the plain data plus a way to find the line of any path in it. */
export interface LoadedDocument {
  doc: unknown;
  locate: Locator;
}

/** Formats a path as `items[3].owner`; the empty path is the document itself. */
export function formatPath(path: DocPath): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(document)' : out;
}

function lineOf(offset: number, text: string): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function locatorFor(document: Document, counter: LineCounter): Locator {
  return (path) => {
    // A missing key has no node of its own; its nearest existing ancestor is the useful line.
    for (let n = path.length; n >= 0; n--) {
      const node: unknown = n === 0 ? document.contents : document.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return counter.linePos(node.range[0]).line;
    }
    return undefined;
  };
}

/**
 * Reads a YAML (`.yaml`, `.yml`) or JSON (`.json`) file. Syntax errors become `invalid_file` with
 * the line; the returned locator maps JSON paths back to lines for later shape errors.
 */
export function readDocument(file: string): LoadedDocument {
  const ext = extname(file).toLowerCase();
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    throw new OnceOnlyError('invalid_file', `${file}: unsupported file type "${ext}"`, {
      file,
      expected: 'a .yaml, .yml or .json file',
    });
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new OnceOnlyError('invalid_file', `${file}: cannot read the file (${code})`, { file, expected: 'a readable file' });
  }
  return parseText(text, file, ext === '.json' ? 'json' : 'yaml');
}

/** Parses document text; exported so tests and HTTP bodies share the file path's error handling. */
export function parseText(text: string, file: string, format: 'yaml' | 'json'): LoadedDocument {
  if (format === 'json') {
    // YAML is a superset of JSON: parse strictly first so YAML-only syntax in a .json file is refused.
    try {
      JSON.parse(text);
    } catch (e) {
      const msg = (e as Error).message;
      const pos = /position (\d+)/.exec(msg);
      const line = pos ? lineOf(Number(pos[1]), text) : undefined;
      throw new OnceOnlyError('invalid_file', `${file}${line ? `:${line}` : ''}: not valid JSON: ${msg}`, {
        file,
        field: '(document)',
        expected: 'a JSON document',
        ...(line ? { line } : {}),
      });
    }
  }
  const counter = new LineCounter();
  const document = parseDocument(text, { lineCounter: counter, prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    const problems: Problem[] = document.errors.map((err) => {
      const line = err.linePos?.[0].line;
      return {
        field: '(document)',
        // prettyErrors appends a source excerpt after the first line; the line number is enough.
        message: (err.message.split('\n')[0] ?? err.message).replace(/:$/, ''),
        expected: `valid ${format.toUpperCase()}`,
        ...(line !== undefined ? { line } : {}),
      };
    });
    const first = problems[0] as Problem;
    throw new OnceOnlyError('invalid_file', `${file}${first.line ? `:${first.line}` : ''}: not valid ${format.toUpperCase()}: ${first.message}`, {
      file,
      field: first.field,
      ...(first.expected !== undefined ? { expected: first.expected } : {}),
      ...(first.line !== undefined ? { line: first.line } : {}),
      problems,
    });
  }
  return { doc: document.toJS({ maxAliasCount: 1000 }) as unknown, locate: locatorFor(document, counter) };
}

/** Is `v` a plain object (not an array, not null)? */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A stable slug: lower-case letters and digits separated by single hyphens. */
export const SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const SLUG_EXPECTED = 'a slug: lower-case letters and digits separated by single hyphens, e.g. "resident-parking-permit"';

/**
 * Collects the problems of one file while its parser walks it. Each check reports and returns
 * `undefined` instead of throwing, so the walk carries on and finds every problem.
 */
export class ProblemCollector {
  readonly file: string;
  readonly problems: Problem[] = [];
  readonly #locate: Locator;

  constructor(file: string, locate: Locator = () => undefined) {
    this.file = file;
    this.#locate = locate;
  }

  /** Records a problem at `path`. */
  report(path: DocPath, message: string, expected?: string): void {
    const line = this.#locate(path);
    const field = formatPath(path);
    this.problems.push({
      field,
      message: `${field}: ${message}`,
      ...(expected !== undefined ? { expected } : {}),
      ...(line !== undefined ? { line } : {}),
    });
  }

  /**
   * Checks that `v` is an object with every `required` key and no key outside `required` and
   * `optional`: unknown keys are refused because a misspelt optional key would otherwise be
   * silently ignored (`previewRequried: true` meaning no preview). With `allowExtensions`, keys
   * starting with `x-` are allowed, as in OpenAPI: a typo cannot start with `x-` by accident.
   */
  object(v: unknown, path: DocPath, required: readonly string[], optional: readonly string[] = [], allowExtensions = false): Record<string, unknown> | undefined {
    if (!isRecord(v)) {
      this.report(path, 'must be an object', `an object with ${required.join(', ')}`);
      return undefined;
    }
    for (const key of required) if (v[key] === undefined || v[key] === null) this.report([...path, key], 'is required', describeKeys(required, optional));
    for (const key of Object.keys(v)) {
      if (allowExtensions && key.startsWith('x-')) continue;
      if (!required.includes(key) && !optional.includes(key)) this.report([...path, key], `unknown key "${key}"`, describeKeys(required, optional));
    }
    return v;
  }

  /** A non-empty string (trimmed), optionally matching `pattern`. Missing values were reported by {@link object}. */
  string(v: unknown, path: DocPath, pattern?: RegExp, expected?: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.trim() === '') {
      this.report(path, 'must be a non-empty string', expected ?? 'a non-empty string');
      return undefined;
    }
    if (pattern && !pattern.test(v)) {
      this.report(path, `"${v}" is not valid`, expected ?? `a string matching ${String(pattern)}`);
      return undefined;
    }
    return v;
  }

  /** A slug id. */
  slug(v: unknown, path: DocPath): string | undefined {
    return this.string(v, path, SLUG, SLUG_EXPECTED);
  }

  /** An X-Road subsystem id, checked by core/ids so the rules are the same everywhere. */
  subsystem(v: unknown, path: DocPath): string | undefined {
    if (v === undefined || v === null) return undefined;
    try {
      parseSubsystemId(v, formatPath(path));
      return v as string;
    } catch (e) {
      const err = e as OnceOnlyError;
      this.report(path, `${JSON.stringify(v)} is not a subsystem id: ${err.message}`, 'INSTANCE/CLASS/MEMBER/SUBSYSTEM, e.g. UK/GOV/GRO/population');
      return undefined;
    }
  }

  /** An X-Road client id: a member (`INSTANCE/CLASS/MEMBER`) or one of its subsystems. */
  client(v: unknown, path: DocPath): string | undefined {
    if (v === undefined || v === null) return undefined;
    try {
      return formatClientId(parseClientId(v, formatPath(path)));
    } catch (e) {
      const err = e as OnceOnlyError;
      this.report(path, `${JSON.stringify(v)} is not a client id: ${err.message}`, 'INSTANCE/CLASS/MEMBER[/SUBSYSTEM], e.g. UK/MUN/LEEDS/parking');
      return undefined;
    }
  }

  /** An ISO calendar date. YAML turns an unquoted date into a Date, so both forms are accepted. */
  date(v: unknown, path: DocPath): string | undefined {
    if (v === undefined || v === null) return undefined;
    const text = v instanceof Date && !Number.isNaN(v.getTime()) ? v.toISOString().slice(0, 10) : v;
    if (!isIsoDate(text)) {
      this.report(path, `${JSON.stringify(v)} is not a calendar date`, 'a real calendar date, YYYY-MM-DD (ISO 8601)');
      return undefined;
    }
    return text;
  }

  /** A boolean, or `fallback` when absent. */
  boolean(v: unknown, path: DocPath, fallback: boolean): boolean {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') {
      this.report(path, 'must be true or false', 'true or false');
      return fallback;
    }
    return v;
  }

  /** An array (optionally non-empty). */
  array(v: unknown, path: DocPath, nonEmpty = false): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) {
      this.report(path, 'must be a list', 'a list');
      return undefined;
    }
    if (nonEmpty && v.length === 0) {
      this.report(path, 'must not be empty', 'a list with at least one entry');
      return undefined;
    }
    return v as unknown[];
  }

  /** Throws `invalid_file` listing every problem, if there were any. */
  throwIfAny(what: string): void {
    const first = this.problems[0];
    if (!first) return;
    const more = this.problems.length > 1 ? ` (and ${this.problems.length - 1} more problem${this.problems.length > 2 ? 's' : ''})` : '';
    throw new OnceOnlyError('invalid_file', `${this.file}${first.line ? `:${first.line}` : ''}: invalid ${what}: ${first.message}${more}`, {
      file: this.file,
      field: first.field,
      ...(first.expected !== undefined ? { expected: first.expected } : {}),
      ...(first.line !== undefined ? { line: first.line } : {}),
      problems: this.problems,
    });
  }
}

function describeKeys(required: readonly string[], optional: readonly string[]): string {
  const opt = optional.length > 0 ? `; optional: ${optional.join(', ')}` : '';
  return `keys: ${required.join(', ')}${opt}`;
}

