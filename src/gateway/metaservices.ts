/**
 * @module gateway/metaservices
 * X-Road's metaservices (PR-MREST, PR-META):
 *
 * - `GET /listClients` on the client side, answered from the global configuration: every member and
 *   subsystem, as XML by default and as JSON when Accept names `application/json` (PR-META §2, X-Road
 *   7's MetadataClientRequestProcessor);
 * - `GET /r1/{provider}/listMethods` and `/allowedMethods`, answered by the provider gateway as JSON
 *   `{service: [{…, endpoint_list: [{method, path}]}]}` (PR-MREST §4, Annex B);
 * - `GET /r1/{provider}/getOpenAPI?serviceCode=X` (PR-MREST §5): for a registry service a
 *   description the gateway writes itself, listing only what the exchange will let this client do
 *   (its granted items, and `asAt`/`knownAt` only where history is granted); for a plain REST service
 *   the description its registration points to.
 */
import { OnceOnlyError } from '../core/errors.ts';
import type { ServiceId } from '../core/ids.ts';
import type { ConfView } from './confclient.ts';
import { agreementsInForce } from './access.ts';
import type { ServiceRegistration } from './gateway.ts';

/** The provider-side metaservice codes (never listed by listMethods, PR-MREST §4). */
export const METASERVICES: ReadonlySet<string> = new Set(['listMethods', 'allowedMethods', 'getOpenAPI']);

/** An answer a metaservice builds. */
export interface MetaAnswer {
  status: number;
  contentType: string;
  body: Buffer;
}

const json = (x: unknown): MetaAnswer => ({ status: 200, contentType: 'application/json; charset=utf-8', body: Buffer.from(JSON.stringify(x)) });

function xml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** listClients: every member and subsystem of the instance (PR-META §2, Annex C.1). */
export function listClients(v: ConfView, accept: string | undefined, instance: string | undefined): MetaAnswer {
  const own = v.conf.instance;
  const members = instance === undefined || instance === own ? v.conf.members : [];
  const subsystems = instance === undefined || instance === own ? v.conf.subsystems : [];
  type Entry = { object_type: 'MEMBER' | 'SUBSYSTEM'; xroad_instance: string; member_class: string; member_code: string; subsystem_code?: string; name: string };
  const entries: Entry[] = [];
  for (const m of members) {
    const [xroad_instance, member_class, member_code] = m.id.split('/') as [string, string, string];
    entries.push({ object_type: 'MEMBER', xroad_instance, member_class, member_code, name: m.name });
    for (const s of subsystems.filter((x) => x.member === m.id)) {
      entries.push({ object_type: 'SUBSYSTEM', xroad_instance, member_class, member_code, subsystem_code: s.id.split('/')[3]!, name: m.name });
    }
  }
  // X-Road answers JSON when any listed media type, parameters removed, is application/json.
  const wantsJson = (accept ?? '').split(',').some((p) => p.split(';')[0]!.trim().toLowerCase() === 'application/json');
  if (wantsJson) {
    return json({
      member: entries.map((e) => ({
        id: { member_class: e.member_class, member_code: e.member_code, ...(e.subsystem_code !== undefined ? { subsystem_code: e.subsystem_code } : {}), object_type: e.object_type, xroad_instance: e.xroad_instance },
        name: e.name,
      })),
    });
  }
  const ID = 'http://x-road.eu/xsd/identifiers';
  const XR = 'http://x-road.eu/xsd/xroad.xsd';
  const body = entries
    .map((e) => `<ns2:member><ns2:id ns1:objectType="${e.object_type}"><ns1:xRoadInstance>${xml(e.xroad_instance)}</ns1:xRoadInstance><ns1:memberClass>${xml(e.member_class)}</ns1:memberClass><ns1:memberCode>${xml(e.member_code)}</ns1:memberCode>${e.subsystem_code !== undefined ? `<ns1:subsystemCode>${xml(e.subsystem_code)}</ns1:subsystemCode>` : ''}</ns2:id><ns2:name>${xml(e.name)}</ns2:name></ns2:member>`)
    .join('');
  return { status: 200, contentType: 'text/xml; charset=utf-8', body: Buffer.from(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?><ns2:clientList xmlns:ns1="${ID}" xmlns:ns2="${XR}">${body}</ns2:clientList>`) };
}

/** The data-usage service every provider gateway offers on each subsystem it serves. */
export const DATA_USAGE_SERVICE = 'data-usage';

/** The endpoints a registration offers through the exchange (X-Road's endpoint_list, base endpoint excluded). */
function endpoints(code: string, s: ServiceRegistration | undefined): { method: string; path: string }[] {
  if (code === DATA_USAGE_SERVICE) return [{ method: 'GET', path: '/*' }];
  if (!s) return [];
  if (s.kind === 'registry') return [{ method: 'GET', path: '/*' }, { method: 'GET', path: '/*/exists' }];
  return (s.endpoints ?? []).filter((e) => !(e.method === '*' && e.path === '**'));
}

/** The services a provider subsystem offers, data-usage included when the gateway records access. */
export function offered(registered: Readonly<Record<string, ServiceRegistration>>, dataUsage: boolean): string[] {
  const codes = Object.keys(registered).sort();
  if (dataUsage && !codes.includes(DATA_USAGE_SERVICE)) codes.push(DATA_USAGE_SERVICE);
  return codes;
}

const USAGE_ITEM = /^[a-z]+\.[A-Za-z]*[uU]sageRecords$/;

/** Whether `client` may use service `code` of `provider` under some agreement in force today. */
function allowedTo(v: ConfView, client: string, provider: string, code: string, s: ServiceRegistration | undefined, date: string): boolean {
  const ags = agreementsInForce(v, client, provider, date);
  if (code === DATA_USAGE_SERVICE) return ags.some((a) => a.items.some((i) => USAGE_ITEM.test(i)));
  if (!s) return false;
  if (s.kind === 'registry') return ags.some((a) => a.items.some((i) => !USAGE_ITEM.test(i)));
  return ags.some((a) => a.services.includes(code));
}

/** listMethods / allowedMethods / getOpenAPI, answered by the provider gateway. */
export async function providerMetaservice(o: {
  v: ConfView;
  code: string;
  method: string;
  provider: ServiceId;
  providerId: string;
  client: string;
  query: string;
  registered: Readonly<Record<string, ServiceRegistration>>;
  dataUsage: boolean;
  date: string;
  fetchDescription: (s: ServiceRegistration) => Promise<MetaAnswer>;
}): Promise<MetaAnswer> {
  // PR-MREST: metaservices are read with GET; X-Road hands any other method to the service handler.
  if (o.method !== 'GET') throw new OnceOnlyError('unknown_service', `${o.code} is read with GET`, { field: 'method', expected: 'GET' });
  const p = o.provider;
  const entry = (code: string): Record<string, unknown> => {
    const s = o.registered[code];
    return {
      member_class: p.memberClass, member_code: p.memberCode, object_type: 'SERVICE', service_code: code,
      service_type: code === DATA_USAGE_SERVICE || s?.kind === 'registry' || s?.openapi ? 'OPENAPI' : 'REST',
      subsystem_code: p.subsystemCode, xroad_instance: p.instance, endpoint_list: endpoints(code, s),
    };
  };
  const codes = offered(o.registered, o.dataUsage);
  if (o.code === 'listMethods') return json({ service: codes.map(entry) });
  if (o.code === 'allowedMethods') return json({ service: codes.filter((c) => allowedTo(o.v, o.client, o.providerId, c, o.registered[c], o.date)).map(entry) });
  const params = new URLSearchParams(o.query);
  const serviceCode = params.get('serviceCode');
  if (serviceCode === null || serviceCode === '' || params.getAll('serviceCode').length > 1) throw new OnceOnlyError('invalid_request', 'getOpenAPI needs ?serviceCode= naming one service of this subsystem', { field: 'query.serviceCode', expected: 'a service code listed by listMethods' });
  if (!codes.includes(serviceCode)) throw new OnceOnlyError('unknown_service', 'the subsystem offers no such service', { field: 'query.serviceCode', expected: 'a service code listed by listMethods' });
  const s = o.registered[serviceCode];
  if (serviceCode !== DATA_USAGE_SERVICE && s?.kind === 'rest') {
    if (!s.openapi) throw new OnceOnlyError('unknown_service', 'this service has no OpenAPI description', { field: 'query.serviceCode' });
    return o.fetchDescription(s);
  }
  return json(registryDescription(o.v, o.client, o.providerId, serviceCode, o.date));
}

/** An OpenAPI 3.1 description of what the exchange lets `client` do with a registry (or data-usage) service. */
function registryDescription(v: ConfView, client: string, provider: string, code: string, date: string): Record<string, unknown> {
  const ags = agreementsInForce(v, client, provider, date);
  const usage = code === DATA_USAGE_SERVICE;
  const items = [...new Set(ags.flatMap((a) => a.items.filter((i) => USAGE_ITEM.test(i) === usage)))].sort();
  const history = [...new Set(ags.flatMap((a) => a.history.map((h) => h.item)))].filter((i) => items.includes(i)).sort();
  const errors = { '400': { description: 'Client.BadRequest' }, '500': { description: 'an X-Road error: X-Road-Error and {type, message, detail}' } };
  const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  const paths: Record<string, unknown> = {};
  if (items.length && usage) {
    paths['/{id}'] = {
      get: {
        operationId: 'usageRecords',
        summary: 'A person\'s access records on this register, newest first, each with its transparency-log inclusion proof',
        parameters: [idParam, { name: 'items', in: 'query', required: true, schema: { type: 'string', enum: items } }, { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1 } }, { name: 'pageSize', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } }],
        responses: { '200': { description: 'the records' }, ...errors },
      },
    };
  } else if (items.length) {
    const time = history.length
      ? [
          { name: 'asAt', in: 'query', description: `valid-time date; granted only for ${history.join(', ')}`, schema: { type: 'string', format: 'date' } },
          { name: 'knownAt', in: 'query', description: `transaction-time instant; granted only for ${history.join(', ')}`, schema: { type: 'string', format: 'date-time' } },
        ]
      : [];
    paths['/{id}'] = {
      get: {
        operationId: 'read',
        summary: 'Items of a record, each in a {value, source, lastUpdated, classification} envelope',
        parameters: [idParam, { name: 'items', in: 'query', required: true, description: 'comma-separated; only items granted to this client', schema: { type: 'string' }, 'x-onceonly-items': items }, ...time],
        responses: { '200': { description: 'the items asked for' }, '404': { description: 'unknown_subject' }, ...errors },
      },
    };
    paths['/{id}/exists'] = { get: { operationId: 'exists', summary: 'Whether the record exists; releases nothing else', parameters: [idParam], responses: { '200': { description: '{exists}' }, ...errors } } };
  }
  return {
    openapi: '3.1.0',
    info: { title: `${provider}/${code} through the exchange`, version: '1', description: 'Only what the exchange lets this client do under its agreements in force today.' },
    paths,
  };
}
