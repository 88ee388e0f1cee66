/**
 * @module test/support/errors
 * Asserting typed errors in tests.
 */
import assert from 'node:assert/strict';
import { isOnceOnlyError, type ErrorType, type OnceOnlyError } from '../../src/core/errors.ts';

/** Runs `fn`, asserts it throws an OnceOnlyError of `type`, and returns the error. */
export function expectError(fn: () => unknown, type: ErrorType): OnceOnlyError {
  try {
    fn();
  } catch (e) {
    assert.ok(isOnceOnlyError(e), `expected an OnceOnlyError, got ${String(e)}`);
    assert.equal(e.type, type, e.message);
    return e;
  }
  assert.fail(`expected ${type} to be thrown`);
}
