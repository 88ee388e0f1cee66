/**
 * `onceonly consent` end to end, in child processes, on a provider gateway's directory: the
 * gateway holds a signed global configuration (made here with the central's own builder and a
 * test anchor key) whose agreements decide what consent can be given. give, list, withdraw and
 * receipt must work and agree with the store; bad input must exit 2 with a typed error.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildGlobalConfiguration, signGlobalConfiguration } from '../central/conf.ts';
import type { Anchor } from '../central/types.ts';
import { generateSigningKey, privateKeyPem, publicJwk } from '../core/crypto.ts';
import { verifyReceipt, type Consent, type SignedConsentReceipt } from '../consent/consent.ts';
import { openGatewayStore } from '../gateway/node.ts';
import { makeId } from '../core/subjects.ts';

const BIN = fileURLToPath(new URL('../../bin/onceonly.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'onceonly-consent-cli-'));
const gw = join(dir, 'dwp');
const bare = join(dir, 'bare');
const env = { ...process.env, DATABASE_URL: '' };
const CENTRAL = generateSigningKey();
const GATEWAY = generateSigningKey();
const ALICE = makeId('person', 42);

const agreement = (id: string, provider: string, consentRequired: boolean) => ({
  id,
  client: 'UK/MUN/LEEDS/parking',
  provider,
  history: [],
  services: [],
  events: [],
  items: ['person.disabilityStatus', 'person.givenName'],
  purpose: { id: `purpose-${id}`, description: 'A synthetic purpose.' },
  legalBasis: consentRequired ? 'Explicit consent (synthetic)' : 'Public task (synthetic)',
  validFrom: '2024-01-01',
  validUntil: '2099-12-31',
  consentRequired,
  previewRequired: false,
});

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'consent', ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function makeGatewayDir(path: string, withConf: boolean): Promise<void> {
  const anchor: Anchor = { kind: 'onceonly-anchor', version: 1, instance: 'UK', centralUrl: 'http://127.0.0.1:9', publicKey: publicJwk(CENTRAL.publicKey), createdAt: new Date().toISOString() };
  const store = await openGatewayStore(path);
  try {
    writeFileSync(join(path, 'anchor.json'), JSON.stringify(anchor));
    writeFileSync(join(path, 'signing.key.pem'), privateKeyPem(GATEWAY.privateKey), { mode: 0o600 });
    writeFileSync(join(path, 'gateway.json'), JSON.stringify({ id: 'UK/GOV/DWP/gw1', address: 'https://127.0.0.1:9', client: { host: '127.0.0.1', port: 9 }, provider: { host: '127.0.0.1', port: 9 }, services: {}, logBodies: false, maxBodyBytes: 1 << 20, confIntervalMs: 60_000 }));
    if (!withConf) return;
    // Expired long ago on purpose: agreements are read from the newest copy held, valid or not.
    const conf = buildGlobalConfiguration(
      {
        instance: 'UK',
        serial: 1,
        caCertificate: 'test',
        members: [],
        subsystems: [],
        gateways: [],
        agreements: [agreement('blue-badge', 'UK/GOV/DWP/disability', true), agreement('public-task', 'UK/GOV/DWP/disability', false), agreement('elsewhere', 'UK/GOV/GRO/population', true)],
      },
      { now: new Date('2026-01-01T00:00:00Z') },
    );
    const jws = await signGlobalConfiguration(conf, CENTRAL.privateKey);
    await store.db.insertInto('gateway_conf').values({ gateway_id: 'UK/GOV/DWP/gw1', serial: 1, jws, issued_at: conf.issuedAt, expires_at: conf.expiresAt, fetched_at: conf.issuedAt }).execute();
  } finally {
    await store.close();
  }
}

before(async () => {
  for (const p of [gw, bare]) mkdirSync(p);
  await makeGatewayDir(gw, true);
  await makeGatewayDir(bare, false);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('give, list, withdraw, receipt on a gateway directory', async () => {
  let r = cli('give', '--dir', 'dwp', '--person', ALICE, '--agreement', 'blue-badge', '--items', 'person.disabilityStatus', '--for', '90d', '--json');
  assert.equal(r.status, 0, r.stderr);
  const given = JSON.parse(r.stdout) as Consent;
  assert.equal(given.state, 'given');
  assert.deepEqual(given.items, ['person.disabilityStatus']);
  assert.equal(given.history[0]!.actor, 'operator');
  const days = (Date.parse(given.expiresAt!) - Date.parse(given.givenAt!)) / 86_400_000;
  assert.ok(Math.abs(days - 90) < 0.01, `90 days, got ${days}`);

  r = cli('give', '--dir', 'dwp', '--person', ALICE, '--agreement', 'blue-badge', '--expires', '2099-12-31');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^consent given: [0-9a-f-]{36} {2}given \(dpv:ConsentGiven\), in force\n/);
  assert.match(r.stdout, /expires 2100-01-01T00:00:00\.000Z/, 'a date means to the end of that day');

  r = cli('list', '--dir', 'dwp', '--person', ALICE);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((r.stdout.match(/in force/g) ?? []).length, 2);
  assert.match(r.stdout, /1\. \S+ \(new\) -> given by operator/);

  r = cli('withdraw', given.id, '--dir', 'dwp', '--json');
  assert.equal(r.status, 0, r.stderr);
  const withdrawn = JSON.parse(r.stdout) as Consent;
  assert.equal(withdrawn.state, 'withdrawn');
  assert.deepEqual(withdrawn.history.map((h) => h.to), ['given', 'withdrawn']);

  r = cli('receipt', given.id, '--dir', 'dwp', '--out', 'receipt.json');
  assert.equal(r.status, 0, r.stderr);
  const signed = JSON.parse(readFileSync(join(dir, 'receipt.json'), 'utf8')) as SignedConsentReceipt;
  assert.equal(signed.receipt.issuer, 'UK/GOV/DWP/gw1');
  assert.equal(signed.receipt.state, 'withdrawn');
  const v = await verifyReceipt(signed.jws, GATEWAY.publicKey);
  assert.ok(v.ok, 'signed with the gateway\'s own key');

  r = cli('receipt', given.id, '--dir', 'dwp');
  assert.equal(r.status, 0, r.stderr);
  assert.ok((await verifyReceipt((JSON.parse(r.stdout) as SignedConsentReceipt).jws, GATEWAY.publicKey)).ok);

  // What the CLI wrote is what the store holds.
  const store = await openGatewayStore(gw);
  try {
    const rows = await store.db.selectFrom('consent_record').select(['id', 'state']).where('person', '=', ALICE).execute();
    assert.equal(rows.length, 2);
    assert.equal(rows.find((x) => x.id === given.id)?.state, 'withdrawn');
  } finally {
    await store.close();
  }
});

// Every bad input is covered in-process by consent/consent.test.ts; these check that each kind
// reaches the command line as a typed error and exit code (each spawn costs a CLI start-up).
test('bad input exits 2 with a typed error', () => {
  const cases: [string[], RegExp][] = [
    [['give', '--dir', 'dwp', '--person', ALICE, '--agreement', 'blue-badge'], /invalid_expiry/],
    [['give', '--dir', 'dwp', '--person', ALICE, '--agreement', 'blue-badge', '--for', '90 days'], /invalid_expiry/],
    [['give', '--dir', 'dwp', '--person', ALICE, '--agreement', 'blue-badge', '--expires', '2099-02-30'], /invalid_date/],
    [['give', '--dir', 'dwp', '--person', `${ALICE.slice(0, -1)}${ALICE.endsWith('0') ? '1' : '0'}`, '--agreement', 'blue-badge', '--for', '1d'], /invalid_identifier/],
    [['give', '--dir', 'dwp', '--person', ALICE, '--agreement', 'public-task', '--for', '1d'], /consent_not_applicable/],
    // Another member's agreement: not this gateway's to record consent for.
    [['give', '--dir', 'dwp', '--person', ALICE, '--agreement', 'elsewhere', '--for', '1d'], /unknown_agreement/],
    [['withdraw', '00000000-0000-0000-0000-000000000000', '--dir', 'dwp'], /consent_not_found/],
    [['list', '--dir', 'nowhere', '--person', ALICE], /invalid_file/],
  ];
  for (const [args, pattern] of cases) {
    const r = cli(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(' '));
  }
  // A gateway that has never fetched a configuration cannot know any agreement.
  const r = cli('list', '--dir', 'bare', '--person', ALICE);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /global_conf_expired.*holds no global configuration/);
});
