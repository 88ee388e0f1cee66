/**
 * @module linkage/model-check
 * Checks a linkage model that comes from outside (a file given to `onceonly link --model`, a
 * request body) before the engine relies on it. A model is plain JSON that anyone can edit, and
 * the engine trusts its numbers: a level with m or u of zero gives an infinite weight, a missing
 * term-frequency floor gives NaN, and a comparison name such as "toString" is found on every
 * object's prototype. Each of those would become a wrong answer rather than an error, so every
 * part is checked here and the first problem is named by its path in the JSON.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { COMPARISONS } from './comparisons.ts';
import type { Model } from './types.ts';

/** Where the model came from: a file (errors are `invalid_file`) or a request field (`invalid_request`). */
export interface ModelSource {
  file?: string;
  field?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isProbability = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= 1;

/** Returns `value` as a model when it is one the engine can use safely; throws a typed error naming the first problem otherwise. */
export function checkModel(value: unknown, source: ModelSource): Model {
  const where = source.file ?? source.field ?? 'model';
  const bad = (path: string, what: string, expected: string): never => {
    const detail = { ...(source.file ? { file: source.file } : {}), field: source.field ? `${source.field}.${path}` : path, expected };
    throw new OnceOnlyError(source.file ? 'invalid_file' : 'invalid_request', `${where} is not a usable linkage model: ${path} ${what}`, detail);
  };
  if (!isObject(value)) return bad('(root)', 'is not an object', 'a model written by --model-out (a JSON object)');
  if (value['version'] !== 1) bad('version', `is ${JSON.stringify(value['version'])}`, '1');
  const lambda = value['lambda'];
  if (typeof lambda !== 'number' || !(lambda > 0 && lambda < 1)) bad('lambda', `is ${JSON.stringify(lambda)}`, 'a probability above 0 and below 1');
  const comparisons = value['comparisons'];
  if (!Array.isArray(comparisons) || comparisons.length === 0) return bad('comparisons', 'is not a non-empty list', 'a list of comparisons');
  const household = value['householdRule'];
  if (household !== undefined && typeof household !== 'boolean') bad('householdRule', `is ${JSON.stringify(household)}`, 'true or false (absent: true)');
  const tf = value['tf'];
  if (tf !== undefined && !isObject(tf)) bad('tf', 'is not an object', 'comparison name -> value -> share of records');
  const seen = new Set<string>();
  const tableNames = new Set<string>();
  comparisons.forEach((c: unknown, k) => {
    const at = `comparisons[${k}]`;
    if (!isObject(c)) return bad(at, 'is not an object', '{name, kinds, tf, levels}');
    const name = c['name'];
    // Own properties only: "toString" or "__proto__" must not find something on the prototype.
    if (typeof name !== 'string' || !Object.hasOwn(COMPARISONS, name)) return bad(`${at}.name`, `is ${JSON.stringify(name)}, not a comparison the engine knows`, Object.keys(COMPARISONS).join(', '));
    if (seen.has(name)) bad(`${at}.name`, `repeats ${JSON.stringify(name)}`, 'each comparison once');
    seen.add(name);
    const def = COMPARISONS[name]!;
    const kinds = c['kinds'];
    if (kinds !== undefined && (!Array.isArray(kinds) || kinds.join('\u0001') !== def.kinds.join('\u0001'))) bad(`${at}.kinds`, `is ${JSON.stringify(kinds)}`, JSON.stringify(def.kinds));
    if (c['tf'] !== undefined && typeof c['tf'] !== 'boolean') bad(`${at}.tf`, `is ${JSON.stringify(c['tf'])}`, 'true or false');
    const levels = c['levels'];
    if (!Array.isArray(levels) || levels.length !== def.labels.length) {
      return bad(`${at}.levels`, `has ${Array.isArray(levels) ? levels.length : 'no'} levels`, `${def.labels.length} levels (${def.labels.join('; ')})`);
    }
    levels.forEach((l: unknown, i) => {
      if (!isObject(l)) return bad(`${at}.levels[${i}]`, 'is not an object', '{label, m, u}');
      if (typeof l['label'] !== 'string') bad(`${at}.levels[${i}].label`, 'is not text', JSON.stringify(def.labels[i]));
      // Level 0 ("null": a value missing) carries no weight; every other level enters log2(m/u).
      if (i === 0) return;
      for (const p of ['m', 'u'] as const) {
        if (!isProbability(l[p])) {
          bad(`${at}.levels[${i}].${p}`, `is ${JSON.stringify(l[p])}${l[p] === 0 ? ', which would make the weight of this level infinite' : ''}`, 'a probability above 0 and at most 1 (retrain if the model was trained on data where this level never occurred)');
        }
      }
    });
    // A comparison may have two tables: its values' (exact level) and a derived key's (`email:local`).
    for (const tname of [name, ...(def.tfNear ? [`${name}:${def.tfNear.transform}`] : [])]) {
      if (c['tf'] !== true || !isObject(tf) || tf[tname] === undefined) continue;
      const table = tf[tname];
      if (!isObject(table)) return bad(`tf.${tname}`, 'is not an object', 'value -> share of records');
      if (!isProbability(table['\u0000min'])) bad(`tf.${tname}["\\u0000min"]`, 'is missing or not a probability', 'the share of a value seen once, as written by --model-out');
      for (const [v, share] of Object.entries(table)) {
        if (!isProbability(share)) bad(`tf.${tname}[${JSON.stringify(v)}]`, `is ${JSON.stringify(share)}`, 'a share of records above 0 and at most 1');
      }
      tableNames.add(tname);
    }
  });
  const training = value['training'];
  if (training !== undefined && !isObject(training)) bad('training', 'is not an object', 'a description of how the model was trained');
  // Term-frequency tables without a prototype, so that a value such as "constructor" (a surname
  // after normalisation) is looked up as data and not found on Object.prototype.
  const tables: Model['tf'] = {};
  if (isObject(tf)) {
    for (const [name, table] of Object.entries(tf)) {
      if ((seen.has(name) || tableNames.has(name)) && isObject(table)) tables[name] = Object.assign(Object.create(null) as Record<string, number>, table);
    }
  }
  return { ...(value as unknown as Model), tf: tables, training: (training ?? {}) as Model['training'] };
}
