/**
 * The demo end to end, as a newcomer runs it: the real CLI in a child process, its one JSON line,
 * the example requests it prints (through the consumers' gateways), registries that answer only
 * their gateways, Tell Us Once (a move reported once reaches the council's and the benefits
 * agency's systems), a clean stop on SIGTERM, and a restart that keeps the data.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import SQLite from 'better-sqlite3';

const BIN = fileURLToPath(new URL('../../bin/onceonly.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'onceonly-demo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface DemoLine {
  endpoints: { name: string; url: string; id?: string }[];
  examples: { method: string; url: string; headers: Record<string, string>; body?: unknown; description: string }[];
  tellUsOnce: { receivers: { name: string; subsystem: string; url: string; subscription: string }[] };
  portal: { url: string; issuer: string; accounts: { username: string; password: string; totpSecret: string }[] };
}

/** Starts the demo, waits for its JSON line, and returns it with a function that stops it. */
function startDemo(): Promise<{ line: DemoLine; stop: () => Promise<number | null>; stderr: () => string }> {
  // DATABASE_URL is cleared: the demo must work on the embedded default.
  const env = { ...process.env, DATABASE_URL: '' };
  const child = spawn(process.execPath, [BIN, 'demo', '--json', '--port', '0', '--people', '300', '--data', dir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not print its JSON line; stderr: ${err}`)), 120_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve({
          line: JSON.parse(out.slice(0, nl)) as DemoLine,
          stderr: () => err,
          stop: async () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`demo exited with ${code}: ${err}`)));
  });
}

interface Layout {
  ports: { registries: Record<string, number> };
}

test('the demo prints one JSON line whose example requests succeed through the gateways, stops cleanly, and keeps its data', async () => {
  const first = await startDemo();
  let person = '';
  try {
    const names = first.line.endpoints.map((e) => e.name);
    assert.deepEqual(names, ['central', 'catalogue', 'gateway-gro', 'gateway-geoplace', 'gateway-ch', 'gateway-leeds', 'gateway-dwp', 'gateway-gds', 'portal', 'identity-provider', 'receiver-leeds', 'receiver-dwp']);
    // The citizen portal answers, and the demo says who can sign in to it (synthetic test accounts).
    assert.equal(first.line.portal.accounts.length, 3);
    assert.ok(first.line.portal.accounts.every((a) => /^person\d$/.test(a.username) && a.password.length >= 12 && a.totpSecret.length >= 20));
    const start = await fetch(`${first.line.portal.url}/`);
    assert.equal(start.status, 200);
    assert.match(await start.text(), /Start now/);
    assert.deepEqual(first.line.tellUsOnce.receivers.map((r) => r.subsystem), ['UK/MUN/LEEDS/parking', 'UK/GOV/DWP/benefits']);
    assert.ok(first.line.examples.length >= 3);
    const gatewayUrls = first.line.endpoints.filter((e) => e.name.startsWith('gateway-')).map((e) => e.url);
    // Starting the demo read nobody's data: the register's gateway has released nothing yet.
    const gro = new SQLite(join(dir, 'gateways', 'gro', 'gateway.sqlite'), { readonly: true });
    try {
      assert.equal((gro.prepare('SELECT count(*) AS n FROM access_record').get() as { n: number }).n, 0, 'no release at start-up');
    } finally {
      gro.close();
    }
    let throughGateways = 0;
    let moved = false;
    for (const ex of first.line.examples) {
      const res = await fetch(ex.url, { method: ex.method, headers: ex.headers, ...(ex.body !== undefined ? { body: JSON.stringify(ex.body) } : {}) });
      assert.ok(ex.method === 'GET' ? res.status === 200 : res.status === 200 || res.status === 201, `${ex.method} ${ex.url}: ${res.status} ${await res.clone().text()}`);
      if (ex.method === 'POST' && ex.description.startsWith('Tell Us Once')) moved = true;
      const body = (await res.json()) as { items?: Record<string, { value: unknown; source: string }> | string[] };
      // A read answers envelopes by item; a recorded change names the items it changed.
      if (body.items && !Array.isArray(body.items)) {
        for (const env of Object.values(body.items)) assert.ok('source' in env && 'value' in env);
        assert.ok(gatewayUrls.some((u) => ex.url.startsWith(u)), 'registry data comes through a gateway');
        assert.ok(res.headers.get('x-road-request-hash'));
        throughGateways++;
      }
    }
    assert.ok(throughGateways >= 3);
    // The move reported once reached both subscribers' systems (the demo prints what each was told).
    assert.ok(moved, 'the examples report a move');
    const deadline = Date.now() + 20_000;
    const told = (): boolean => ['parking', 'benefits'].every((w) => new RegExp(`Tell Us Once: the [^\\n]*${w}[^\\n]* was told of a move change`, 'i').test(first.stderr()));
    while (!told() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(told(), `both subscribers told of the move; the demo said: ${first.stderr().split('\n').filter((l) => l.includes('Tell Us Once')).join(' | ')}`);
    // The registries answer only their gateways.
    const layout = JSON.parse(readFileSync(join(dir, 'demo.json'), 'utf8')) as Layout;
    const popPort = layout.ports.registries['population']!;
    person = new URL(first.line.examples[0]!.url).pathname.split('/').pop()!;
    const direct = await fetch(`http://127.0.0.1:${popPort}/people/${person}?items=person.givenName`);
    assert.equal(direct.status, 401);
    // A change recorded at the register (by its owner, with its credential) must survive a restart.
    const token = readFileSync(join(dir, 'registry-population.token'), 'utf8');
    const change = await fetch(`http://127.0.0.1:${popPort}/people/${person}/changes`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ type: 'name', givenName: 'Restartina', effectiveDate: '2026-01-02' }) });
    assert.equal(change.status, 201, await change.clone().text());
  } finally {
    assert.equal(await first.stop(), 0, 'SIGTERM stops the demo with exit code 0');
  }
  const second = await startDemo();
  try {
    // The data was reused, not generated again: the change made before the restart is there.
    const ex = second.line.examples[0]!;
    const res = await fetch(ex.url, { headers: ex.headers });
    const body = (await res.json()) as { items: Record<string, { value: unknown }> };
    assert.equal(body.items['person.givenName']!.value, 'Restartina');
    assert.ok(ex.url.includes(person));
  } finally {
    assert.equal(await second.stop(), 0);
  }
});
