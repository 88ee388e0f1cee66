/**
 * @module cli/transparency
 * `onceonly transparency verify|verify-log|head|prove`: checking the transparency log's proofs and
 * signed tree heads offline with nothing but the files and the log's public key, checking a whole
 * stored log, and taking heads and proofs out of a store. Formats: docs/transparency.md.
 *
 * Exit codes: 0 valid, 1 not valid (the reason on stdout), 2 malformed input (a typed error on
 * stderr naming the file and the field).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Ed25519PublicJwk } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import {
  parseConsistencyProof,
  parseInclusionProof,
  parsePublicJwk,
  parseTreeHead,
  verifyExtends,
  verifyInclusionProof,
  verifyTreeHead,
  type ConsistencyProofDocument,
  type Verdict,
} from '../transparency/formats.ts';
import { TransparencyLog, formatLogReport, listLogs, verifyLog } from '../transparency/log.ts';
import type { Store } from '../store/db.ts';
import { intOption, openCliStore, reportError } from './common.ts';

/** Reads a JSON file; a typed error naming the file when it cannot be read or parsed. */
function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { file, expected: 'a readable JSON file' });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `${file}: not JSON (${e instanceof Error ? e.message : String(e)})`, { file, expected: 'a JSON document' });
  }
}

function readKey(file: string | undefined): Ed25519PublicJwk | undefined {
  return file === undefined ? undefined : parsePublicJwk(readJson(file), file);
}

function print(v: Verdict, what: string): number {
  if (v.ok) {
    process.stdout.write(`valid: ${what}\n${v.details.map((d) => `  ${d}\n`).join('')}`);
    return 0;
  }
  process.stdout.write(`NOT VALID: ${what}: ${v.reason}\n${v.details.map((d) => `  ${d}\n`).join('')}`);
  return 1;
}

async function withStore<T>(data: string | undefined, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openCliStore({ ...(data === undefined ? {} : { data }) });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** The log to use: the one named, or the store's only one. */
async function pickLog(store: Store, name: string | undefined): Promise<string> {
  const logs = await listLogs(store.db);
  if (name !== undefined) {
    if (!logs.includes(name)) throw new OnceOnlyError('not_found', `no transparency log ${name} in ${store.location}`, { field: '--log', expected: logs.length ? logs.join(', ') : 'a log that exists' });
    return name;
  }
  if (logs.length !== 1) {
    throw new OnceOnlyError('invalid_request', logs.length === 0 ? `no transparency log in ${store.location}` : `${store.location} holds several transparency logs: name one with --log`, { field: '--log', expected: logs.join(', ') || 'a store with a log' });
  }
  return logs[0]!;
}

interface VerifyOptions {
  proof?: string;
  head?: string;
  old?: string;
  new?: string;
  consistency?: string;
  key?: string;
  data?: string;
}

async function verifyCommand(o: VerifyOptions): Promise<number> {
  const modes = [o.proof !== undefined, o.head !== undefined, o.old !== undefined || o.new !== undefined].filter(Boolean).length;
  if (modes !== 1) {
    throw new OnceOnlyError('invalid_request', 'give exactly one of --proof FILE, --head FILE, or --old FILE --new FILE', { field: 'options', expected: '--proof | --head | --old and --new' });
  }
  const key = readKey(o.key);
  if (o.proof !== undefined) return print(verifyInclusionProof(parseInclusionProof(readJson(o.proof), o.proof), key), `inclusion proof ${o.proof}`);
  if (o.head !== undefined) return print(verifyTreeHead(parseTreeHead(readJson(o.head), o.head), key), `tree head ${o.head}`);
  if (o.old === undefined || o.new === undefined) throw new OnceOnlyError('invalid_request', '--old and --new go together', { field: o.old === undefined ? '--old' : '--new' });
  const older = parseTreeHead(readJson(o.old), o.old);
  const newer = parseTreeHead(readJson(o.new), o.new);
  let proof: ConsistencyProofDocument | undefined;
  if (o.consistency !== undefined) {
    proof = parseConsistencyProof(readJson(o.consistency), o.consistency);
  } else if (older.treeSize > 0 && newer.treeSize > older.treeSize) {
    // No proof file: ask the store for one. It proves nothing by where it comes from; the check
    // below holds it against the two signed roots.
    proof = await withStore(o.data, async (store) => {
      await pickLog(store, older.log);
      const log = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: older.log });
      if ((await log.size()) < newer.treeSize) {
        throw new OnceOnlyError('not_found', `the log ${older.log} in ${store.location} has fewer than ${newer.treeSize} entries: give the proof with --consistency`, { field: '--consistency' });
      }
      return log.proveConsistency(older.treeSize, newer.treeSize);
    });
  }
  return print(verifyExtends(older, newer, proof, key), `${o.new} extends ${o.old}`);
}

/** Registers `onceonly transparency …`. */
export function registerTransparencyCommands(program: Command): void {
  const t = program.command('transparency').description('the transparency log: signed tree heads, inclusion and consistency proofs');

  t.command('verify')
    .description('check an inclusion proof, a signed tree head, or that a newer head extends an older one (exit 0 valid, 1 not, 2 malformed)')
    .option('--proof <file>', 'an inclusion proof document: is the entry in the tree the signed head commits to?')
    .option('--head <file>', 'a signed tree head document: does its signature hold?')
    .option('--old <file>', 'the older signed tree head')
    .option('--new <file>', 'the newer signed tree head')
    .option('--consistency <file>', 'the consistency proof between --old and --new (default: taken from the store)')
    .option('--key <file>', 'the log\'s public key (JWK) to trust; without it, the key inside the head is used')
    .option('--data <dir>', 'data directory of the store to take a consistency proof from (or DATABASE_URL)')
    .action(async (o: VerifyOptions) => {
      try {
        process.exitCode = await verifyCommand(o);
      } catch (e) {
        process.exitCode = reportError(e);
      }
    });

  t.command('verify-log')
    .description('check a whole stored log offline: entries, subtree hashes, signed heads (exit 0 intact, 1 not)')
    .option('--data <dir>', 'data directory of the embedded store (PostgreSQL when DATABASE_URL is set)', 'data')
    .option('--log <name>', 'the log to check (default: every log in the store)')
    .option('--key <file...>', 'the log\'s public key(s) (JWK) to check head signatures with')
    .action(async (o: { data: string; log?: string; key?: string[] }) => {
      try {
        const keys = (o.key ?? []).map((f) => parsePublicJwk(readJson(f), f));
        process.exitCode = await withStore(o.data, async (store) => {
          const logs = o.log === undefined ? await listLogs(store.db) : [await pickLog(store, o.log)];
          if (logs.length === 0) {
            process.stdout.write(`no transparency log in ${store.location}\n`);
            return 0;
          }
          let code = 0;
          for (const name of logs) {
            const report = await verifyLog(store.db, name, { publicKeys: keys });
            process.stdout.write(formatLogReport(report));
            if (!report.ok) code = 1;
          }
          return code;
        });
      } catch (e) {
        process.exitCode = reportError(e);
      }
    });

  t.command('head')
    .description('print the latest signed tree head of a stored log (JSON)')
    .option('--data <dir>', 'data directory of the embedded store (PostgreSQL when DATABASE_URL is set)', 'data')
    .option('--log <name>', 'the log (default: the store\'s only one)')
    .action(async (o: { data: string; log?: string }) => {
      try {
        await withStore(o.data, async (store) => {
          const name = await pickLog(store, o.log);
          const head = await new TransparencyLog({ db: store.db, dialect: store.dialect, logId: name }).latestTreeHead();
          if (!head) throw new OnceOnlyError('not_found', `the log ${name} has no signed tree head yet`, { field: '--log' });
          process.stdout.write(`${JSON.stringify(head, null, 2)}\n`);
        });
      } catch (e) {
        process.exitCode = reportError(e);
      }
    });

  t.command('prove')
    .description('print an inclusion proof of entry --index against the latest signed head, or a consistency proof --from SIZE --to SIZE (JSON)')
    .option('--data <dir>', 'data directory of the embedded store (PostgreSQL when DATABASE_URL is set)', 'data')
    .option('--log <name>', 'the log (default: the store\'s only one)')
    .option('--index <n>', 'the entry to prove', intOption('index', 0, Number.MAX_SAFE_INTEGER))
    .option('--from <size>', 'the older tree size', intOption('from', 1, Number.MAX_SAFE_INTEGER))
    .option('--to <size>', 'the newer tree size', intOption('to', 1, Number.MAX_SAFE_INTEGER))
    .action(async (o: { data: string; log?: string; index?: number; from?: number; to?: number }) => {
      try {
        if ((o.index === undefined) === (o.from === undefined || o.to === undefined)) {
          throw new OnceOnlyError('invalid_request', 'give either --index N, or --from SIZE and --to SIZE', { field: 'options' });
        }
        await withStore(o.data, async (store) => {
          const log = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: await pickLog(store, o.log) });
          const doc = o.index !== undefined ? await log.proveInclusion(o.index) : await log.proveConsistency(o.from!, o.to!);
          process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        });
      } catch (e) {
        process.exitCode = reportError(e);
      }
    });
}
