/**
 * @module catalogue/test-helpers
 * Shared by the catalogue tests: temporary files and assertions on typed errors.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OnceOnlyError } from '../core/errors.ts';
import { expectError } from '../../test/support/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'onceonly-catalogue-'));
let n = 0;
after(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `text` to a fresh temporary file with the given extension and returns its path. */
export function tempFile(text: string, ext = 'yaml'): string {
  const file = join(dir, `f${++n}.${ext}`);
  writeFileSync(file, text);
  return file;
}

export { expectError };

/** The `problems` list of an invalid_file error. */
export function problemsOf(e: OnceOnlyError): { field: string; message: string; line?: number }[] {
  const p = e.detail['problems'];
  assert.ok(Array.isArray(p), 'detail.problems is a list');
  return p as { field: string; message: string; line?: number }[];
}
