/**
 * `onceonly transparency` end to end, in child processes: a log is built and signed in a store,
 * its heads and proofs are written to files (by the library and by `transparency head|prove`), and
 * `transparency verify` / `verify-log` must accept the genuine ones (exit 0), refuse tampered ones
 * with the reason (exit 1), and refuse malformed input with a typed error naming the file and
 * field (exit 2).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateSigningKey, publicJwk } from '../core/crypto.ts';
import { leafHash } from '../core/merkle.ts';
import { openStore } from '../store/db.ts';
import { COSIGNATURE_V1, ED25519, cosignatureLine, formatVerifierKey, rawEd25519 } from '../core/note.ts';
import { withSignatures, type InclusionProofDocument, type SignedTreeHead } from '../transparency/formats.ts';
import { TransparencyLog } from '../transparency/log.ts';

const BIN = fileURLToPath(new URL('../../bin/onceonly.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'onceonly-tlog-cli-'));
const data = join(dir, 'data');
const env = { ...process.env, DATABASE_URL: '' };
const KEYS = generateSigningKey();
const OTHER = generateSigningKey();
const LOG = 'UK/transparency';
const WITNESSES = [generateSigningKey(), generateSigningKey()];
const VKEYS = WITNESSES.map((w, i) => formatVerifierKey(`witness.example/w${i}`, COSIGNATURE_V1, rawEd25519(w.publicKey)));

const file = (name: string, value: unknown): string => {
  const p = join(dir, name);
  writeFileSync(p, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return p;
};

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'transparency', ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let head10: SignedTreeHead;
let head20: SignedTreeHead;
let proof: InclusionProofDocument;

before(async () => {
  const store = await openStore({ dataDir: data });
  const log = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: LOG, signingKey: KEYS.privateKey });
  await log.appendMany(Array.from({ length: 10 }, (_, i) => ({ subject: `P-${i}`, client: 'UK/MUN/LEEDS/parking', items: ['person.address'] })));
  head10 = (await log.signTreeHead())!;
  for (let i = 10; i < 20; i++) await log.append({ subject: `P-${i}`, client: 'UK/GOV/DWP/benefits', items: ['person.birthDate'] });
  head20 = (await log.signTreeHead())!;
  proof = await log.proveInclusion(7);
  file('key.jwk', publicJwk(KEYS.publicKey));
  file('other.jwk', publicJwk(OTHER.publicKey));
  file('head10.txt', head10.checkpoint);
  file('head20.txt', head20.checkpoint);
  // Two witnesses cosign the checkpoint of 20 (as their gateways would, c2sp.org/tlog-witness).
  const body = head20.checkpoint.slice(0, head20.checkpoint.indexOf('\n\n') + 1);
  file('head20-cosigned.txt', withSignatures(head20, WITNESSES.map((w, i) => cosignatureLine(body, w.privateKey, `witness.example/w${i}`, 1_800_000_000))).checkpoint);
  file('proof7.json', proof);
  file('c10-20.json', await log.proveConsistency(10, 20));
  await store.close();
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('genuine proofs, checkpoints and consistency verify (exit 0); a quorum is required by default', () => {
  let r = cli('verify', '--proof', 'proof7.json', '--key', 'key.jwk', '--quorum', '0');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^valid: inclusion proof proof7\.json[\s\S]*entry 7 is included in the tree of 20 entries/);
  // The log's key as a verifier key (name+id+base64), as any C2SP tool prints it.
  const vkey = formatVerifierKey(LOG, ED25519, rawEd25519(KEYS.publicKey));
  r = cli('verify', '--head', 'head20-cosigned.txt', '--key', vkey, '--witness', ...VKEYS);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /cosigned by witness\.example\/w0[\s\S]*cosigned by witness\.example\/w1[\s\S]*quorum 2/);
  // The same checkpoint without cosignatures: the log's signature alone is not enough.
  r = cli('verify', '--head', 'head20.txt', '--key', vkey, '--witness', ...VKEYS);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /NOT VALID[\s\S]*cosigned by 0 of the 2 witnesses trusted[\s\S]*2 are required/);
  r = cli('verify', '--head', 'head20-cosigned.txt', '--key', vkey, '--witness', VKEYS[0]!, '--quorum', '1');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  r = cli('verify', '--old', 'head10.txt', '--new', 'head20.txt', '--consistency', 'c10-20.json', '--key', 'key.jwk');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /extends the tree of 10/);
  // The consistency proof taken from the store instead of a file.
  r = cli('verify', '--old', 'head10.txt', '--new', 'head20.txt', '--data', 'data', '--key', 'key.jwk');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

// Every kind of tampering and malformation is covered in-process by transparency/formats.test.ts;
// these check that each reaches the command line with its exit code and reason.
test('tampered proofs and checkpoints are not valid (exit 1), with the reason', () => {
  const cases: [string, string[], RegExp][] = [
    ['entry changed', ['--proof', file('p1.json', { ...proof, entry: proof.entry!.replace('P-7', 'P-8'), leafHash: undefined }), '--key', 'key.jwk', '--quorum', '0'], /does not lead from entry 7/],
    ['checkpoint checked against another key', ['--head', 'head20.txt', '--key', 'other.jwk', '--quorum', '0'], /no signature by the log's key/],
    ['consistency path changed', ['--old', 'head10.txt', '--new', 'head20.txt', '--key', 'key.jwk', '--consistency', file('c1.json', { format: 'onceonly-consistency-proof-1', log: LOG, firstSize: 10, secondSize: 20, path: [leafHash('y').toString('hex')] })], /does not extend/],
    ['a witness key that is not a cosigner key', ['--head', 'head20-cosigned.txt', '--key', 'key.jwk', '--witness', formatVerifierKey('witness.example/w0', ED25519, rawEd25519(WITNESSES[0]!.publicKey))], /./],
  ];
  for (const [what, args, reason] of cases.slice(0, 3)) {
    const r = cli('verify', ...args);
    assert.equal(r.status, 1, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^NOT VALID/, what);
    assert.match(r.stdout, reason, what);
  }
  const r = cli('verify', ...cases[3]![1]);
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /not a cosignature\/v1 key/);
});

test('malformed input is refused with a typed error naming the file and field (exit 2)', () => {
  const { path: _path, ...noPath } = proof;
  const cases: [string, string[], RegExp][] = [
    ['no path', ['--proof', file('m1.json', noPath), '--key', 'key.jwk'], /invalid_file[\s\S]*m1\.json: path must be an array[\s\S]*at: .*m1\.json, path/],
    ['not JSON', ['--proof', file('m4.json', '{ nope'), '--key', 'key.jwk'], /m4\.json: not JSON/],
    ['not a checkpoint', ['--head', file('m5.txt', '{"format":"onceonly-tree-head-1"}'), '--key', 'key.jwk'], /m5\.txt: checkpoint must be a C2SP checkpoint/],
    ['no key', ['--head', 'head20.txt'], /give the log's key with --key/],
    ['a key that is neither a file nor a verifier key', ['--head', 'head20.txt', '--key', 'nope.jwk'], /--key is not a verifier key/],
    ['two modes', ['--head', 'head20.txt', '--proof', 'proof7.json'], /give exactly one of/],
    ['a quorum out of range', ['--head', 'head20.txt', '--key', 'key.jwk', '--quorum', '-1'], /--quorum must be a whole number from 0 to 32/],
  ];
  for (const [what, args, message] of cases) {
    const r = cli('verify', ...args);
    assert.equal(r.status, 2, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message, what);
  }
});

test('head and prove take documents out of the store; verify-log checks it and names a tampered position', async () => {
  let r = cli('head', '--data', 'data');
  assert.equal(r.status, 0, r.stderr);
  // The checkpoint as a signed note, byte for byte what was signed.
  assert.equal(r.stdout, head20.checkpoint);
  r = cli('head', '--data', 'data', '--json');
  assert.deepEqual(JSON.parse(r.stdout), head20);
  r = cli('prove', '--index', '13', '--data', 'data');
  assert.equal(r.status, 0, r.stderr);
  file('proof13.json', r.stdout);
  assert.equal(cli('verify', '--proof', 'proof13.json', '--key', 'key.jwk', '--quorum', '0').status, 0);

  r = cli('verify-log', '--data', 'data', '--key', 'key.jwk');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /transparency log UK\/transparency: OK/);
  const store = await openStore({ dataDir: data });
  const row = await store.db.selectFrom('transparency_entry').select('entry').where('seq', '=', 12).executeTakeFirstOrThrow();
  await store.db.updateTable('transparency_entry').set({ entry: row.entry.replace('DWP', 'HMRC') }).where('seq', '=', 12).execute();
  await store.close();
  r = cli('verify-log', '--data', 'data', '--key', 'key.jwk');
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /FAILED[\s\S]*first problem at position 12[\s\S]*altered/);
  assert.equal(cli('verify-log', '--data', 'data', '--log', 'UK/nope').status, 2);
});
