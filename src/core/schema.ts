/**
 * @module core/schema
 * Shape checks by TypeBox schemas, compiled once, with a typed error that names the first field
 * that is wrong (as a dotted path, `perItem.address`) and what was expected there (the schema's
 * `description` where it has one, else the validator's words). Used wherever a document arrives
 * from outside the process (a signed configuration, a registry's answer, a settings file, cost
 * settings), so that code after the check can trust the types.
 */
import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { OnceOnlyError, type ErrorType } from './errors.ts';

/** A compiled check: returns the value typed, or throws `type` naming the first wrong field. */
export type Checker<T> = (value: unknown, where?: string) => T;

interface ValidationError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/** The sub-schema a JSON Pointer (`#/properties/a/items`, RFC 6901) names, if any. */
function at(schema: unknown, pointer: string): Record<string, unknown> | undefined {
  let node: unknown = schema;
  for (const raw of pointer.replace(/^#\/?/, '').split('/').filter((p) => p !== '')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return typeof node === 'object' && node !== null ? (node as Record<string, unknown>) : undefined;
}

const dotted = (pointer: string): string => pointer.replace(/^\//, '').split('/').map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~')).join('.');

/** Compiles `schema` into a {@link Checker} that throws `type` (default `invalid_value`). */
export function checker<S extends TSchema>(schema: S, what: string, type: ErrorType = 'invalid_value'): Checker<Static<S>> {
  const v = Compile(schema);
  return (value, where = what) => {
    if (v.Check(value)) return value;
    const errors = v.Errors(value) as unknown as ValidationError[];
    // "schema is false" (an additional property) says least; the additionalProperties error beside it names the key.
    const first = errors.find((e) => e.keyword !== 'boolean') ?? errors[0];
    const prefix = where === '' ? '' : where;
    const join = (path: string): string => [prefix, dotted(path)].filter((x) => x !== '').join('.') || '(root)';
    if (!first) throw new OnceOnlyError(type, `${where || what} does not have the expected shape`, { field: where || what, expected: `a valid ${what}` });
    if (first.keyword === 'additionalProperties') {
      const key = String((first.params['additionalProperties'] as string[] | undefined)?.[0] ?? '');
      const allowed = Object.keys((at(schema, first.schemaPath)?.['properties'] as Record<string, unknown> | undefined) ?? {});
      const field = join(`${first.instancePath}/${key}`);
      throw new OnceOnlyError(type, `${field}: unknown key ${JSON.stringify(key.slice(0, 80))}`, { field, expected: allowed.length ? `one of: ${allowed.join(', ')}` : 'no other keys' });
    }
    const described = at(schema, first.schemaPath)?.['description'];
    const expected = typeof described === 'string' ? described : first.message;
    const field = join(first.instancePath);
    throw new OnceOnlyError(type, `${field}: ${first.message}`, { field, expected });
  };
}

/** True when `value` matches the compiled `schema` (no error built). */
export function matcher<S extends TSchema>(schema: S): (value: unknown) => value is Static<S> {
  const v = Compile(schema);
  return (value): value is Static<S> => v.Check(value);
}
