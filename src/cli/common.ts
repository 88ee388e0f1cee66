/**
 * @module cli/common
 * What every command shares: where the data lives, opening the store, and turning a typed error
 * into a message on stderr and an exit code.
 */
import { InvalidArgumentError } from 'commander';
import { isOnceOnlyError } from '../core/errors.ts';
import { openStore, type Store } from '../store/db.ts';

/** Options every store-using command accepts. */
export interface StoreCliOptions {
  data?: string;
}

/** Opens the store: PostgreSQL when DATABASE_URL is set, else SQLite under `--data` (default ./data). */
export function openCliStore(opts: StoreCliOptions): Promise<Store> {
  return openStore({ databaseUrl: process.env['DATABASE_URL'], dataDir: opts.data ?? 'data' });
}

/** Prints an error for a person at a terminal and returns the exit code to use (2: bad input, 1: failure). */
export function reportError(e: unknown): number {
  if (isOnceOnlyError(e)) {
    process.stderr.write(`error (${e.type}): ${e.message}\n`);
    const d = e.detail;
    const where = [d.file, d.line !== undefined ? `line ${d.line}` : undefined, d.field].filter(Boolean).join(', ');
    if (where) process.stderr.write(`  at: ${where}\n`);
    if (d.expected) process.stderr.write(`  expected: ${d.expected}\n`);
    const problems = d['problems'];
    if (Array.isArray(problems) && problems.length > 1) {
      for (const p of problems.slice(0, 50)) process.stderr.write(`  - ${JSON.stringify(p)}\n`);
    }
    return e.status < 500 ? 2 : 1;
  }
  process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  return 1;
}

/**
 * Wraps a command's action: a typed error becomes its message on stderr and exit code 2 (bad
 * input) or 1 (failure), never a stack trace; the process is not exited, so output is flushed.
 */
export function action<A extends unknown[]>(fn: (...args: A) => unknown): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      process.exitCode = reportError(e);
    }
  };
}

/** Parses a positive integer option, naming it when it is not one. */
export function intOption(name: string, min: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      // Commander prints this as a usage error (no stack trace); main.ts makes usage errors exit 2.
      throw new InvalidArgumentError(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return n;
  };
}
