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
import type { InclusionProofDocument, SignedTreeHead } from '../transparency/formats.ts';
import { TransparencyLog } from '../transparency/log.ts';

const BIN = fileURLToPath(new URL('../../bin/onceonly.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'onceonly-tlog-cli-'));
const data = join(dir, 'data');
const env = { ...process.env, DATABASE_URL: '' };
const KEYS = generateSigningKey();
const OTHER = generateSigningKey();
const LOG = 'UK/transparency';

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
  file('head10.json', head10);
  file('head20.json', head20);
  file('proof7.json', proof);
  file('c10-20.json', await log.proveConsistency(10, 20));
  await store.close();
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('genuine proofs, heads and consistency verify (exit 0)', () => {
  let r = cli('verify', '--proof', 'proof7.json', '--key', 'key.jwk');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^valid: inclusion proof proof7\.json[\s\S]*entry 7 is included in the tree of 20 entries/);
  // Without a pinned key the head's own key is used, and the output says to compare its id.
  r = cli('verify', '--head', 'head20.json');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /taken from the head itself/);
  r = cli('verify', '--old', 'head10.json', '--new', 'head20.json', '--consistency', 'c10-20.json', '--key', 'key.jwk');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /extends the tree of 10/);
  // The consistency proof taken from the store instead of a file.
  r = cli('verify', '--old', 'head10.json', '--new', 'head20.json', '--data', 'data', '--key', 'key.jwk');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

// Every kind of tampering and malformation is covered in-process by transparency/formats.test.ts;
// these check that each reaches the command line with its exit code and reason.
test('tampered proofs and heads are not valid (exit 1), with the reason', () => {
  const cases: [string, string[], RegExp][] = [
    ['entry changed', ['--proof', file('p1.json', { ...proof, entry: proof.entry!.replace('P-7', 'P-8'), leafHash: undefined }), '--key', 'key.jwk'], /does not lead from entry 7/],
    ['head signed by another key', ['--head', 'head20.json', '--key', 'other.jwk'], /names key/],
    ['consistency path changed', ['--old', 'head10.json', '--new', 'head20.json', '--consistency', file('c1.json', { format: 'onceonly-consistency-proof-1', log: LOG, firstSize: 10, secondSize: 20, path: [leafHash('y').toString('hex')] })], /does not extend/],
  ];
  for (const [what, args, reason] of cases) {
    const r = cli('verify', ...args);
    assert.equal(r.status, 1, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^NOT VALID/, what);
    assert.match(r.stdout, reason, what);
  }
});

test('malformed input is refused with a typed error naming the file and field (exit 2)', () => {
  const { path: _path, ...noPath } = proof;
  const cases: [string, string[], RegExp][] = [
    ['no path', ['--proof', file('m1.json', noPath)], /invalid_file[\s\S]*m1\.json: path must be an array[\s\S]*at: .*m1\.json, path/],
    ['not JSON', ['--head', file('m4.json', '{ nope')], /m4\.json: not JSON/],
    ['two modes', ['--head', 'head20.json', '--proof', 'proof7.json'], /give exactly one of/],
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
  // The store keeps the key id, not the key: a verifier brings the key it trusts.
  const { publicKey: _key, ...stored } = head20;
  assert.deepEqual(JSON.parse(r.stdout), stored);
  r = cli('prove', '--index', '13', '--data', 'data');
  assert.equal(r.status, 0, r.stderr);
  file('proof13.json', r.stdout);
  assert.equal(cli('verify', '--proof', 'proof13.json', '--key', 'key.jwk').status, 0);

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
