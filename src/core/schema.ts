/**
 * @module core/schema
 * Shape checks by TypeBox schemas, compiled once, with a typed error that names the first field
 * that is wrong (as a JSON Pointer, RFC 6901) and what was expected there. Used wherever a document
 * arrives from outside the process (a signed configuration, a registry's answer, a settings file),
 * so that code after the check can trust the types.
 */
import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { OnceOnlyError, type ErrorType } from './errors.ts';

/** A compiled check: returns the value typed, or throws `type` naming the first wrong field. */
export type Checker<T> = (value: unknown, where?: string) => T;

/** Compiles `schema` into a {@link Checker} that throws `type` (default `invalid_value`). */
export function checker<S extends TSchema>(schema: S, what: string, type: ErrorType = 'invalid_value'): Checker<Static<S>> {
  const v = Compile(schema);
  return (value, where = what) => {
    if (v.Check(value)) return value;
    const first = v.Errors(value)[0];
    const path = first?.instancePath ?? '';
    const extra = first?.keyword === 'additionalProperties' ? ` (${String((first.params as { additionalProperties?: string[] }).additionalProperties?.join(', ') ?? '')})` : '';
    throw new OnceOnlyError(type, `${where}${path ? ` at ${path}` : ''}: ${first?.message ?? 'does not have the expected shape'}${extra}`, { field: `${where}${path}`, expected: first?.message ?? `a valid ${what}` });
  };
}

/** True when `value` matches the compiled `schema` (no error built). */
export function matcher<S extends TSchema>(schema: S): (value: unknown) => value is Static<S> {
  const v = Compile(schema);
  return (value): value is Static<S> => v.Check(value);
}
