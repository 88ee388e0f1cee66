/**
 * Information-system authentication on the client side (issue 10, hole 4): the rules for each
 * mode, the start-up checks of the settings against the listener, and TLS with a registered client
 * certificate over a real gateway.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { expectError } from '../../test/support/errors.ts';
import { IDS, startExchange, type Exchange } from '../../test/support/exchange.ts';
import { createSelfSignedServerCertificate } from '../central/pki.ts';
import { authenticateClient, checkClientAuthSettings, isLoopback, type ClientAuth } from './isauth.ts';
import { readSettings, setClientAuth, writeSettings } from './node.ts';

const C = 'UK/MUN/LEEDS/parking';
const token = 'a-credential-of-the-parking-system-0123456789';
const digest = createHash('sha256').update(token).digest('hex');
const tlsWith = (fingerprint256: string | undefined): TLSSocket => ({ getPeerCertificate: () => (fingerprint256 ? { fingerprint256 } : {}) }) as unknown as TLSSocket;

test('the modes: none on loopback only; bearer by credential digest; tls by certificate fingerprint', () => {
  assert.equal(isLoopback('127.0.0.1') && isLoopback('::1') && isLoopback('localhost') && !isLoopback('0.0.0.0') && !isLoopback('10.0.0.1'), true);
  // No entry: none on loopback, refused elsewhere (the default for a reachable listener is authenticated).
  assert.equal(authenticateClient(C, {}, true, { tls: undefined, authorization: undefined }), false);
  expectError(() => authenticateClient(C, {}, false, { tls: tlsWith('AA'), authorization: undefined }), 'client_not_authenticated', 'headers.x-road-client');
  expectError(() => authenticateClient(C, { [C]: { auth: 'none' } }, false, { tls: tlsWith('AA'), authorization: undefined }), 'client_not_authenticated');
  const bearer: Record<string, ClientAuth> = { [C]: { auth: 'bearer', tokens: [digest] } };
  assert.equal(authenticateClient(C, bearer, true, { tls: undefined, authorization: `Bearer ${token}` }), true, 'consumed: not passed on');
  for (const authorization of [undefined, 'Bearer wrong-credential-0123456789', `Basic ${token}`, `Bearer ${token} x`, 'Bearer short']) {
    expectError(() => authenticateClient(C, bearer, true, { tls: undefined, authorization }), 'client_not_authenticated', undefined, String(authorization));
  }
  expectError(() => authenticateClient(C, bearer, false, { tls: undefined, authorization: `Bearer ${token}` }), 'client_not_authenticated', undefined, 'a bearer over plain HTTP off loopback');
  // Another subsystem's credential is not this one's.
  expectError(() => authenticateClient('UK/MUN/LEEDS/other', { ...bearer, 'UK/MUN/LEEDS/other': { auth: 'bearer', tokens: ['0'.repeat(64)] } }, true, { tls: undefined, authorization: `Bearer ${token}` }), 'client_not_authenticated');
  const fp = 'ab'.repeat(32);
  const tls: Record<string, ClientAuth> = { [C]: { auth: 'tls', certificates: [fp] } };
  assert.equal(authenticateClient(C, tls, false, { tls: tlsWith(fp.toUpperCase().match(/../g)!.join(':')), authorization: undefined }), false);
  expectError(() => authenticateClient(C, tls, false, { tls: tlsWith('CD:'.repeat(31) + 'CD'), authorization: undefined }), 'client_not_authenticated');
  expectError(() => authenticateClient(C, tls, false, { tls: tlsWith(undefined), authorization: undefined }), 'client_not_authenticated');
  expectError(() => authenticateClient(C, tls, true, { tls: undefined, authorization: undefined }), 'client_not_authenticated', undefined, 'tls over plain HTTP');
  // A key such as __proto__ is no setting.
  expectError(() => authenticateClient('__proto__', {}, false, { tls: tlsWith(fp), authorization: undefined }), 'client_not_authenticated');
});

test('start-up checks: none and plain-HTTP bearer only on loopback, tls only with a TLS listener; warnings for what cannot work', () => {
  expectError(() => checkClientAuthSettings({ [C]: { auth: 'none' } }, false, true), 'invalid_file', `clients.${C}.auth`);
  expectError(() => checkClientAuthSettings({ [C]: { auth: 'bearer', tokens: [digest] } }, false, false), 'invalid_file');
  expectError(() => checkClientAuthSettings({ [C]: { auth: 'tls', certificates: ['ab'.repeat(32)] } }, true, false), 'invalid_file');
  assert.match(checkClientAuthSettings({ [C]: { auth: 'none' } }, true, false).join(), /no information-system authentication/);
  assert.match(checkClientAuthSettings({ [C]: { auth: 'bearer' } }, true, false).join(), /every request will be refused/);
  assert.deepEqual(checkClientAuthSettings({ [C]: { auth: 'bearer', tokens: [digest] } }, false, true), []);
});

describe('TLS with a registered client certificate, over a real gateway', () => {
  let ex: Exchange;
  let system: { key: string; cert: string };
  let stranger: { key: string; cert: string };
  before(async () => {
    ex = await startExchange();
    const made = await createSelfSignedServerCertificate('UK/MUN/LEEDS/parking-system', []);
    system = { key: made.privateKeyPem, cert: made.certificatePem };
    const other = await createSelfSignedServerCertificate('UK/MUN/LEEDS/stranger', []);
    stranger = { key: other.privateKeyPem, cert: other.certificatePem };
    const s = readSettings(ex.dirs.leeds);
    writeSettings(ex.dirs.leeds, { ...s, client: { ...s.client, tls: true } });
    const r = setClientAuth(ex.dirs.leeds, IDS.parking, 'tls', { certificatePem: system.cert });
    assert.match(r.fingerprint ?? '', /^[0-9a-f]{64}$/);
    expectError(() => setClientAuth(ex.dirs.leeds, 'UK/GOV/GRO/population', 'bearer'), 'invalid_request', 'client');
    expectError(() => setClientAuth(ex.dirs.leeds, IDS.parking, 'tls', { certificatePem: 'not a certificate' }), 'invalid_file', 'cert');
    await ex.restartGateway('leeds');
  });
  after(async () => {
    await ex?.stop();
  });

  const call = async (who: { key: string; cert: string } | undefined): Promise<{ status: number; xroad: string | undefined; body: string }> => {
    const ca = readFileSync(join(ex.dirs.leeds, 'client-tls.cert.pem'), 'utf8');
    const agent = new Agent({ connect: { ca, ...(who ?? {}) } });
    try {
      const res = await request(`${ex.leeds.clientUrl}/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, { dispatcher: agent, headers: { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'resident-parking-permit' } });
      const xroad = res.headers['x-road-error'];
      return { status: res.statusCode, xroad: typeof xroad === 'string' ? xroad : undefined, body: await res.body.text() };
    } finally {
      await agent.close();
    }
  };

  test('the registered certificate speaks as the subsystem; no certificate, or another, does not', async () => {
    assert.match(ex.leeds.clientUrl, /^https:/);
    const ok = await call(system);
    assert.equal(ok.status, 200, ok.body);
    for (const who of [undefined, stranger]) {
      const r = await call(who);
      assert.equal(r.xroad, 'Server.ClientProxy.SslAuthenticationFailed', r.body);
      assert.ok(!r.body.includes('Alice'));
    }
  });

  test('a settings file that asks for what the listener cannot do refuses to start', async () => {
    const file = join(ex.dirs.leeds, 'gateway.json');
    const good = readFileSync(file, 'utf8');
    const s = JSON.parse(good) as { client: { host: string; tls?: boolean }; clients: Record<string, unknown> };
    try {
      writeFileSync(file, JSON.stringify({ ...s, clients: { [IDS.parking]: { auth: 'tls', certificates: ['ab'.repeat(32)] } }, client: { ...s.client, tls: false } }));
      await assert.rejects(ex.restartGateway('leeds'), (e: Error & { type?: string }) => e.type === 'invalid_file');
      writeFileSync(file, JSON.stringify({ ...s, clients: { [IDS.parking]: { auth: 'tls', certificate: 'misspelt' } } }));
      await assert.rejects(ex.restartGateway('leeds'), (e: Error & { type?: string }) => e.type === 'invalid_file' && /clients/.test(e.message));
    } finally {
      writeFileSync(file, good);
      await ex.restartGateway('leeds');
    }
  });
});
