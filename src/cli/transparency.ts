/**
 * @module cli/transparency
 * `onceonly transparency verify|verify-log|head|prove`: checking the transparency log's proofs and
 * checkpoints offline with nothing but the files, the log's public key and the witnesses' keys
 * (or a gateway's held global configuration, which lists them all), checking a whole stored log,
 * and taking checkpoints and proofs out of a store. Formats: docs/transparency.md.
 *
 * Exit codes: 0 valid, 1 not valid (the reason on stdout), 2 malformed input (a typed error on
 * stderr naming the file and the field).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadPrivateKey, publicJwk, type Ed25519PublicJwk } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { COSIGNATURE_V1, parseVerifierKey, type NoteVerifier } from '../core/note.ts';
import {
  logVerifier,
  parseCheckpoint,
  parseConsistencyProof,
  parseInclusionProof,
  parsePublicJwk,
  verifyExtends,
  verifyInclusionProof,
  verifyTreeHead,
  type ConsistencyProofDocument,
  type SignedTreeHead,
  type Verdict,
  type WitnessPolicy,
} from '../transparency/formats.ts';
import { TransparencyLog } from '../transparency/log.ts';
import { formatLogReport, listLogs, verifyLog } from '../transparency/verify.ts';
import type { Store } from '../store/db.ts';
import { action, intOption, openCliStore } from './common.ts';
import { openGatewayStore, readHeldConfiguration } from '../gateway/node.ts';
import { DEFAULT_QUORUM, gatewayLogVerifier, transparencyLogId, witnessPolicy } from '../gateway/witnessing.ts';

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { file, expected: 'a readable file' });
  }
}

/** Reads a JSON file; a typed error naming the file when it cannot be read or parsed. */
function readJson(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `${file}: not JSON (${e instanceof Error ? e.message : String(e)})`, { file, expected: 'a JSON document' });
  }
}

/** The options that say whom to trust. */
interface TrustOptions {
  key?: string;
  witness?: string[];
  quorum?: number;
  keysFrom?: string;
}

/**
 * The log key and witness policy for checkpoints of `log`: from a gateway's held global
 * configuration (`--keys-from`: the log's gateway's key, every other active gateway as a witness),
 * or given (`--key`: a JWK file or a verifier key; `--witness`: cosigner verifier keys).
 */
async function trust(log: string, o: TrustOptions): Promise<{ logKey: NoteVerifier; policy: WitnessPolicy }> {
  const quorum = o.quorum ?? DEFAULT_QUORUM;
  const extra = (o.witness ?? []).map((w, i) => {
    const v = parseVerifierKey(w, `--witness[${i}]`);
    if (v.type !== COSIGNATURE_V1) throw new OnceOnlyError('invalid_value', `--witness ${v.name} is not a cosignature/v1 key (type 0x04)`, { field: `--witness[${i}]`, expected: 'NAME+KEYID+BASE64 of type 0x04' });
    return v;
  });
  if (o.keysFrom !== undefined) {
    if (o.key !== undefined) throw new OnceOnlyError('invalid_request', 'give --key or --keys-from, not both', { field: '--key' });
    const { conf } = await readHeldConfiguration(o.keysFrom);
    const g = conf.gateways.find((x) => transparencyLogId(x.id) === log);
    const logKey = g && gatewayLogVerifier(conf, g.id);
    if (!g || !logKey) throw new OnceOnlyError('not_found', `no gateway in the global configuration held in ${o.keysFrom} keeps the log ${log}`, { field: '--keys-from', expected: 'the directory of a gateway of the same exchange' });
    const policy = witnessPolicy(conf, g.id, quorum);
    return { logKey, policy: { witnesses: [...policy.witnesses, ...extra], quorum } };
  }
  if (o.key === undefined) throw new OnceOnlyError('invalid_request', 'give the log\'s key with --key (a JWK file or a verifier key), or --keys-from a gateway directory', { field: '--key', expected: 'FILE.jwk, NAME+KEYID+BASE64, or --keys-from DIR' });
  let logKey: NoteVerifier;
  if (existsSync(o.key)) logKey = logVerifier(log, parsePublicJwk(readJson(o.key), o.key) satisfies Ed25519PublicJwk);
  else logKey = parseVerifierKey(o.key, '--key');
  return { logKey, policy: { witnesses: extra, quorum } };
}

function print(v: Verdict, what: string): number {
  if (v.ok) {
    process.stdout.write(`valid: ${what}\n${v.details.map((d) => `  ${d}\n`).join('')}`);
    return 0;
  }
  process.stdout.write(`NOT VALID: ${what}: ${v.reason}\n${v.details.map((d) => `  ${d}\n`).join('')}`);
  return 1;
}

/**
 * Opens the store that holds the log: a gateway directory's own store (its `gateway.sqlite`, or
 * PostgreSQL with DATABASE_URL), or a data directory's; never a new, empty one, which would only
 * answer that there is no log.
 */
async function openLogStore(data: string | undefined): Promise<Store> {
  const dir = data ?? 'data';
  const url = process.env['DATABASE_URL'];
  if (existsSync(join(dir, 'gateway.json'))) return openGatewayStore(dir, url);
  if (!url && !existsSync(join(dir, 'onceonly.sqlite'))) {
    throw new OnceOnlyError('not_found', `no onceonly store in ${dir}`, { field: '--data', expected: 'a gateway directory (with gateway.json) or a data directory holding onceonly.sqlite' });
  }
  return openCliStore({ data: dir });
}

async function withStore<T>(data: string | undefined, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openLogStore(data);
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

interface VerifyOptions extends TrustOptions {
  proof?: string;
  head?: string;
  old?: string;
  new?: string;
  consistency?: string;
  data?: string;
}

async function verifyCommand(o: VerifyOptions): Promise<number> {
  const modes = [o.proof !== undefined, o.head !== undefined, o.old !== undefined || o.new !== undefined].filter(Boolean).length;
  if (modes !== 1) {
    throw new OnceOnlyError('invalid_request', 'give exactly one of --proof FILE, --head FILE, or --old FILE --new FILE', { field: 'options', expected: '--proof | --head | --old and --new' });
  }
  if (o.proof !== undefined) {
    const doc = parseInclusionProof(readJson(o.proof), o.proof);
    const { logKey, policy } = await trust(doc.log, o);
    return print(verifyInclusionProof(doc, logKey, policy), `inclusion proof ${o.proof}`);
  }
  const readHead = (file: string): SignedTreeHead => parseCheckpoint(readText(file), file);
  if (o.head !== undefined) {
    const head = readHead(o.head);
    const { logKey, policy } = await trust(head.log, o);
    return print(verifyTreeHead(head, logKey, policy), `checkpoint ${o.head}`);
  }
  if (o.old === undefined || o.new === undefined) throw new OnceOnlyError('invalid_request', '--old and --new go together', { field: o.old === undefined ? '--old' : '--new' });
  const older = readHead(o.old);
  const newer = readHead(o.new);
  const { logKey } = await trust(older.log, o);
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
  return print(verifyExtends(older, newer, proof, logKey), `${o.new} extends ${o.old}`);
}

/** Registers `onceonly transparency …`. */
export function registerTransparencyCommands(program: Command): void {
  const t = program.command('transparency').description('the transparency log: signed tree heads, inclusion and consistency proofs');

  t.command('verify')
    .description('check an inclusion proof, a checkpoint and its witness cosignatures, or that a newer checkpoint extends an older one (exit 0 valid, 1 not, 2 malformed)')
    .option('--proof <file>', 'an inclusion proof document: is the entry in the tree the checkpoint commits to, and is that checkpoint cosigned by a quorum?')
    .option('--head <file>', 'a checkpoint (C2SP signed note): do the log\'s signature and a quorum of cosignatures hold?')
    .option('--old <file>', 'the older checkpoint')
    .option('--new <file>', 'the newer checkpoint')
    .option('--consistency <file>', 'the consistency proof between --old and --new (default: taken from the store)')
    .option('--key <key>', 'the log\'s public key to trust: a JWK file, or a verifier key NAME+KEYID+BASE64')
    .option('--witness <vkey...>', 'a witness\'s cosigner key (NAME+KEYID+BASE64, type 0x04) to count towards the quorum')
    .option('--keys-from <dir>', 'a gateway directory: the log\'s key and every other gateway as a witness, from the global configuration it holds')
    .option('--quorum <n>', `witness cosignatures required (default ${DEFAULT_QUORUM}; 0 checks the log's signature only)`, intOption('quorum', 0, 32))
    .option('--data <dir>', 'data directory of the store to take a consistency proof from (or DATABASE_URL)')
    .action(action(async (o: VerifyOptions) => {
      process.exitCode = await verifyCommand(o);
    }));

  t.command('verify-log')
    .description('check a whole stored log offline: entries, subtree hashes, signed heads (exit 0 intact, 1 not)')
    .option('--data <dir>', 'a gateway directory (its own store) or a data directory (PostgreSQL when DATABASE_URL is set)', 'data')
    .option('--log <name>', 'the log to check (default: every log in the store)')
    .option('--key <file...>', 'the log\'s public key(s) (JWK) to check checkpoint signatures with (default for a gateway directory: the gateway\'s own)')
    .action(action(async (o: { data: string; log?: string; key?: string[] }) => {
      const keys = (o.key ?? []).map((f) => parsePublicJwk(readJson(f), f));
      // A gateway's own directory: its own key, unless others are given (after a rotation).
      const own = join(o.data, 'signing.key.pem');
      if (keys.length === 0 && existsSync(join(o.data, 'gateway.json')) && existsSync(own)) keys.push(publicJwk(loadPrivateKey(readText(own))));
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
    }));

  t.command('head')
    .description('print the latest checkpoint of a stored log with its cosignatures (a C2SP signed note; --json for a JSON document)')
    .option('--data <dir>', 'a gateway directory (its own store) or a data directory (PostgreSQL when DATABASE_URL is set)', 'data')
    .option('--log <name>', 'the log (default: the store\'s only one)')
    .option('--json', 'print {log, treeSize, rootHash, checkpoint}')
    .action(action(async (o: { data: string; log?: string; json?: boolean }) => {
      await withStore(o.data, async (store) => {
        const name = await pickLog(store, o.log);
        const head = await new TransparencyLog({ db: store.db, dialect: store.dialect, logId: name }).latestTreeHead();
        if (!head) throw new OnceOnlyError('not_found', `the log ${name} has no checkpoint yet`, { field: '--log' });
        process.stdout.write(o.json ? `${JSON.stringify(head, null, 2)}\n` : head.checkpoint);
      });
    }));

  t.command('prove')
    .description('print an inclusion proof of entry --index against the latest signed head, or a consistency proof --from SIZE --to SIZE (JSON)')
    .option('--data <dir>', 'a gateway directory (its own store) or a data directory (PostgreSQL when DATABASE_URL is set)', 'data')
    .option('--log <name>', 'the log (default: the store\'s only one)')
    .option('--index <n>', 'the entry to prove', intOption('index', 0, Number.MAX_SAFE_INTEGER))
    .option('--from <size>', 'the older tree size', intOption('from', 1, Number.MAX_SAFE_INTEGER))
    .option('--to <size>', 'the newer tree size', intOption('to', 1, Number.MAX_SAFE_INTEGER))
    .action(action(async (o: { data: string; log?: string; index?: number; from?: number; to?: number }) => {
      if ((o.index === undefined) === (o.from === undefined || o.to === undefined)) {
        throw new OnceOnlyError('invalid_request', 'give either --index N, or --from SIZE and --to SIZE', { field: 'options' });
      }
      await withStore(o.data, async (store) => {
        const log = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: await pickLog(store, o.log) });
        const doc = o.index !== undefined ? await log.proveInclusion(o.index) : await log.proveConsistency(o.from!, o.to!);
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
      });
    }));
}
