/**
 * X-Road REST (r1) compatibility: requests written from X-Road's protocol texts, as an X-Road
 * client library sends them (raw HTTP/1.1, no onceonly code on the client's side), against a real
 * exchange with a plain REST service behind the provider gateway. Section numbers are X-Road's
 * Message Protocol for REST (PR-REST 1.0.4), Service Metadata Protocol for REST (PR-MREST) and
 * Service Metadata Protocol (PR-META). docs/exchange.md has the table of what is compared.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { IDS, TEST_AGREEMENTS, startExchange, type Exchange } from '../support/exchange.ts';
import { addService } from '../../src/gateway/node.ts';

interface Seen { method: string; url: string; headers: IncomingHttpHeaders; rawHeaders: string[]; body: string }
interface Answer { status: number; headers: IncomingHttpHeaders; body: string }

let ex: Exchange;
let petstore: Server;
let seen: Seen | undefined;
const CLIENT = 'UK/MUN/LEEDS/parking';
const SERVICE = `/r1/${IDS.population}/petstore`;

/** A request exactly as given: method, target and headers byte for byte (node:http does not rewrite the path). */
function r1(method: string, target: string, headers: Record<string, string | string[]> = {}, body?: string): Promise<Answer> {
  const u = new URL(ex.leeds.clientUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method, path: target, headers: { 'x-onceonly-purpose': 'pet-licensing', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Bytes on a raw socket, for what an HTTP library would never send. */
function raw(bytes: string): Promise<string> {
  const u = new URL(ex.leeds.clientUrl);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => s.end(bytes));
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (out += c));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

/** PR-REST §4.6: an error of the exchange is JSON `{type, message, detail}` with X-Road-Error naming the type. */
function xroadError(a: Answer): { type: string; message: string; detail: string } {
  assert.match(String(a.headers['content-type']), /^application\/json/);
  const b = JSON.parse(a.body) as { type: string; message: string; detail: string };
  assert.equal(typeof b.type, 'string');
  assert.equal(typeof b.message, 'string');
  assert.equal(typeof b.detail, 'string');
  assert.equal(a.headers['x-road-error'], b.type);
  return b;
}

describe('X-Road REST r1, from the protocol text', () => {
  before(async () => {
    ex = await startExchange();
    petstore = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body };
        const path = (req.url ?? '').split('?')[0];
        const common = { 'x-powered-by': 'PHP/5.2.17', 'cache-control': 'no-cache, no-store, must-revalidate', server: 'petstore.internal.example', 'x-road-error': 'Forged.By.Service' };
        if (path === '/v1/redirect') return void res.writeHead(302, { ...common, location: '/v1/elsewhere?x=1' }).end();
        if (path === '/v1/fail') return void res.writeHead(405, { ...common, 'content-type': 'application/json;charset=utf-8' }).end(JSON.stringify({ status: 405, error: 'Method Not Allowed', path }));
        if (req.method === 'POST') return void res.writeHead(201, { ...common, 'content-type': 'application/json;charset=utf-8', location: '/v1/pets/7' }).end(JSON.stringify({ id: 7, received: body }));
        if (req.method === 'DELETE') return void res.writeHead(204, common).end();
        if (req.method === 'PUT') return void res.writeHead(200, { ...common, 'content-type': 'application/json;charset=utf-8' }).end(JSON.stringify({ updated: body }));
        res.writeHead(200, { ...common, 'content-type': 'application/json;charset=utf-8' }).end(JSON.stringify({ id: 1124, name: 'Rex' }));
      });
    });
    await new Promise<void>((resolve) => petstore.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(petstore.address() as { port: number }).port}`;
    addService(ex.dirs.gro, IDS.population, 'petstore', { url, timeoutMs: 5000, kind: 'rest', openapi: `${url}/openapi.json`, endpoints: [{ method: 'GET', path: '/v1/pets/*' }, { method: 'POST', path: '/v1/pets' }] });
    await ex.central.publishAgreements({
      agreements: [
        ...TEST_AGREEMENTS.agreements,
        { id: 'leeds-petstore', client: CLIENT, provider: IDS.population, services: ['petstore'], purpose: { id: 'pet-licensing', description: 'License pets.' }, legalBasis: 'Synthetic agreement for tests', validFrom: '2020-01-01', validUntil: '2099-12-31' },
        { id: 'leeds-member-petstore', client: IDS.leeds, provider: IDS.population, services: ['petstore'], purpose: { id: 'pet-licensing', description: 'License pets, as the council itself.' }, legalBasis: 'Synthetic agreement for tests', validFrom: '2020-01-01', validUntil: '2099-12-31' },
      ],
    });
    await ex.restartGateway('gro');
    await ex.leeds.conf.fetch();
  });
  after(async () => {
    petstore?.closeAllConnections();
    petstore?.close();
    await ex?.stop();
  });

  test('§4.1: the service is called at its path with its query; the provider sees exactly the request', async () => {
    const a = await r1('GET', `${SERVICE}/v1/pets/1124?quu=1&tags=a%20b,c`, { 'X-Road-Client': CLIENT });
    assert.equal(a.status, 200, a.body);
    assert.deepEqual(JSON.parse(a.body), { id: 1124, name: 'Rex' });
    assert.equal(seen?.method, 'GET');
    // §4.5: query parameters passed unmodified.
    assert.equal(seen?.url, '/v1/pets/1124?quu=1&tags=a%20b,c');
  });

  test('§4.3: X-Road response headers, the request hash as base64 SHA-512, X-Road-Id kept or made', async () => {
    const a = await r1('GET', `${SERVICE}/v1/pets/1`, { 'X-Road-Client': CLIENT, 'X-Road-Id': 'fa2e18a5-c2cb-4d09-b994-f57727f7c3fb' });
    assert.equal(a.headers['x-road-client'], CLIENT);
    assert.equal(a.headers['x-road-service'], `${IDS.population}/petstore`);
    assert.equal(a.headers['x-road-id'], 'fa2e18a5-c2cb-4d09-b994-f57727f7c3fb');
    assert.match(String(a.headers['x-road-request-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(Buffer.from(String(a.headers['x-road-request-hash']), 'base64').length, 64);
    const b = await r1('GET', `${SERVICE}/v1/pets/1`, { 'X-Road-Client': CLIENT });
    assert.ok(String(b.headers['x-road-id']).length > 0, 'made by the gateway when not given');
    assert.notEqual(b.headers['x-road-request-id'], a.headers['x-road-request-id']);
    // The same X-Road-Id may be used again; it is the client's, not a replay key.
    const c = await r1('GET', `${SERVICE}/v1/pets/1`, { 'X-Road-Client': CLIENT, 'X-Road-Id': 'fa2e18a5-c2cb-4d09-b994-f57727f7c3fb' });
    assert.equal(c.status, 200);
    // A longer X-Road-Id than the gateway keeps is refused, never cut or replaced.
    const long = await r1('GET', `${SERVICE}/v1/pets/1`, { 'X-Road-Client': CLIENT, 'X-Road-Id': 'x'.repeat(256) });
    assert.equal(long.status, 400);
    assert.equal(xroadError(long).type, 'Client.BadRequest');
  });

  test('§4.3: X-Road-Client is mandatory; with several, the last is the client', async () => {
    const none = await r1('GET', `${SERVICE}/v1/pets/1`);
    assert.equal(none.status, 400);
    assert.equal(xroadError(none).type, 'Client.BadRequest');
    const two = await r1('GET', `${SERVICE}/v1/pets/1`, { 'X-Road-Client': ['UK/GOV/DWP/benefits', CLIENT] });
    assert.equal(two.status, 200, two.body);
    assert.equal(two.headers['x-road-client'], CLIENT);
  });

  test('§4.3: X-Road headers, Content-Type, Accept, user-defined and cache headers reach the service unmodified; filtered ones do not', async () => {
    const a = await r1('PUT', `${SERVICE}/v1/pets/1124`, {
      'X-Road-Client': CLIENT,
      'X-Road-Id': 'id-1',
      'X-Road-UserId': 'EE12345678901',
      'X-Road-Issue': 'MT324223MSD',
      'X-Road-Represented-Party': 'COM/12345',
      'Content-Type': 'application/json; charset=utf-8',
      Accept: 'application/xml',
      'X-Pingback': 'https://example.com/xmlrpc.php',
      'Cache-Control': 'no-cache',
      Authorization: 'Bearer a-token-for-the-provider',
      'User-Agent': 'client-library/1.0',
      'X-Road-Request-Hash': 'forged',
    }, '{"name":"Rex"}');
    assert.equal(a.status, 200, a.body);
    const h = seen!.headers;
    assert.equal(h['x-road-client'], CLIENT);
    assert.equal(h['x-road-id'], 'id-1');
    assert.equal(h['x-road-userid'], 'EE12345678901');
    assert.equal(h['x-road-issue'], 'MT324223MSD');
    assert.equal(h['x-road-represented-party'], 'COM/12345');
    assert.equal(h['content-type'], 'application/json; charset=utf-8');
    assert.equal(h['accept'], 'application/xml');
    assert.equal(h['x-pingback'], 'https://example.com/xmlrpc.php');
    assert.equal(h['cache-control'], 'no-cache');
    assert.equal(h['authorization'], 'Bearer a-token-for-the-provider', 'a JWT or bearer for the provider passes (PR-REST §4.7)');
    assert.equal(seen!.body, '{"name":"Rex"}');
    assert.notEqual(h['user-agent'], 'client-library/1.0', 'User-Agent names the origin host: filtered');
    assert.notEqual(h['x-road-request-hash'], 'forged');
    assert.match(String(h['x-road-request-id']), /^[0-9a-f-]{36}$/);
    // And back: the service's content type and user-defined and cache headers pass; Server does not.
    assert.equal(a.headers['content-type'], 'application/json;charset=utf-8');
    assert.equal(a.headers['x-powered-by'], 'PHP/5.2.17');
    assert.equal(a.headers['cache-control'], 'no-cache, no-store, must-revalidate');
    assert.equal(a.headers['server'], undefined);
    // A service cannot make its answer look like a refusal of the exchange.
    assert.equal(a.headers['x-road-error'], undefined);
  });

  test('§4.4: a redirect is not followed; it reaches the client with its Location', async () => {
    const a = await r1('GET', `${SERVICE}/v1/redirect`, { 'X-Road-Client': CLIENT });
    assert.equal(a.status, 302);
    assert.equal(a.headers['location'], '/v1/elsewhere?x=1');
  });

  test('§6: POST 201, DELETE 204 and the provider\'s own error (category 1) pass through as they are', async () => {
    const post = await r1('POST', `${SERVICE}/v1/pets`, { 'X-Road-Client': CLIENT, 'Content-Type': 'application/json' }, '{"name":"Fido"}');
    assert.equal(post.status, 201);
    assert.equal(post.headers['location'], '/v1/pets/7');
    assert.deepEqual(JSON.parse(post.body), { id: 7, received: '{"name":"Fido"}' });
    const del = await r1('DELETE', `${SERVICE}/v1/pets/7`, { 'X-Road-Client': CLIENT });
    assert.equal(del.status, 204);
    assert.equal(del.body, '');
    const fail = await r1('GET', `${SERVICE}/v1/fail`, { 'X-Road-Client': CLIENT });
    assert.equal(fail.status, 405);
    assert.equal(fail.headers['x-road-error'], undefined, 'category 1: no X-Road-Error');
    assert.equal((JSON.parse(fail.body) as { error: string }).error, 'Method Not Allowed');
  });

  test('§4.6: the exchange\'s errors: 400 Client.* for a request off the protocol, 500 Server.* otherwise; XML when asked for', async () => {
    const bad = await r1('GET', '/r1/UK%2FGOV%2FGRO%2Fpopulation%2Fpetstore', { 'X-Road-Client': CLIENT });
    assert.equal(bad.status, 400);
    assert.equal(xroadError(bad).type, 'Client.BadRequest');
    const unknown = await r1('GET', `/r1/${IDS.population}/nosuchservice/x`, { 'X-Road-Client': CLIENT });
    assert.equal(unknown.status, 500);
    assert.equal(xroadError(unknown).type, 'Server.ServerProxy.UnknownService');
    const denied = await r1('GET', `/r1/${IDS.population}/petstore/v1/pets/1`, { 'X-Road-Client': CLIENT, 'X-OnceOnly-Purpose': 'curiosity' });
    assert.equal(denied.status, 500);
    assert.equal(xroadError(denied).type, 'Server.ServerProxy.AccessDenied');
    const nobody = await r1('GET', `/r1/UK/GOV/NOBODY/sub/svc`, { 'X-Road-Client': CLIENT });
    assert.equal(xroadError(nobody).type, 'Server.ClientProxy.UnknownMember');
    const xml = await r1('GET', `/r1/${IDS.population}/nosuchservice/x`, { 'X-Road-Client': CLIENT, Accept: 'application/xml; q=0.2' });
    assert.equal(xml.status, 500);
    assert.match(String(xml.headers['content-type']), /^application\/xml/);
    assert.equal(xml.headers['x-road-error'], 'Server.ServerProxy.UnknownService');
    assert.match(xml.body, /^<\?xml version="1.0" encoding="UTF-8"\?><error><type>Server\.ServerProxy\.UnknownService<\/type><message>[^<]+<\/message><detail>[0-9a-f-]{36}<\/detail>/);
    const text = await r1('GET', `/r1/${IDS.population}/nosuchservice/x`, { 'X-Road-Client': CLIENT, Accept: 'text/*' });
    assert.match(String(text.headers['content-type']), /^text\/xml/);
    const json = await r1('GET', `/r1/${IDS.population}/nosuchservice/x`, { 'X-Road-Client': CLIENT, Accept: 'text/xml-patch+xml' });
    assert.match(String(json.headers['content-type']), /^application\/json/, 'only text/xml, application/xml or text/* ask for XML');
  });

  test('§4.6: what the HTTP parser refuses still gets X-Road\'s typed answer', async () => {
    for (const bytes of [
      `GET ${SERVICE}/v1/pets/1 HTTP/1.1\r\nHost: x\r\nX-Road-Client: ${CLIENT}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      `GET ${SERVICE}/v1/pets/1 HTTP/1.1\r\nHost: x\r\nX-Bad: a\0b\r\n\r\n`,
      'NOT HTTP AT ALL\r\n\r\n',
    ]) {
      const out = await raw(bytes);
      assert.match(out, /^HTTP\/1\.1 400 /, out.slice(0, 80));
      assert.match(out, /\r\nx-road-error: Client\.BadRequest\r\n/i);
      const body = out.slice(out.indexOf('\r\n\r\n') + 4);
      assert.equal((JSON.parse(body) as { type: string }).type, 'Client.BadRequest');
    }
  });

  test('§4.2: identifier parts are percent-decoded once, then checked', async () => {
    const a = await r1('GET', `/r1/UK/GOV/GRO/popul%61tion/petstore/v1/pets/1`, { 'X-Road-Client': 'UK/MUN/LEEDS/p%61rking' });
    assert.equal(a.status, 200, a.body);
    assert.equal(a.headers['x-road-service'], `${IDS.population}/petstore`);
    const twice = await r1('GET', `/r1/UK/GOV/GRO/popul%2561tion/petstore/v1/pets/1`, { 'X-Road-Client': CLIENT });
    assert.equal(xroadError(twice).type, 'Client.BadRequest', 'decoded once: %2561 is "%61", not "a"');
  });

  test('§4.3: a member-level client (no subsystem), and X-Road-Security-Server naming the gateway to use', async () => {
    const member = await r1('GET', `${SERVICE}/v1/pets/1`, { 'X-Road-Client': IDS.leeds });
    assert.equal(member.status, 200, member.body);
    assert.equal(member.headers['x-road-client'], IDS.leeds);
    const named = await r1('GET', `${SERVICE}/v1/pets/1`, { 'X-Road-Client': CLIENT, 'X-Road-Security-Server': IDS.groGw });
    assert.equal(named.status, 200, named.body);
    const wrong = await r1('GET', `${SERVICE}/v1/pets/1`, { 'X-Road-Client': CLIENT, 'X-Road-Security-Server': 'UK/GOV/GRO/gw9' });
    assert.equal(xroadError(wrong).type, 'Server.ClientProxy.InvalidSecurityServer');
  });

  test('PR-META §2: listClients at the root, XML by default and JSON on Accept', async () => {
    const xml = await r1('GET', '/listClients');
    assert.equal(xml.status, 200);
    assert.match(String(xml.headers['content-type']), /^text\/xml/);
    assert.match(xml.body, /<ns2:clientList xmlns:ns1="http:\/\/x-road\.eu\/xsd\/identifiers" xmlns:ns2="http:\/\/x-road\.eu\/xsd\/xroad\.xsd">/);
    assert.match(xml.body, /<ns2:id ns1:objectType="SUBSYSTEM"><ns1:xRoadInstance>UK<\/ns1:xRoadInstance><ns1:memberClass>GOV<\/ns1:memberClass><ns1:memberCode>GRO<\/ns1:memberCode><ns1:subsystemCode>population<\/ns1:subsystemCode><\/ns2:id>/);
    const json = await r1('GET', '/listClients', { Accept: 'application/json' });
    const list = JSON.parse(json.body) as { member: { id: Record<string, string>; name: string }[] };
    assert.ok(list.member.some((m) => m.id['object_type'] === 'MEMBER' && m.id['member_code'] === 'LEEDS' && m.id['subsystem_code'] === undefined));
    assert.ok(list.member.some((m) => m.id['object_type'] === 'SUBSYSTEM' && m.id['subsystem_code'] === 'parking' && m.id['xroad_instance'] === 'UK'));
    assert.deepEqual(JSON.parse((await r1('GET', '/listClients?xRoadInstance=EE', { Accept: 'application/json' })).body), { member: [] });
  });

  test('PR-MREST §4-§5: listMethods and allowedMethods with endpoint_list; getOpenAPI lists only what is let through', async () => {
    const list = await r1('GET', `/r1/${IDS.population}/listMethods`, { 'X-Road-Client': CLIENT });
    const services = (JSON.parse(list.body) as { service: { service_code: string; object_type: string; xroad_instance: string; member_class: string; member_code: string; subsystem_code: string; service_type: string; endpoint_list: { method: string; path: string }[] }[] }).service;
    const pets = services.find((s) => s.service_code === 'petstore')!;
    assert.deepEqual({ ...pets, endpoint_list: undefined }, { member_class: 'GOV', member_code: 'GRO', object_type: 'SERVICE', service_code: 'petstore', service_type: 'OPENAPI', subsystem_code: 'population', xroad_instance: 'UK', endpoint_list: undefined });
    assert.deepEqual(pets.endpoint_list, [{ method: 'GET', path: '/v1/pets/*' }, { method: 'POST', path: '/v1/pets' }]);
    assert.ok(!services.some((s) => ['listMethods', 'allowedMethods', 'getOpenAPI'].includes(s.service_code)), 'no metaservice lists itself');
    const allowed = await r1('GET', `/r1/${IDS.population}/allowedMethods`, { 'X-Road-Client': 'UK/MUN/LEEDS' });
    assert.deepEqual((JSON.parse(allowed.body) as { service: { service_code: string }[] }).service.map((s) => s.service_code), ['petstore'], 'the member-level client may use the petstore only');
    const openapi = await r1('GET', `/r1/${IDS.population}/getOpenAPI?serviceCode=people`, { 'X-Road-Client': CLIENT });
    const doc = JSON.parse(openapi.body) as { openapi: string; paths: Record<string, { get: { parameters: { name: string; 'x-onceonly-items'?: string[] }[] } }> };
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(Object.keys(doc.paths).sort(), ['/{id}', '/{id}/exists'], 'no history, no changes, no corrections: the exchange lets none of them through');
    assert.deepEqual(doc.paths['/{id}']!.get.parameters.find((p) => p.name === 'items')!['x-onceonly-items'], ['person.address', 'person.familyName', 'person.givenName']);
    assert.ok(!doc.paths['/{id}']!.get.parameters.some((p) => p.name === 'asAt'), 'no asAt where no history is granted');
    const missing = await r1('GET', `/r1/${IDS.population}/getOpenAPI`, { 'X-Road-Client': CLIENT });
    assert.equal(xroadError(missing).type, 'Server.ServerProxy.InvalidRequest');
  });
});
