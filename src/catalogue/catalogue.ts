/**
 * @module catalogue/catalogue
 * The catalogue of data items (RIHA in Estonia, the OOTS semantic repository in the EU): every
 * fact the platform exchanges has one stable id, a JSON Schema for its value, a classification
 * and exactly one authoritative owner, the registry subsystem that masters it. Other parts ask the
 * catalogue who masters an item and whether a value is well-formed; the form check asks it what a
 * question is really asking for.
 *
 * An item is in the catalogue only because some registry masters it: facts that nobody masters
 * (a contact e-mail address, a bank account) are deliberately left out, so "in the catalogue"
 * and "mastered" mean the same thing.
 */
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { OnceOnlyError } from '../core/errors.ts';
import { formatSubsystemId, parseSubsystemId } from '../core/ids.ts';
import { ProblemCollector, readDocument, type DocPath, type Locator } from './document.ts';

// ajv-formats is CommonJS; under nodenext its default export arrives as the module object.
const addFormats = addFormatsModule.default;

/** How sensitive an item's value is (UK GDPR: personal data, and Art. 9 special categories). */
export type Classification = 'public' | 'personal' | 'special-category';

/** The classifications, in increasing order of sensitivity. */
export const CLASSIFICATIONS: readonly Classification[] = ['public', 'personal', 'special-category'];

/**
 * An item id: dotted lower camel case with at least two segments (`person.birthDate`). The first
 * segment names the kind of subject, which keeps ids readable and stable when owners change.
 */
export const ITEM_ID = /^[a-z][a-zA-Z0-9]*(?:\.[a-z][a-zA-Z0-9]*)+$/;

/** One data item of the catalogue. */
export interface CatalogueItem {
  /** Stable id, e.g. `person.birthDate`. */
  readonly id: string;
  /** What a form would call it, e.g. "Date of birth". */
  readonly label: string;
  /** Other names people use for it; the form check matches question labels against these. */
  readonly synonyms: readonly string[];
  readonly description?: string;
  /** JSON Schema (draft 2020-12) of the item's value. */
  readonly schema: Readonly<Record<string, unknown>>;
  readonly classification: Classification;
  /** The subsystem that masters the item, `INSTANCE/CLASS/MEMBER/SUBSYSTEM`. */
  readonly owner: string;
}

const ITEM_KEYS = ['id', 'label', 'schema', 'classification', 'owner'] as const;
const ITEM_OPTIONAL = ['synonyms', 'description'] as const;

function newAjv(): Ajv2020 {
  // strict: an unknown keyword in an item schema is almost always a typo that would silently
  // accept every value; allErrors: report everything wrong with a value at once.
  const ajv = new Ajv2020({ strict: true, allErrors: true, strictRequired: false });
  addFormats(ajv);
  return ajv;
}

/** The loaded catalogue: items by id, with their compiled value validators. */
export class Catalogue {
  readonly #items = new Map<string, CatalogueItem>();
  readonly #validators = new Map<string, ValidateFunction>();

  /** Use {@link parseCatalogue} or {@link loadCatalogue}; this trusts already-checked items. */
  constructor(items: readonly CatalogueItem[], validators: ReadonlyMap<string, ValidateFunction>) {
    for (const item of items) {
      this.#items.set(item.id, item);
      const v = validators.get(item.id);
      if (v) this.#validators.set(item.id, v);
    }
  }

  /** The item with this id, or undefined. */
  get(id: string): CatalogueItem | undefined {
    return this.#items.get(id);
  }

  /** The item with this id; throws `unknown_item` naming `field` when there is none. */
  require(id: string, field: string): CatalogueItem {
    const item = this.#items.get(id);
    if (!item) {
      throw new OnceOnlyError('unknown_item', `${field}: "${id}" is not an item of the catalogue`, {
        field,
        expected: 'an item id listed at GET /catalogue/items',
      });
    }
    return item;
  }

  /** All items, in file order. */
  list(): CatalogueItem[] {
    return [...this.#items.values()];
  }

  /** The items a subsystem masters. Throws `invalid_identifier` for a malformed subsystem id. */
  ownedBy(subsystemId: string): CatalogueItem[] {
    const canonical = formatSubsystemId(parseSubsystemId(subsystemId, 'subsystemId'));
    return this.list().filter((i) => i.owner === canonical);
  }

  /**
   * Checks a value against its item's schema; throws `unknown_item` for an unknown item and
   * `invalid_value` naming the exact place (`field` plus the JSON path inside the value).
   */
  validateValue(itemId: string, value: unknown, field: string): void {
    this.require(itemId, field);
    const validate = this.#validators.get(itemId);
    if (!validate) throw new OnceOnlyError('internal_error', `no validator compiled for ${itemId}`);
    if (validate(value)) return;
    const errors = validate.errors ?? [];
    const problems = errors.map((e) => {
      const missing = (e.params as { missingProperty?: string }).missingProperty;
      const inner = [e.instancePath.replace(/^\//, '').replaceAll('/', '.'), missing].filter((s) => s !== undefined && s !== '').join('.');
      const where = inner === '' ? field : `${field}.${inner}`;
      return { field: where, message: `${where} ${missing !== undefined ? 'is required' : (e.message ?? 'is invalid')}` };
    });
    const first = problems[0] ?? { field, message: `${field} is invalid` };
    throw new OnceOnlyError('invalid_value', first.message, {
      field: first.field,
      expected: `a value matching the schema of ${itemId}`,
      item: itemId,
      problems,
    });
  }
}

/**
 * Checks a parsed catalogue document `{items: [...]}` (plus any `x-` extension keys, ignored) and builds the catalogue. All problems are
 * collected and thrown together as one `invalid_file`. `locate` maps paths to source lines.
 */
export function parseCatalogue(doc: unknown, file: string, locate?: Locator): Catalogue {
  const p = new ProblemCollector(file, locate);
  const root = p.object(doc, [], ['items'], [], true);
  const rawItems = root ? p.array(root['items'], ['items']) : undefined;
  const items: CatalogueItem[] = [];
  const validators = new Map<string, ValidateFunction>();
  const firstSeen = new Map<string, { owner: string | undefined; index: number }>();
  const ajv = newAjv();

  (rawItems ?? []).forEach((raw, index) => {
    const at: DocPath = ['items', index];
    const o = p.object(raw, at, ITEM_KEYS, ITEM_OPTIONAL);
    if (!o) return;
    const id = p.string(o['id'], [...at, 'id'], ITEM_ID, 'dotted lower camel case with at least two parts, e.g. person.birthDate');
    const label = p.string(o['label'], [...at, 'label']);
    const owner = p.subsystem(o['owner'], [...at, 'owner']);
    const synonyms = readSynonyms(p, o['synonyms'], [...at, 'synonyms']);
    const description = o['description'] === undefined ? undefined : p.string(o['description'], [...at, 'description']);
    const classification = readClassification(p, o['classification'], [...at, 'classification']);
    const schema = o['schema'];
    let validate: ValidateFunction | undefined;
    if (schema !== undefined && schema !== null) validate = compileSchema(p, ajv, schema, [...at, 'schema']);

    if (id !== undefined) {
      const prior = firstSeen.get(id);
      if (prior) {
        if (owner !== undefined && prior.owner !== undefined && prior.owner !== owner) {
          p.report([...at, 'owner'], `item "${id}" has two owners: ${prior.owner} (items[${prior.index}]) and ${owner}; an item has exactly one authoritative owner`, 'one entry per item, with its one owner');
        } else {
          p.report([...at, 'id'], `duplicate item id "${id}" (first at items[${prior.index}])`, 'each item id once');
        }
        return;
      }
      firstSeen.set(id, { owner, index });
    }
    if (id === undefined || label === undefined || owner === undefined || classification === undefined || !validate || synonyms === undefined) return;
    items.push({
      id,
      label,
      synonyms,
      ...(description !== undefined ? { description } : {}),
      schema: schema as Record<string, unknown>,
      classification,
      owner,
    });
    validators.set(id, validate);
  });

  p.throwIfAny('catalogue');
  return new Catalogue(items, validators);
}

/** The shipped catalogue, found relative to this file so that any working directory works. */
export const DEFAULT_CATALOGUE_FILE = fileURLToPath(new URL('../../config/catalogue.yaml', import.meta.url));

/** Reads and checks a catalogue file (`.yaml`, `.yml` or `.json`). */
export function loadCatalogue(file: string): Catalogue {
  const { doc, locate } = readDocument(file);
  return parseCatalogue(doc, file, locate);
}

function readSynonyms(p: ProblemCollector, v: unknown, path: DocPath): string[] | undefined {
  if (v === undefined || v === null) return [];
  const list = p.array(v, path);
  if (!list) return undefined;
  const out: string[] = [];
  let ok = true;
  list.forEach((s, i) => {
    const text = p.string(s, [...path, i]);
    if (text === undefined) ok = false;
    else out.push(text);
  });
  return ok ? out : undefined;
}

function readClassification(p: ProblemCollector, v: unknown, path: DocPath): Classification | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && (CLASSIFICATIONS as readonly string[]).includes(v)) return v as Classification;
  p.report(path, `${JSON.stringify(v)} is not a classification`, `one of ${CLASSIFICATIONS.join(', ')}`);
  return undefined;
}

function compileSchema(p: ProblemCollector, ajv: Ajv2020, schema: unknown, path: DocPath): ValidateFunction | undefined {
  if (typeof schema !== 'object' || Array.isArray(schema)) {
    p.report(path, 'must be a JSON Schema object', 'a JSON Schema (draft 2020-12) object');
    return undefined;
  }
  const expected = 'a valid JSON Schema (draft 2020-12; formats from ajv-formats; no unknown keywords)';
  if (!ajv.validateSchema(schema as object)) {
    const first = ajv.errors?.[0];
    const where = first ? `${first.instancePath || '(root)'} ${first.message ?? ''}`.trim() : 'is not valid';
    p.report(path, `is not a valid JSON Schema: ${where}`, expected);
    return undefined;
  }
  try {
    return ajv.compile(schema as object);
  } catch (e) {
    // Strict mode and unknown formats are only detected while compiling.
    p.report(path, `is not a valid JSON Schema: ${(e as Error).message}`, expected);
    return undefined;
  }
}
