/**
 * The exchange end to end over real mutual TLS on loopback: a central, a provider gateway in
 * front of the population register, a consumer gateway. One test per way a request can be
 * allowed or refused, each refusal with its own type.
 */
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import SQLite from 'better-sqlite3';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { Agent, request } from 'undici';
import { IDS, startExchange, type Exchange } from '../../test/support/exchange.ts';
import { loadPrivateKey } from '../core/crypto.ts';
import { BatchSigner } from '../core/batchsign.ts';
import { bodyDigest, H, packHeaders, signRequest, type SignedRequestFields } from './protocol.ts';
import { verifyMessageLog } from './messagelog-verify.ts';
import { signingKeysFromStoredConfs } from '../cli/gateway.ts';
import { readAnchor, startGateway } from './node.ts';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { PG_SKIP, PG_URL } from '../../test/support/stores.ts';
import { freePort } from '../demo/ports.ts';

x509.cryptoProvider.set(webcrypto);
const BIN = fileURLToPath(new URL('../../bin/onceonly.js', import.meta.url));

const PURPOSE = { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'resident-parking-permit' };
let ex: Exchange;

function read(person: string, items = 'person.givenName,person.address'): string {
  return `/r1/${IDS.population}/people/${person}?items=${items}`;
}

/** An X-Road error answer: X-Road's type (body and header agree), its error id, and onceonly's reason. */
function errorOf(r: { status: number; headers: Record<string, string>; body: string }): { type: string; xroad: string; message: string; detail: Record<string, unknown>; header: string | undefined } {
  const b = JSON.parse(r.body) as { type: string; message: string; detail: string; onceonly: { type: string; detail: Record<string, unknown> } };
  assert.equal(typeof b.message, 'string');
  assert.match(b.detail, /^[0-9a-f-]{36}$/, 'X-Road\'s detail is the error id');
  assert.equal(r.headers['x-road-error'], b.type);
  assert.equal(r.status, b.type.startsWith('Server.') ? 500 : 400, 'X-Road statuses: 500 for Server.*, 400 for Client.*');
  return { type: b.onceonly.type, xroad: b.type, message: b.message, detail: b.onceonly.detail, header: r.headers['x-road-error'] };
}

/** Sends a hand-made oo1 request to the provider gateway, as a (possibly malicious) peer would. */
async function rawProviderCall(opts: { fields?: Partial<SignedRequestFields>; omitSignature?: boolean; tamper?: (h: Record<string, string>) => void; cert?: { key: string; cert: string }; sameId?: string; providerUrl?: string }): Promise<{ status: number; body: { type: string; xroad: string }; headers: Record<string, unknown> }> {
  const leedsDir = ex.dirs.leeds;
  const key = loadPrivateKey(readFileSync(join(leedsDir, 'signing.key.pem'), 'utf8'));
  const target = `/oo1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`;
  const fields: SignedRequestFields = {
    method: 'GET',
    target,
    client: IDS.parking,
    id: 'the-same-x-road-id-every-time',
    requestId: opts.sameId ?? randomUUID(),
    purpose: 'resident-parking-permit',
    agreement: '',
    timestamp: String(ex.now().getTime()),
    sender: IDS.leedsGw,
    audience: IDS.groGw,
    headers: packHeaders([]),
    bodyDigest: bodyDigest(''),
    ...opts.fields,
  };
  const { signature, batch } = await signRequest(new BatchSigner(key, IDS.leedsGw), fields, Buffer.alloc(0));
  const headers: Record<string, string> = {
    [H.client]: fields.client, [H.id]: fields.id, [H.requestId]: fields.requestId, [H.purpose]: fields.purpose, [H.agreement]: fields.agreement,
    [H.timestamp]: fields.timestamp, [H.sender]: fields.sender, [H.audience]: fields.audience, [H.headers]: fields.headers, [H.bodyDigest]: fields.bodyDigest,
  };
  if (!opts.omitSignature) {
    headers[H.signature] = signature;
    headers[H.signatureBatch] = batch;
  }
  opts.tamper?.(headers);
  const tls = opts.cert ?? { key: readFileSync(join(leedsDir, 'tls.key.pem'), 'utf8'), cert: readFileSync(join(leedsDir, 'tls.cert.pem'), 'utf8') };
  const agent = new Agent({ connect: { ...tls, ca: ex.central.caCertificate } });
  try {
    const res = await request(`${opts.providerUrl ?? ex.gro.providerUrl}${fields.target}`, { headers, dispatcher: agent });
    const b = (await res.body.json()) as { type: string; onceonly?: { type: string } };
    return { status: res.statusCode, body: { type: b.onceonly?.type ?? b.type, xroad: b.type }, headers: res.headers };
  } finally {
    await agent.close();
  }
}

/** A request with its target sent exactly as given. */
function rawHttp(base: string, path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const h: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h[k] = v;
        resolve({ status: res.statusCode ?? 0, headers: h, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the exchange', () => {
  before(async () => {
    ex = await startExchange({ confIntervalMs: 200 });
  });
  after(async () => {
    await ex?.stop();
  });

  test('an allowed request passes, enveloped, with X-Road response headers', async () => {
    const r = await ex.call(read(ex.people.alice), { ...PURPOSE, 'x-road-id': 'req-1', 'x-road-userid': 'EE:officer-7' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['x-road-id'], 'req-1');
    // PR-REST §4.3: base64 of a SHA-512.
    assert.match(r.headers['x-road-request-hash'] ?? '', /^[A-Za-z0-9+/]{86}==$/);
    assert.match(r.headers['x-road-request-id'] ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(r.headers['x-road-client'], IDS.parking);
    assert.equal(r.headers['x-road-service'], `${IDS.population}/people`);
    const body = JSON.parse(r.body) as { items: Record<string, { value: unknown; source: string }> };
    assert.deepEqual(Object.keys(body.items).sort(), ['person.address', 'person.givenName']);
    assert.equal(body.items['person.givenName']!.value, 'Alice');
    assert.equal(r.headers['x-road-error'], undefined);
  });

  test('the registry itself refuses callers that are not its gateway', async () => {
    const settings = JSON.parse(readFileSync(join(ex.dirs.gro, 'gateway.json'), 'utf8')) as { services: Record<string, Record<string, { url: string }>> };
    const registryUrl = settings.services[IDS.population]!['people']!.url;
    const r = await fetch(`${registryUrl}/${ex.people.alice}?items=person.givenName`);
    assert.equal(r.status, 401);
    assert.equal(((await r.json()) as { type: string }).type, 'unauthorized');
  });

  test('no agreement for the purpose: no_agreement', async () => {
    const r = await ex.call(read(ex.people.alice), { ...PURPOSE, 'x-onceonly-purpose': 'curiosity' });
    const e = errorOf(r);
    assert.equal(e.type, 'no_agreement');
    assert.equal(e.header, 'Server.ServerProxy.AccessDenied');
  });

  test('an item the agreement does not cover is not released: the request fails with item_not_covered', async () => {
    const r = await ex.call(read(ex.people.alice, 'person.givenName,person.birthDate'), PURPOSE);
    const e = errorOf(r);
    assert.equal(e.type, 'item_not_covered');
    assert.equal(e.xroad, 'Server.ServerProxy.AccessDenied');
    assert.deepEqual(e.detail['notCovered'], ['person.birthDate']);
    assert.ok(!r.body.includes('1990-04-12'), 'the date of birth never leaves');
  });

  test('an expired agreement: agreement_not_in_force', async () => {
    const r = await ex.call(read(ex.people.alice, 'person.givenName'), { ...PURPOSE, 'x-onceonly-purpose': 'parking-survey-2019' });
    assert.equal(errorOf(r).type, 'agreement_not_in_force');
  });

  test('an unknown client subsystem: unknown_client', async () => {
    const r = await ex.call(read(ex.people.alice), { ...PURPOSE, 'x-road-client': 'UK/MUN/LEEDS/nosuchsystem' });
    assert.equal(errorOf(r).type, 'unknown_client');
    assert.equal(errorOf(r).xroad, 'Server.ClientProxy.UnknownMember');
    const other = await ex.call(read(ex.people.alice), { ...PURPOSE, 'x-road-client': IDS.benefits });
    assert.equal(errorOf(other).type, 'unknown_client', 'a gateway serves only its own member\'s subsystems');
    const none = await ex.call(read(ex.people.alice), { 'x-onceonly-purpose': 'resident-parking-permit' });
    assert.equal(errorOf(none).xroad, 'Client.BadRequest');
    assert.equal(errorOf(none).detail['field'], 'headers.x-road-client');
  });

  test('malformed identifiers and service paths each get a typed refusal', async () => {
    const cases: [string, string][] = [
      ['/r1/UK/GOV/GRO', 'invalid_identifier'],
      [`/r1/UK/GOV/GRO/population/people/..%2F..%2Fetc?items=person.givenName`, 'invalid_service_path'],
      [`/r1/UK/GOV/GRO/population/people/%2e%2e/x`, 'invalid_service_path'],
      [`/r1/UK/GOV/GRO/population/people/../x`, 'invalid_service_path'],
      [`/r1/UK/GOV/GRO/population/people/a%5Cb`, 'invalid_service_path'],
      [`/r1/UK/GOV/G$RO/population/people/x`, 'invalid_identifier'],
      [`/r1/UK/GOV/GRO/${'p'.repeat(256)}/people/x`, 'invalid_identifier'],
      [`/r1/UK/GOV/GRO/pop%FFulation/people/x`, 'invalid_identifier'],
      [`/r1/UK/GOV/GRO/population/peo%2Fple/x`, 'invalid_identifier'],
      [`/r1/UK/GOV/GRO/population/people/${'x'.repeat(5000)}`, 'invalid_service_path'],
      [`/r1/UK/GOV/GRO/population/people//x`, 'invalid_service_path'],
    ];
    for (const [path, type] of cases) {
      // node:http sends the path byte for byte; WHATWG URL parsing (fetch, undici) would resolve
      // "%2e%2e" before it ever left the client.
      const r = await rawHttp(ex.leeds.clientUrl, path, PURPOSE);
      assert.equal(r.status, 400, `${path}: ${r.status}`);
      assert.equal(errorOf(r).type, type, `${path.slice(0, 80)}: ${r.body.slice(0, 200)}`);
      assert.equal(r.headers['x-road-error'], 'Client.BadRequest');
    }
    const header = await ex.call(read(ex.people.alice), { ...PURPOSE, 'x-road-client': 'UK/MUN/../parking' });
    assert.equal(errorOf(header).type, 'invalid_identifier');
  });

  test('an oversized body: payload_too_large', async () => {
    const r = await ex.call(read(ex.people.alice), { ...PURPOSE, 'content-type': 'application/octet-stream' }, { method: 'POST', body: Buffer.alloc(5 * 1024 * 1024, 1) });
    assert.equal(errorOf(r).type, 'payload_too_large');
    assert.equal(r.headers['x-road-error'], 'Client.BadRequest');
  });

  test('a service that does not answer in time: service_timeout', async () => {
    const r = await ex.call(`/r1/${IDS.population}/slow/${ex.people.alice}?items=person.givenName`, PURPOSE);
    assert.equal(errorOf(r).type, 'service_timeout');
    assert.equal(r.headers['x-road-error'], 'Server.ServerProxy.IOError');
  });

  test('only GET reaches a registry through the exchange: method_not_allowed', async () => {
    const r = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}/changes`, { ...PURPOSE, 'content-type': 'application/json' }, { method: 'POST', body: '{"type":"death","deathDate":"2020-01-01"}' });
    assert.equal(errorOf(r).type, 'method_not_allowed');
    assert.equal(errorOf(r).xroad, 'Server.ServerProxy.AccessDenied');
  });

  test('an unsigned request: unsigned_request', async () => {
    const r = await rawProviderCall({ omitSignature: true });
    assert.equal(r.status, 500);
    assert.equal(r.body.type, 'unsigned_request');
    assert.equal(r.body.xroad, 'Server.ServerProxy.MissingSignature');
  });

  test('a tampered request: invalid_signature', async () => {
    const r = await rawProviderCall({ tamper: (h) => (h[H.purpose] = 'benefit-entitlement') });
    assert.equal(r.body.type, 'invalid_signature');
    assert.equal(r.body.xroad, 'Server.ServerProxy.SignatureVerification.InvalidSignatureValue');
    // The headers passed on to the service are signed too.
    const headers = await rawProviderCall({ tamper: (h) => (h[H.headers] = packHeaders([['x-smuggled', '1']])) });
    assert.equal(headers.body.type, 'invalid_signature');
    const items = await rawProviderCall({ fields: { target: `/oo1/${IDS.population}/people/${ex.people.alice}?items=person.givenName` }, tamper: (h) => (h[H.client] = IDS.benefits) });
    assert.equal(items.body.type, 'invalid_signature');
  });

  test('a batch signature whose proof does not lead to the signed root: invalid_signature', async () => {
    const r = await rawProviderCall({ tamper: (h) => (h[H.signatureBatch] = h[H.signatureBatch]!.replace(/^0\/1;/, '0/2;')) });
    assert.equal(r.body.type, 'invalid_signature');
    const swapped = await rawProviderCall({ tamper: (h) => (h[H.signatureBatch] = `0/1;${'A'.repeat(43)};`) });
    assert.equal(swapped.body.type, 'invalid_signature');
  });

  test('a replayed request: replayed_request; an X-Road-Id reused by a client is not a replay', async () => {
    const id = randomUUID();
    const first = await rawProviderCall({ sameId: id });
    assert.equal(first.status, 200);
    const again = await rawProviderCall({ sameId: id });
    assert.equal(again.body.type, 'replayed_request');
    assert.equal(again.body.xroad, 'Server.ServerProxy.InvalidMessage');
    // rawProviderCall sends the same X-Road-Id every time: only X-Road-Request-Id, which the client
    // gateway makes, decides. Through the client gateway, an X-Road-Id used twice is two requests.
    for (let i = 0; i < 2; i++) assert.equal((await ex.call(read(ex.people.alice), { ...PURPOSE, 'x-road-id': 'reused-id' })).status, 200);
    const bad = await rawProviderCall({ fields: { requestId: 'not-a-uuid' } });
    assert.equal(bad.body.type, 'invalid_request');
  });

  test('a request outside the time window: message_expired', async () => {
    const r = await rawProviderCall({ fields: { timestamp: String(ex.now().getTime() - 10 * 60_000) } });
    assert.equal(r.body.type, 'message_expired');
  });

  test('a request addressed to another gateway: wrong_audience', async () => {
    const r = await rawProviderCall({ fields: { audience: 'UK/GOV/DWP/gw1' } });
    assert.equal(r.body.type, 'wrong_audience');
    assert.equal(r.body.xroad, 'Server.ServerProxy.InvalidSecurityServer');
  });

  test('a certificate not issued by the central CA: untrusted_certificate', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const rogue = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: '01', name: 'CN=UK.MUN.LEEDS.gw1', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), keys, signingAlgorithm: alg });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
    const r = await rawProviderCall({ cert: { key: keyPem, cert: rogue.toString('pem') } });
    assert.equal(r.status, 500);
    assert.equal(r.body.type, 'untrusted_certificate');
    assert.equal(r.body.xroad, 'Server.ServerProxy.ServiceFailed.SslAuthenticationFailed');
  });

  test('a tampered response is detected by the client gateway: invalid_response_signature', async () => {
    ex.tamper(true);
    try {
      const r = await ex.call(read(ex.people.alice), PURPOSE);
      assert.equal(errorOf(r).type, 'invalid_response_signature');
      assert.equal(errorOf(r).xroad, 'Server.ClientProxy.SignatureVerification.InvalidSignatureValue');
      assert.ok(!r.body.includes('Alice'), 'nothing of the tampered answer is passed on');
    } finally {
      ex.tamper(false);
    }
  });

  test('a valid certificate of another member at the provider\'s address is refused by the client gateway', async () => {
    ex.impersonate(true);
    try {
      const r = await ex.call(read(ex.people.alice), PURPOSE);
      const e = errorOf(r);
      assert.equal(e.type, 'untrusted_certificate');
      assert.equal(e.xroad, 'Server.ClientProxy.SslAuthenticationFailed');
      assert.ok(!r.body.includes('127.0.0.1'), 'no internal addresses in the answer');
    } finally {
      ex.impersonate(false);
    }
    assert.equal((await ex.call(read(ex.people.alice), PURPOSE)).status, 200);
  });

  test('only a record\'s items and its existence are exchanged: history is not', async () => {
    const h = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}/history?item=person.address`, PURPOSE);
    assert.equal(errorOf(h).type, 'unknown_service');
    assert.equal(errorOf(h).xroad, 'Server.ServerProxy.UnknownService');
    const exists = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}/exists`, PURPOSE);
    assert.equal(exists.status, 200);
    assert.deepEqual(JSON.parse(exists.body), { exists: true });
  });

  test('a request may name its agreement instead of its purpose', async () => {
    const r = await ex.call(read(ex.people.alice, 'person.givenName'), { 'x-road-client': IDS.parking, 'x-onceonly-agreement': 'leeds-parking-population' });
    assert.equal(r.status, 200, r.body);
    const wrong = await ex.call(read(ex.people.alice, 'person.givenName'), { ...PURPOSE, 'x-onceonly-agreement': 'leeds-old-survey' });
    assert.equal(errorOf(wrong).type, 'no_agreement', 'an agreement of another purpose does not match');
  });

  test('an unauthenticated connection is refused before its body is read, and leaves no log record', async () => {
    const before = await ex.gro.store.db.selectFrom('message_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const agent = new Agent({ connect: { ca: ex.central.caCertificate } });
    try {
      const res = await request(`${ex.gro.providerUrl}/oo1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, { method: 'POST', body: Buffer.alloc(1024 * 1024, 1), dispatcher: agent });
      assert.equal(res.statusCode, 500);
      assert.equal(((await res.body.json()) as { onceonly: { type: string } }).onceonly.type, 'untrusted_certificate');
    } finally {
      await agent.close();
    }
    const after_ = await ex.gro.store.db.selectFrom('message_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    assert.equal(Number(after_.n), Number(before.n));
  });

  test('metaservices: listClients, listMethods, allowedMethods, getOpenAPI', async () => {
    const clients = await ex.call('/listClients', { accept: 'application/json' });
    assert.equal(clients.status, 200);
    const list = JSON.parse(clients.body) as { member: { id: { object_type: string; subsystem_code?: string } }[] };
    assert.ok(list.member.some((m) => m.id.object_type === 'SUBSYSTEM' && m.id.subsystem_code === 'population'));
    const methods = await ex.call(`/r1/${IDS.population}/listMethods`, { 'x-road-client': IDS.parking });
    assert.equal(methods.status, 200, methods.body);
    assert.deepEqual((JSON.parse(methods.body) as { service: { service_code: string }[] }).service.map((s) => s.service_code), ['people', 'slow', 'data-usage']);
    const allowed = await ex.call(`/r1/${IDS.population}/allowedMethods`, { 'x-road-client': IDS.parking });
    assert.deepEqual((JSON.parse(allowed.body) as { service: { service_code: string }[] }).service.map((s) => s.service_code), ['people', 'slow']);
    const openapi = await ex.call(`/r1/${IDS.population}/getOpenAPI?serviceCode=people`, { 'x-road-client': IDS.parking });
    assert.equal(openapi.status, 200, openapi.body);
    assert.equal((JSON.parse(openapi.body) as { openapi: string }).openapi, '3.1.0');
  });

  test('health and Prometheus metrics', async () => {
    const h = await ex.call('/health');
    assert.equal(h.status, 200);
    const m = await ex.call('/metrics');
    assert.match(m.body, /onceonly_gateway_requests_total\{side="client",status="2xx"\} \d+/);
    assert.match(m.body, /onceonly_gateway_errors_total\{side="client",type="invalid_service_path"\} \d+/);
    assert.match(m.body, /onceonly_gateway_request_duration_seconds_bucket/);
  });

  test('a suspended gateway and a suspended member are refused at the next configuration', async () => {
    await ex.central.suspendGateway(IDS.leedsGw);
    await Promise.all([ex.gro.conf.fetch(), ex.leeds.conf.fetch()]);
    const g = await ex.call(read(ex.people.alice), PURPOSE);
    assert.equal(errorOf(g).type, 'gateway_suspended');
    assert.equal(g.headers['x-road-error'], 'Server.ServerProxy.ServiceFailed.SslAuthenticationFailed');
    await ex.central.activateGateway(IDS.leedsGw);
    await ex.central.suspendMember(IDS.leeds);
    await Promise.all([ex.gro.conf.fetch(), ex.leeds.conf.fetch()]);
    const m = await ex.call(read(ex.people.alice), PURPOSE);
    assert.equal(errorOf(m).type, 'member_suspended');
    assert.equal(errorOf(m).xroad, 'Server.ClientProxy.UnknownMember');
    await ex.central.activateMember(IDS.leeds);
    await Promise.all([ex.gro.conf.fetch(), ex.leeds.conf.fetch()]);
    const ok = await ex.call(read(ex.people.alice), PURPOSE);
    assert.equal(ok.status, 200);
  });

  test('central unreachable: works until the configuration expires, then refuses, then recovers by itself', async () => {
    await ex.stopCentral();
    const during = await ex.call(read(ex.people.alice), PURPOSE);
    assert.equal(during.status, 200, 'the cached configuration is still valid');
    ex.advance(11 * 60_000);
    const expired = await ex.call(read(ex.people.alice), PURPOSE);
    assert.equal(errorOf(expired).type, 'global_conf_expired');
    assert.equal(errorOf(expired).xroad, 'Server.ClientProxy.OutdatedGlobalConf');
    assert.equal((await ex.call('/health')).status, 503);
    await ex.startCentral();
    // The gateways fetch every 200 ms in this test; wait for both to recover on their own.
    const deadline = Date.now() + 15_000;
    let last = 0;
    while (Date.now() < deadline) {
      last = (await ex.call(read(ex.people.alice), PURPOSE)).status;
      if (last === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(last, 200);
  });

  test('log verify passes on the untouched logs of both gateways', async () => {
    for (const g of [ex.gro, ex.leeds]) {
      await g.log.checkpoint();
      const keys = await signingKeysFromStoredConfs(g.store.db, g.gateway.id, readAnchor(join(ex.dirs.central, 'anchor.json')));
      const report = await verifyMessageLog(g.store.db, g.gateway.id, (s) => keys.get(s));
      assert.ok(report.ok, JSON.stringify(report.problems));
      assert.ok(report.records > 10);
    }
    const rows = await ex.gro.store.db.selectFrom('message_log').select(['side', 'status', 'error_type', 'items', 'request_body']).where('gateway_id', '=', IDS.groGw).execute();
    assert.ok(rows.every((r) => r.side === 'provider' && r.request_body === null), 'metadata and digests only by default');
    assert.ok(rows.some((r) => r.error_type === 'item_not_covered'));
  });

  test('`onceonly log verify` passes on the untouched log and names the record altered, deleted or inserted', async () => {
    await ex.gro.stop();
    const dbFile = join(ex.dirs.gro, 'gateway.sqlite');
    const verify = (): { code: number | null; out: string } => {
      const r = spawnSync(process.execPath, [BIN, 'log', 'verify', '--dir', ex.dirs.gro], { encoding: 'utf8', env: { ...process.env, DATABASE_URL: '' } });
      return { code: r.status, out: `${r.stdout}${r.stderr}` };
    };
    const clean = verify();
    assert.equal(clean.code, 0, clean.out);
    const db = new SQLite(dbFile);
    try {
      const backup = db.prepare('SELECT * FROM message_log WHERE position = 3').get() as Record<string, unknown>;
      db.prepare('UPDATE message_log SET status = 200 WHERE position = 3').run();
      const altered = verify();
      assert.equal(altered.code, 1);
      assert.match(altered.out, /altered/);
      assert.match(altered.out, /\b3\b/);
      db.prepare('UPDATE message_log SET status = ? WHERE position = 3').run(backup['status']);
      assert.equal(verify().code, 0, 'restoring the value restores the chain');

      db.prepare('DELETE FROM message_log WHERE position = 5').run();
      const removed = verify();
      assert.equal(removed.code, 1);
      assert.match(removed.out, /removed/);
      assert.match(removed.out, /\b5\b/);
      const cols = Object.keys(backup).filter((c) => c !== 'seq');
      db.prepare(`INSERT INTO message_log (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`).run(...cols.map((c) => (c === 'position' ? 5 : backup[c])));
      const inserted = verify();
      assert.equal(inserted.code, 1);
      assert.match(inserted.out, /inserted|altered|reordered/);
      assert.match(inserted.out, /\b5\b/);
    } finally {
      db.close();
    }
  });

  test('two processes of one gateway share its state in PostgreSQL: a request replayed to the other is refused', { skip: PG_SKIP }, async () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const settings = (i: number) => ({ client: { host: '127.0.0.1', port: ports[2 * i]! }, provider: { host: '127.0.0.1', port: ports[2 * i + 1]! } });
    const a = await startGateway(ex.dirs.gro, { databaseUrl: PG_URL, pgSchema: schema, settings: settings(0), now: () => ex.now() });
    const b = await startGateway(ex.dirs.gro, { databaseUrl: PG_URL, pgSchema: schema, settings: settings(1), now: () => ex.now() });
    try {
      const shared = randomUUID();
      const first = await rawProviderCall({ sameId: shared, providerUrl: a.providerUrl });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const again = await rawProviderCall({ sameId: shared, providerUrl: b.providerUrl });
      assert.equal(again.body.type, 'replayed_request');
      // Both processes extend one message log chain, which verifies.
      await a.log.checkpoint();
      await b.log.checkpoint();
      const keys = await signingKeysFromStoredConfs(a.store.db, IDS.groGw, readAnchor(join(ex.dirs.central, 'anchor.json')));
      const report = await verifyMessageLog(a.store.db, IDS.groGw, (sn) => keys.get(sn));
      assert.ok(report.ok, JSON.stringify(report.problems));
      assert.equal(report.records, 2);
    } finally {
      await a.stop();
      await b.stop();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    }
  });
});
