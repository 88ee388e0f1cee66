/**
 * @module core/json
 * Canonical JSON: the one text a JSON value hashes and signs as, whoever serialises it. It is the
 * JSON Canonicalization Scheme (RFC 8785) for the values onceonly produces: object members sorted
 * by the UTF-16 code units of their names, no whitespace, numbers and strings as ECMAScript's
 * JSON.stringify writes them (which is what RFC 8785 §3.2.2 prescribes).
 */
import { OnceOnlyError } from './errors.ts';

/** A JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

function refuse(path: string, what: string): OnceOnlyError {
  return new OnceOnlyError('invalid_value', `${path} is ${what}, which JSON cannot carry faithfully`, { field: path, expected: 'strings, finite numbers, booleans, null, arrays and plain objects' });
}

function write(v: unknown, path: string): string {
  if (typeof v === 'string' || typeof v === 'boolean' || v === null) return JSON.stringify(v);
  if (typeof v === 'number') {
    // NaN and ±Infinity would silently become null (RFC 8785 §3.2.2.3 forbids them).
    if (!Number.isFinite(v)) throw refuse(path, String(v));
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i > 0 ? ',' : '') + write(v[i], `${path}[${i}]`);
    return `${out}]`;
  }
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v) as unknown;
    // Dates, Buffers, Maps… serialise through toJSON or not at all; a record must say what it means.
    if (proto !== Object.prototype && proto !== null) throw refuse(path, `a non-plain object (${Object.prototype.toString.call(v)})`);
    const o = v as Record<string, unknown>;
    let out = '{';
    for (const k of Object.keys(o).sort()) {
      if (o[k] === undefined) continue;
      out += `${out.length > 1 ? ',' : ''}${JSON.stringify(k)}:${write(o[k], `${path}.${k}`)}`;
    }
    return `${out}}`;
  }
  throw refuse(path, `a ${typeof v}`);
}

/** The canonical JSON text of `value`; a typed error naming the path for anything not JSON. */
export function canonicalJson(value: unknown, path = '$'): string {
  return write(value, path);
}
