/**
 * Parsing X-Road REST requests once, up front (gateway/r1), and saying errors in X-Road's words
 * (gateway/xroad): every way a request can be off the protocol is a typed refusal naming the
 * field; identifiers are decoded exactly once; the error body and media type follow PR-REST §4.6.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { expectError } from '../../test/support/errors.ts';
import { ERROR_STATUS, OnceOnlyError, type ErrorType } from '../core/errors.ts';
import { encodeIdPath, parseClientId } from '../core/ids.ts';
import { parseR1, type R1ServiceRequest } from './r1.ts';
import { errorMediaType, renderError, requestHashOf, toXRoadError, xroadStatus, xroadType } from './xroad.ts';

const H = (...pairs: string[]): string[] => pairs;
const CLIENT = ['X-Road-Client', 'UK/MUN/LEEDS/parking'];

function service(url: string, headers: string[] = CLIENT, method = 'GET'): R1ServiceRequest {
  const r = parseR1(method, url, headers);
  assert.equal(r.kind, 'service');
  return r;
}

test('a service request: service id, path and query raw, X-Road headers, headers passed on in order', () => {
  const r = service('/r1/UK/GOV/GRO/population/people/P-1?items=a,b&x=%20', H('X-Road-Client', 'UK/MUN/LEEDS/parking', 'X-Road-Id', 'id-1', 'X-Road-UserId', 'EE123', 'X-Custom', 'v', 'Host', 'h', 'Connection', 'keep-alive', 'X-Road-Request-Hash', 'forged', 'Accept', 'application/json'));
  assert.equal(r.serviceId, 'UK/GOV/GRO/population/people');
  assert.equal(r.providerId, 'UK/GOV/GRO/population');
  assert.equal(r.servicePath, '/P-1');
  assert.equal(r.query, 'items=a,b&x=%20');
  assert.equal(r.clientId, 'UK/MUN/LEEDS/parking');
  assert.equal(r.xroadId, 'id-1');
  assert.equal(r.userId, 'EE123');
  assert.equal(r.accept, 'application/json');
  assert.deepEqual(r.headers, [['X-Road-UserId', 'EE123'], ['X-Custom', 'v'], ['Accept', 'application/json']], 'hop-by-hop, Host and the gateway\'s own X-Road headers never pass');
});

test('identifiers: decoded once, then checked; a member-level client; the last X-Road-Client wins', () => {
  assert.equal(service('/r1/UK/GOV/GRO/popul%61tion/people').serviceId, 'UK/GOV/GRO/population/people');
  assert.equal(service('/r1/UK/GOV/GRO/a%2Bb%3Fc/people').serviceId, 'UK/GOV/GRO/a+b?c/people', 'PR-REST §4.8 characters, percent-encoded');
  expectError(() => service('/r1/UK/GOV/GRO/popul%2561tion/people'), 'invalid_identifier', 'path.service');
  expectError(() => service('/r1/UK/GOV/GRO/pop%2Fulation/people'), 'invalid_identifier', 'path.service');
  expectError(() => service('/r1/UK/GOV/GRO/%2E%2E/people'), 'invalid_identifier', 'path.service');
  expectError(() => service('/r1/UK/GOV/GRO/pop%C3/people'), 'invalid_identifier', 'path.service');
  assert.equal(service('/r1/UK/GOV/GRO/population/people', H('X-Road-Client', 'UK/MUN/LEEDS')).clientId, 'UK/MUN/LEEDS');
  assert.equal(service('/r1/UK/GOV/GRO/population/people', H('X-Road-Client', 'UK/GOV/DWP/benefits', 'x-road-client', 'UK/MUN/LEEDS/p%61rking')).clientId, 'UK/MUN/LEEDS/parking');
  expectError(() => service('/r1/UK/GOV/GRO/population/people', H('X-Road-Client', 'UK/MUN')), 'invalid_identifier', 'headers.x-road-client');
  expectError(() => service('/r1/UK/GOV/GRO/population/people', H('X-Road-Client', 'UK/MUN/LEEDS/parking/x')), 'invalid_identifier', 'headers.x-road-client');
  expectError(() => service('/r1/UK/GOV/GRO/population/people', H('X-Road-Client', 'UK/MUN/../parking')), 'invalid_identifier', 'headers.x-road-client');
  expectError(() => service('/r1/UK/GOV/GRO/population/people', H()), 'invalid_request', 'headers.x-road-client');
  // Round trip: any valid id encoded part by part is decoded back to itself.
  fc.assert(fc.property(fc.array(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._'()+,=?-]{0,20}$/), { minLength: 4, maxLength: 4 }), (parts) => {
    const id = parts.join('/');
    const r = service(`/r1/${encodeIdPath(id)}/svc`, H('X-Road-Client', encodeIdPath(id)));
    return r.providerId === id && r.clientId === formatted(id);
  }), { numRuns: 500 });
});

const formatted = (id: string): string => {
  const c = parseClientId(id);
  return `${c.instance}/${c.memberClass}/${c.memberCode}/${c.subsystemCode ?? ''}`.replace(/\/$/, '');
};

test('paths and headers off the protocol are refused with the field named', () => {
  const cases: [string, ErrorType, string][] = [
    ['/r1/UK/GOV/GRO', 'invalid_identifier', 'path'],
    ['/r2/UK/GOV/GRO/population/people', 'invalid_service_path', 'path'],
    ['/r1/UK/GOV/GRO/population/people/../x', 'invalid_service_path', 'path'],
    ['/r1/UK/GOV/GRO/population/people/a%2Fb', 'invalid_service_path', 'path'],
    ['/r1/UK/GOV/GRO/population/people/a%00b', 'invalid_service_path', 'path'],
    ['/r1/UK/GOV/GRO/population/people/a b', 'invalid_service_path', 'path'],
    ['/r1/UK/GOV/GRO/population/people/a%zz', 'invalid_service_path', 'path'],
    ['/r1/UK/GOV/GRO/population/people//x', 'invalid_service_path', 'path'],
    ['/r1/UK/GOV/GRO/population/people?a=\u0001', 'invalid_service_path', 'query'],
    [`/r1/UK/GOV/GRO/population/people/${'x'.repeat(5000)}`, 'invalid_service_path', 'path'],
    ['/r1/UK/GOV//population/people', 'invalid_identifier', 'path'],
  ];
  for (const [url, type, field] of cases) expectError(() => parseR1('GET', url, CLIENT), type, field, url.slice(0, 60));
  expectError(() => service('/r1/UK/GOV/GRO/population/people', [...CLIENT, 'X-Road-Id', '']), 'invalid_request', 'headers.x-road-id');
  expectError(() => service('/r1/UK/GOV/GRO/population/people', [...CLIENT, 'X-Road-Id', 'x'.repeat(256)]), 'invalid_request', 'headers.x-road-id');
  assert.equal(service('/r1/UK/GOV/GRO/population/people', [...CLIENT, 'X-Road-Id', 'x'.repeat(255)]).xroadId?.length, 255, 'kept whole, never cut');
  expectError(() => service('/r1/UK/GOV/GRO/population/people', [...CLIENT, 'X-Road-Security-Server', 'UK/GOV/GRO']), 'invalid_identifier', 'headers.x-road-security-server');
  expectError(() => service('/r1/UK/GOV/GRO/population/people', [...CLIENT, 'X-Road-Represented-Party', 'A/B/C']), 'invalid_identifier', 'headers.x-road-represented-party');
  expectError(() => service('/r1/UK/GOV/GRO/population/people', [...CLIENT, 'X-OnceOnly-Purpose', 'x'.repeat(129)]), 'invalid_request', 'headers.x-onceonly-purpose');
});

test('listClients: GET at the root, xRoadInstance only', () => {
  assert.deepEqual(parseR1('GET', '/listClients', H('Accept', 'application/json')), { kind: 'listClients', instance: undefined, accept: 'application/json' });
  assert.deepEqual(parseR1('GET', '/listClients?xRoadInstance=EE', []), { kind: 'listClients', instance: 'EE', accept: undefined });
  expectError(() => parseR1('POST', '/listClients', []), 'invalid_request', 'method');
  expectError(() => parseR1('GET', '/listClients?x=1', []), 'invalid_request', 'query');
});

test('X-Road error types and statuses for every onceonly type, on both sides', () => {
  for (const t of Object.keys(ERROR_STATUS) as ErrorType[]) {
    for (const side of ['client', 'provider'] as const) {
      const x = xroadType(t, side);
      assert.match(x, /^(Client\.BadRequest|Server\.(ClientProxy|ServerProxy)\.[A-Z][A-Za-z]+(\.[A-Z][A-Za-z]+)?)$/, `${t} on ${side}: ${x}`);
      assert.equal(xroadStatus(x), x.startsWith('Client.') ? 400 : 500);
    }
  }
  assert.equal(xroadType('item_not_covered', 'provider'), 'Server.ServerProxy.AccessDenied');
  assert.equal(xroadType('global_conf_expired', 'client'), 'Server.ClientProxy.OutdatedGlobalConf');
  assert.equal(xroadType('invalid_identifier', 'client'), 'Client.BadRequest');
  assert.equal(xroadType('invalid_signature', 'provider'), 'Server.ServerProxy.SignatureVerification.InvalidSignatureValue');
});

test('error bodies: JSON by default, XML when Accept asks for it first, escaped', () => {
  assert.equal(errorMediaType(undefined), 'application/json');
  assert.equal(errorMediaType('application/json, text/xml'), 'text/xml', 'the first of the XML types listed wins, wherever JSON is');
  assert.equal(errorMediaType('text/html, application/xml;q=0.1'), 'application/xml');
  assert.equal(errorMediaType('text/*'), 'text/xml');
  assert.equal(errorMediaType('text/xml-patch+xml'), 'application/json');
  const x = toXRoadError(new OnceOnlyError('item_not_covered', 'no <b>&"\u0000', { notCovered: ['person.birthDate'] }), 'provider');
  const json = renderError(x, undefined);
  assert.equal(json.status, 500);
  assert.equal(json.headers['x-road-error'], 'Server.ServerProxy.AccessDenied');
  assert.deepEqual(Object.keys(JSON.parse(json.body.toString()) as object), ['type', 'message', 'detail', 'onceonly']);
  const xml = renderError(x, 'application/xml').body.toString();
  assert.match(xml, /<message>no &#60;b&#62;&#38;&#34;\uFFFD<\/message>/);
  assert.match(xml, /<onceonly><type>item_not_covered<\/type>/);
});

test('the request hash: base64 SHA-512, over the header part, then with the body\'s', () => {
  const empty = requestHashOf('header part', new Uint8Array());
  assert.equal(Buffer.from(empty, 'base64').length, 64);
  assert.notEqual(requestHashOf('header part', Buffer.from('x')), empty);
  assert.notEqual(requestHashOf('header part2', new Uint8Array()), empty);
});
