/**
 * @module test/support/errors
 * Asserting typed errors in tests.
 */
import assert from 'node:assert/strict';
import { isOnceOnlyError, type ErrorType, type OnceOnlyError } from '../../src/core/errors.ts';

/**
 * Runs `fn`, asserts it throws an OnceOnlyError of `type` (naming `field` in its detail, when
 * given), and returns the error. `what` names the case in the failure message.
 */
export function expectError(fn: () => unknown, type: ErrorType, field?: string, what?: string): OnceOnlyError {
  try {
    fn();
  } catch (e) {
    assert.ok(isOnceOnlyError(e), `${what ? `${what}: ` : ''}expected an OnceOnlyError, got ${String(e)}`);
    assert.equal(e.type, type, `${what ? `${what}: ` : ''}${e.message}`);
    if (field !== undefined) assert.equal(e.detail.field, field, `${what ? `${what}: ` : ''}field of ${e.message}`);
    return e;
  }
  assert.fail(`${what ? `${what}: ` : ''}expected ${type} to be thrown`);
}
