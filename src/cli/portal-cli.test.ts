/**
 * `onceonly portal serve` as its own process (issue 13), pointed at the running demo's identity
 * provider and the citizen portal's gateway: it serves its pages and starts a sign-in at the
 * provider with its own redirect URI (which the provider, not having registered it, refuses);
 * and `portal serve` / `portal code` refuse bad options with exit 2 and the option named.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { startDemo, type RunningDemo } from '../demo/demo.ts';
import { CLIENT_ID } from '../demo/portal.ts';
import { freePort } from '../demo/ports.ts';
import { populate } from '../registry/populate.ts';
import { runCli } from '../../test/support/cli.ts';

const BIN = fileURLToPath(new URL('../../bin/onceonly.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'onceonly-portal-cli-'));
let demo: RunningDemo;
let secretFile = '';

before(async () => {
  demo = await startDemo({ dataDir: dir, basePort: 0, people: 300, generate: (store, people) => populate(store, { people, seed: 1 }) });
  secretFile = join(dir, 'client-secret');
  writeFileSync(secretFile, (JSON.parse(readFileSync(join(dir, 'portal', 'demo-portal.json'), 'utf8')) as { clientSecret: string }).clientSecret, { mode: 0o600 });
});
after(async () => {
  await demo?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const base = (): string[] => ['portal', 'serve', '--gateway-dir', join(dir, 'gateways', 'gds'), '--issuer', demo.portal.issuer, '--client-id', CLIENT_ID, '--client-secret-file', secretFile, '--identity-issuer', `${demo.portal.issuer}/identity`, '--identity-jwks', `${demo.portal.issuer}/identity/jwks.json`];

test('portal serve: pages, and a sign-in started at the provider with its own redirect URI', async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, ...base(), '--allow-http-issuer', '--port', String(port), '--data', join(dir, 'portal-cli')], { env: { ...process.env, DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`portal serve did not start: ${err}`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('portal listening on')) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`portal serve exited ${code}: ${err}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    const home = await request(`${url}/`);
    assert.equal(home.statusCode, 200);
    assert.match(await home.body.text(), /Start now/);
    const start = await request(`${url}/sign-in`);
    await start.body.text();
    assert.equal(start.statusCode, 303);
    const auth = new URL(String(start.headers['location']));
    assert.equal(auth.origin, demo.portal.issuer);
    assert.equal(auth.searchParams.get('client_id'), CLIENT_ID);
    assert.equal(auth.searchParams.get('redirect_uri'), `${url}/auth/callback`);
    // The provider registered the demo portal's redirect URI only: this one gets no code.
    const refused = await request(auth.href);
    assert.equal(refused.statusCode, 400);
    assert.match(await refused.body.text(), /redirect_uri/);
  } finally {
    child.kill('SIGTERM');
  }
});

test('portal serve and portal code refuse bad options, naming them', async () => {
  const cases: [string[], RegExp][] = [
    [[...base(), '--port', '1'].map((a) => (a === demo.portal.issuer ? 'http://example.com' : a)), /--issuer[\s\S]*https/],
    [[...base(), '--allow-http-issuer'].map((a) => (a === demo.portal.issuer ? 'http://example.com' : a)), /loopback only/],
    [[...base(), '--allow-http-issuer'].map((a) => (a === secretFile ? join(dir, 'no-such-file') : a)), /--client-secret-file/],
    [[...base(), '--allow-http-issuer', '--client', 'not an id'], /--client/],
    [['portal', 'code', '--data', dir, '--account', 'nobody'], /--account[\s\S]*person1/],
  ];
  for (const [args, why] of cases) {
    const r = await runCli(args, dir);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, why, args.join(' '));
  }
  const code = await runCli(['portal', 'code', '--data', dir, '--account', 'person1'], dir);
  assert.equal(code.status, 0);
  assert.match(code.stdout, /^\d{6}\n$/);
});
