/**
 * The README's "same parts as separate processes" walk-through, run for real: every step is the
 * `onceonly` command in a child process, on free loopback ports, and the final request goes from
 * one organisation's gateway to another's and on to the register.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../demo/ports.ts';

const BIN = fileURLToPath(new URL('../../bin/onceonly.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'onceonly-cli-'));
const env = { ...process.env, DATABASE_URL: '' };
const children: ChildProcess[] = [];

after(async () => {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : Promise.resolve())));
  rmSync(dir, { recursive: true, force: true });
});

/** Runs one command to completion; fails the test with its output when it exits non-zero. */
function run(...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(r.status, 0, `onceonly ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Starts a long-running command and waits for its first line on stdout. */
function serve(...args: string[]): Promise<string> {
  const c = spawn(process.execPath, [BIN, ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  let err = '';
  c.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    c.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    c.once('exit', (code) => reject(new Error(`onceonly ${args.join(' ')} exited with ${code}: ${err}`)));
  });
}

test('central, registry and two gateways as separate processes, set up with the CLI alone', async () => {
  const [central, registry, groClient, groProvider, leedsClient, leedsProvider] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  const init = run('central', 'init', '--dir', 'c', '--instance', 'UK', '--url', `http://127.0.0.1:${central}`);
  const token = /oo1\.[A-Za-z0-9._-]+/.exec(init)?.[0];
  assert.ok(token, 'central init prints the management token');
  await serve('central', 'serve', '--dir', 'c', '--port', String(central));
  run('central', 'member', 'add', 'UK/GOV/GRO', '--name', 'General Register Office', '--dir', 'c');
  run('central', 'subsystem', 'add', 'UK/GOV/GRO/population', '--dir', 'c');
  run('central', 'member', 'add', 'UK/MUN/LEEDS', '--name', 'Leeds City Council', '--dir', 'c');
  run('central', 'subsystem', 'add', 'UK/MUN/LEEDS/parking', '--dir', 'c');
  const scoped = (member: string): string => /oo1\.[A-Za-z0-9._-]+/.exec(run('central', 'token', 'create', '--label', `onboarding ${member}`, '--register-gateway-for', member, '--dir', 'c'))![0];
  const groToken = scoped('UK/GOV/GRO');
  const leedsToken = scoped('UK/MUN/LEEDS');
  run('registry', 'generate', '--people', '200', '--data', 'reg');
  await serve('registry', 'serve', 'population', '--port', String(registry), '--data', 'reg', '--token', 'registry-secret');
  // A registration token registers one gateway of its own member, once.
  const wrong = spawnSync(process.execPath, [BIN, 'gateway', 'init', '--dir', 'x', '--anchor', 'c/anchor.json', '--id', 'UK/MUN/LEEDS/gw9', '--token', groToken, '--client-port', '1', '--provider-port', '2'], { cwd: dir, env, encoding: 'utf8' });
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, /forbidden/);
  const pending = run('gateway', 'init', '--dir', 'gro', '--anchor', 'c/anchor.json', '--id', 'UK/GOV/GRO/gw1', '--token', groToken, '--client-port', String(groClient), '--provider-port', String(groProvider), '--subsystem', 'UK/GOV/GRO/population');
  assert.match(pending, /registration pending/, 'a gateway registered with a member\'s token waits for the operator');
  assert.match(run('central', 'gateway', 'list', '--dir', 'c'), /UK\/GOV\/GRO\/gw1 {2}pending .* serves: UK\/GOV\/GRO\/population \(pending\)/);
  run('central', 'gateway', 'approve', 'UK/GOV/GRO/gw1', '--dir', 'c');
  const again = spawnSync(process.execPath, [BIN, 'gateway', 'init', '--dir', 'gro2', '--anchor', 'c/anchor.json', '--id', 'UK/GOV/GRO/gw2', '--token', groToken, '--client-port', '1', '--provider-port', '2'], { cwd: dir, env, encoding: 'utf8' });
  assert.notEqual(again.status, 0, 'a registration token is used up');
  const member = await fetch(`http://127.0.0.1:${central}/manage/members`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${leedsToken}` }, body: JSON.stringify({ id: 'UK/GOV/EVIL', name: 'x' }) });
  assert.equal(member.status, 403, 'a registration token cannot manage the registry');
  run('gateway', 'service', 'add', 'UK/GOV/GRO/population', 'people', `http://127.0.0.1:${registry}/people`, '--dir', 'gro', '--header', 'authorization: Bearer registry-secret');
  await serve('gateway', 'serve', '--dir', 'gro');
  run('gateway', 'init', '--dir', 'leeds', '--anchor', 'c/anchor.json', '--id', 'UK/MUN/LEEDS/gw1', '--token', leedsToken, '--client-port', String(leedsClient), '--provider-port', String(leedsProvider));
  // Asked for nothing at registration: the operator assigns what it serves, then approves it.
  run('central', 'gateway', 'assign', 'UK/MUN/LEEDS/gw1', 'UK/MUN/LEEDS/parking', '--dir', 'c');
  run('central', 'gateway', 'approve', 'UK/MUN/LEEDS/gw1', '--dir', 'c');
  assert.match(run('central', 'gateway', 'list', '--dir', 'c'), /UK\/MUN\/LEEDS\/gw1 {2}active .* serves: UK\/MUN\/LEEDS\/parking\n/);
  await serve('gateway', 'serve', '--dir', 'leeds');

  const person = 'P-000000001-X';
  const res = await fetch(`http://127.0.0.1:${leedsClient}/r1/UK/GOV/GRO/population/people/${person}?items=person.givenName,person.address`, {
    headers: { 'x-road-client': 'UK/MUN/LEEDS/parking', 'x-onceonly-purpose': 'resident-parking-permit' },
  });
  const body = (await res.json()) as { items: Record<string, { value: unknown; source: string }> };
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.items['person.givenName']!.source, 'UK/GOV/GRO/population');
  assert.ok(res.headers.get('x-road-request-hash'));
  // The register itself refuses anyone without its gateway's credential.
  assert.equal((await fetch(`http://127.0.0.1:${registry}/people/${person}?items=person.givenName`)).status, 401);

  // Suspending Leeds through the CLI takes effect once the gateways hold the new configuration.
  run('central', 'member', 'suspend', 'UK/MUN/LEEDS', '--dir', 'c');
  assert.match(run('central', 'audit', '--verify', '--dir', 'c'), /verified: 13 entries/);
  assert.match(run('central', 'audit', '--dir', 'c'), /suspend/);
  assert.match(run('log', 'verify', '--dir', 'gro'), /OK/);
  // Bad input to the CLI is a typed error and exit code 2, not a crash.
  const bad = spawnSync(process.execPath, [BIN, 'central', 'member', 'add', 'UK/GOV/../x', '--name', 'x', '--dir', 'c'], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /invalid_identifier/);
});
