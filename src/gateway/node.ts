/**
 * @module gateway/node
 * A gateway as an operator runs it: a directory holding its settings (`gateway.json`), the
 * anchor, and its private keys (mode 0600), plus a store (`gateway.sqlite` in the directory, or
 * PostgreSQL via DATABASE_URL so that several processes can share one gateway's state).
 * `initGateway` makes the keys and has the central issue the TLS certificate; `startGateway`
 * runs both sides.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate, createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { checker } from '../core/schema.ts';
import { ERROR_STATUS, OnceOnlyError, type ErrorType } from '../core/errors.ts';
import { generateSigningKey, loadPrivateKey, privateKeyPem, publicJwk } from '../core/crypto.ts';
import { checkParts, formatClientId, memberOfId, parseClientId, parseSubsystemId } from '../core/ids.ts';
import { openStore, type Store } from '../store/db.ts';
import type { Anchor } from '../central/types.ts';
import { verifyGlobalConfiguration } from '../central/conf.ts';
import { ConfClient } from './confclient.ts';
import { Gateway, ServiceRegistrationSchema, type ServiceRegistration } from './gateway.ts';
import { ClientAuthSchema, checkClientAuthSettings, isLoopback, type ClientAuth } from './isauth.ts';
import { createSelfSignedServerCertificate } from '../central/pki.ts';
import { MessageLog } from './messagelog.ts';
import { TransparencyLog } from '../transparency/log.ts';
import { AccessRecorder } from '../transparency/access.ts';
import { ConsentStore } from '../consent/consent.ts';
import { consentRoutes } from '../consent/routes.ts';
import { readPersonCredentials } from '../consent/credentials.ts';
import { PreviewStore } from '../preview/preview.ts';
import { previewRoutes } from '../preview/routes.ts';
import type { Agreement } from '../catalogue/agreements.ts';
import { request } from 'undici';
import { GatewayMetrics } from './metrics.ts';
import { createClientServer, createProviderServer } from './server.ts';
import type { App } from '../core/http.ts';

/** `gateway.json`, checked when it is read (unknown keys refused: a misspelt setting is not silently ignored). */
export const GatewaySettingsSchema = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 1100 }),
    /** Where other gateways reach the provider side (what the central publishes). */
    address: Type.String({ minLength: 1, maxLength: 2000 }),
    /** The client side, for the organisation's own systems; `tls: true` to listen with TLS (and allow `tls` client authentication). */
    client: Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 0, maximum: 65535 }), tls: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
    provider: Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 0, maximum: 65535 }) }, { additionalProperties: false }),
    services: Type.Record(Type.String(), Type.Record(Type.String(), ServiceRegistrationSchema)),
    /** Information-system authentication per client subsystem (gateway/isauth). */
    clients: Type.Optional(Type.Record(Type.String(), ClientAuthSchema)),
    logBodies: Type.Boolean(),
    maxBodyBytes: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024 }),
    /** Global configuration fetch interval, ms. */
    confIntervalMs: Type.Integer({ minimum: 100, maximum: 3_600_000 }),
  },
  { additionalProperties: false },
);
export type GatewaySettings = Static<typeof GatewaySettingsSchema>;
const checkSettings = checker(GatewaySettingsSchema, 'gateway.json', 'invalid_file');

const FILES = { settings: 'gateway.json', anchor: 'anchor.json', tlsKey: 'tls.key.pem', tlsCert: 'tls.cert.pem', signingKey: 'signing.key.pem', store: 'gateway.sqlite', clientTlsKey: 'client-tls.key.pem', clientTlsCert: 'client-tls.cert.pem' } as const;

function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** Reads and minimally validates an anchor file. */
export function readAnchor(file: string): Anchor {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `cannot read the anchor: ${e instanceof Error ? e.message : String(e)}`, { file, expected: 'the anchor.json written by `onceonly central init`' });
  }
  const a = doc as Partial<Anchor>;
  if (a.kind !== 'onceonly-anchor' || typeof a.centralUrl !== 'string' || typeof a.instance !== 'string' || a.publicKey?.kty !== 'OKP') {
    throw new OnceOnlyError('invalid_file', 'this is not an onceonly anchor', { file, expected: 'kind "onceonly-anchor", instance, centralUrl and publicKey' });
  }
  return a as Anchor;
}

export interface InitGatewayOptions {
  dir: string;
  anchorFile: string;
  id: string;
  /** Provider-side address other gateways use, e.g. https://127.0.0.1:8611. */
  address: string;
  clientPort: number;
  providerPort: number;
  /** The central's management token (given by the central operator). */
  token: string;
  /** Central URL override (defaults to the anchor's). */
  centralUrl?: string;
  /** The member's subsystems this gateway is to serve; with a registration token they await the operator's approval. */
  subsystems?: readonly string[];
}

/**
 * Creates a gateway directory: keys, certificate issued by the central, settings. `status` is
 * `pending` when the registration awaits the central operator's approval (a registration token).
 */
export async function initGateway(o: InitGatewayOptions): Promise<GatewaySettings & { status: 'pending' | 'active' }> {
  const gw = parseSubsystemId(o.id, 'id');
  if (existsSync(join(o.dir, FILES.settings))) throw new OnceOnlyError('conflict', `a gateway already exists in ${o.dir}`, { field: 'dir', expected: 'an empty directory' });
  let address: URL;
  try {
    address = new URL(o.address);
  } catch {
    throw new OnceOnlyError('invalid_request', 'the address is not a URL', { field: 'address', expected: 'https://HOST:PORT' });
  }
  if (address.protocol !== 'https:') throw new OnceOnlyError('invalid_request', 'the provider side is reached over HTTPS', { field: 'address', expected: 'https://HOST:PORT' });
  const anchor = readAnchor(o.anchorFile);
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const tls = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signing = generateSigningKey();
  const res = await fetch(new URL('/manage/gateways', o.centralUrl ?? anchor.centralUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${o.token}` },
    body: JSON.stringify({
      id: o.id,
      member: `${gw.instance}/${gw.memberClass}/${gw.memberCode}`,
      address: address.origin,
      tlsPublicKey: tls.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      signingKey: publicJwk(signing.publicKey),
      ...(o.subsystems ? { subsystems: o.subsystems } : {}),
    }),
  });
  const body = (await res.json()) as { tlsCertificate?: string; message?: string; type?: string; status?: 'pending' | 'active' };
  if (res.status !== 201 || !body.tlsCertificate) {
    // The central's own error type says what to fix (a used token, another member's id, …).
    const type = typeof body.type === 'string' && Object.hasOwn(ERROR_STATUS, body.type) ? (body.type as ErrorType) : 'invalid_request';
    throw new OnceOnlyError(type, `the central refused the registration: ${body.message ?? res.status}`, { field: 'id', centralError: body.type });
  }
  writeSecret(join(o.dir, FILES.tlsKey), tls.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  writeSecret(join(o.dir, FILES.signingKey), privateKeyPem(signing.privateKey));
  writeFileSync(join(o.dir, FILES.tlsCert), body.tlsCertificate);
  writeFileSync(join(o.dir, FILES.anchor), JSON.stringify(anchor, null, 2));
  const settings: GatewaySettings = {
    id: o.id,
    address: address.origin,
    client: { host: '127.0.0.1', port: o.clientPort },
    provider: { host: address.hostname, port: o.providerPort },
    services: {},
    logBodies: false,
    maxBodyBytes: 4 * 1024 * 1024,
    confIntervalMs: 60_000,
  };
  writeSecret(join(o.dir, FILES.settings), JSON.stringify(settings, null, 2));
  return { ...settings, status: body.status === 'pending' ? 'pending' : 'active' };
}

/** Reads and checks `gateway.json`. */
export function readSettings(dir: string): GatewaySettings {
  const file = join(dir, FILES.settings);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `cannot read the gateway settings: ${e instanceof Error ? e.message : String(e)}`, { file });
  }
  try {
    return checkSettings(doc, file);
  } catch (e) {
    throw new OnceOnlyError('invalid_file', (e as OnceOnlyError).message, { ...(e as OnceOnlyError).detail, file });
  }
}

/** Writes `gateway.json` (mode 0600: service registrations may carry credentials), checked first. */
export function writeSettings(dir: string, s: GatewaySettings): void {
  writeSecret(join(dir, FILES.settings), JSON.stringify(checkSettings(s, 'gateway.json'), null, 2));
}

/**
 * Sets how an information system authenticates as `client` (issue 10, hole 4): `none`, `tls` with
 * a certificate file (its SHA-256 fingerprint is registered), or `bearer` (a new credential is
 * made, returned once, and only its SHA-256 kept).
 */
export function setClientAuth(dir: string, client: string, mode: 'none' | 'tls' | 'bearer', opts: { certificatePem?: string } = {}): { token?: string; fingerprint?: string } {
  const s = readSettings(dir);
  const id = formatClientId(parseClientId(client, 'client'));
  if (memberOfId(id) !== memberOfId(s.id)) throw new OnceOnlyError('invalid_request', 'a gateway authenticates only its own member\'s clients', { field: 'client', expected: `a subsystem of ${memberOfId(s.id)}` });
  const clients = { ...(s.clients ?? {}) };
  const entry: ClientAuth = { ...(clients[id] ?? { auth: mode }), auth: mode };
  const out: { token?: string; fingerprint?: string } = {};
  if (mode === 'tls') {
    if (!opts.certificatePem) throw new OnceOnlyError('invalid_request', 'tls authentication registers a certificate', { field: 'cert', expected: 'the PEM certificate the system presents' });
    let fp: string;
    try {
      fp = new X509Certificate(opts.certificatePem).fingerprint256.replaceAll(':', '').toLowerCase();
    } catch {
      throw new OnceOnlyError('invalid_file', 'the certificate is not a PEM X.509 certificate', { field: 'cert', expected: '-----BEGIN CERTIFICATE-----' });
    }
    entry.certificates = [...new Set([...(entry.certificates ?? []), fp])];
    out.fingerprint = fp;
  }
  if (mode === 'bearer') {
    const token = randomBytes(32).toString('base64url');
    entry.tokens = [...(entry.tokens ?? []), createHash('sha256').update(token).digest('hex')];
    out.token = token;
  }
  clients[id] = entry;
  writeSettings(dir, { ...s, clients });
  return out;
}

/** Registers (or replaces) a service of one of this gateway's subsystems in `gateway.json`. */
export function addService(dir: string, subsystem: string, serviceCode: string, reg: ServiceRegistration): GatewaySettings {
  const s = readSettings(dir);
  const sub = parseSubsystemId(subsystem, 'subsystem');
  const gw = parseSubsystemId(s.id, 'id');
  if (sub.instance !== gw.instance || sub.memberClass !== gw.memberClass || sub.memberCode !== gw.memberCode) {
    throw new OnceOnlyError('invalid_request', 'a gateway serves only its own member\'s subsystems', { field: 'subsystem', expected: `a subsystem of ${gw.instance}/${gw.memberClass}/${gw.memberCode}` });
  }
  checkParts([serviceCode], 'serviceCode', 'SERVICE');
  for (const [field, url] of [['url', reg.url], ['openapi', reg.openapi]] as const) {
    if (url === undefined) continue;
    try {
      new URL(url);
    } catch {
      throw new OnceOnlyError('invalid_request', `the service ${field} is not a URL`, { field, expected: 'an http(s) URL' });
    }
  }
  (s.services[subsystem] ??= {})[serviceCode] = reg;
  writeSettings(dir, s);
  return s;
}

/** A running gateway. */
export interface RunningGateway {
  gateway: Gateway;
  conf: ConfClient;
  log: MessageLog;
  store: Store;
  client: App;
  provider: App;
  clientUrl: string;
  providerUrl: string;
  /** What the operator should know at start-up (e.g. information systems not authenticated). */
  warnings: string[];
  stop(): Promise<void>;
}

/** What a preview page shows: the items' current values, read from the provider's registry service. */
async function registryValues(services: Record<string, ServiceRegistration> | undefined, person: string, items: readonly string[]): Promise<Record<string, unknown>> {
  const service = Object.values(services ?? {}).find((s) => s.kind === 'registry');
  if (!service) throw new OnceOnlyError('service_unavailable', 'no registry service is registered for this subsystem');
  const res = await request(`${service.url.replace(/\/$/, '')}/${encodeURIComponent(person)}?items=${items.map(encodeURIComponent).join(',')}`, { headers: { accept: 'application/json', ...(service.headers ?? {}) }, headersTimeout: service.timeoutMs, bodyTimeout: service.timeoutMs });
  const body = (await res.body.json()) as { items?: Record<string, unknown> };
  if (res.statusCode !== 200 || !body.items) throw new OnceOnlyError('service_failed', `the registry answered ${res.statusCode} for the preview`);
  return body.items;
}

/** The name of a gateway's transparency log: its id, then `/transparency`. */
export function transparencyLogId(gatewayId: string): string {
  return `${gatewayId}/transparency`;
}

/** The client side's TLS key and certificate, made (self-signed) on first use and kept in the directory. */
async function clientTlsFiles(dir: string, settings: GatewaySettings): Promise<{ key: string; cert: string }> {
  const keyFile = join(dir, FILES.clientTlsKey);
  const certFile = join(dir, FILES.clientTlsCert);
  if (!existsSync(keyFile) || !existsSync(certFile)) {
    const made = await createSelfSignedServerCertificate(settings.id, [settings.client.host]);
    writeSecret(keyFile, made.privateKeyPem);
    writeFileSync(certFile, made.certificatePem);
  }
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}

/** Opens a gateway's store: PostgreSQL when a URL is given, else `gateway.sqlite` in its directory. */
export function openGatewayStore(dir: string, databaseUrl?: string, pgSchema?: string): Promise<Store> {
  return openStore({ databaseUrl, sqliteFile: join(dir, FILES.store), ...(pgSchema ? { pgSchema } : {}) });
}

/** Starts a gateway from its directory. Needs a valid global configuration (stored or fetched). */
export async function startGateway(dir: string, opts: { databaseUrl?: string | undefined; pgSchema?: string; settings?: Partial<GatewaySettings>; now?: () => Date } = {}): Promise<RunningGateway> {
  const settings = { ...readSettings(dir), ...opts.settings };
  const anchor = readAnchor(join(dir, FILES.anchor));
  const store = await openGatewayStore(dir, opts.databaseUrl, opts.pgSchema);
  const nowOpt = opts.now ? { now: opts.now } : {};
  try {
    const conf = new ConfClient({ db: store.db, gatewayId: settings.id, anchor, verify: verifyGlobalConfiguration, intervalMs: settings.confIntervalMs, ...nowOpt });
    await conf.loadStored();
    await conf.fetch().catch((e: unknown) => {
      // Start on a stored copy if the central is down; without any copy the gateway cannot start.
      if (!conf.held()) throw e;
    });
    const signingKey = loadPrivateKey(readFileSync(join(dir, FILES.signingKey), 'utf8'));
    const tls = { key: readFileSync(join(dir, FILES.tlsKey), 'utf8'), cert: readFileSync(join(dir, FILES.tlsCert), 'utf8') };
    // The gateway's transparency log, signed with its signing key (published in the configuration).
    const tlog = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: transparencyLogId(settings.id), signingKey, ...nowOpt });
    const access = new AccessRecorder({ db: store.db, log: tlog, gatewayId: settings.id });
    const log = new MessageLog({ db: store.db, dialect: store.dialect, sqlite: store.sqlite, gatewayId: settings.id, signingKey, confSerial: () => conf.held()?.serial ?? 0, onRelease: (trx, releases) => access.write(trx, releases), ...nowOpt });
    const metrics = new GatewayMetrics();
    const agreementById = (id: string): Agreement | undefined => conf.held()?.agreements.find((a) => a.id === id);
    // Consent events go to the transparency log in the transaction that records them.
    const consents = new ConsentStore({ db: store.db, agreements: agreementById, onEvent: async (event, tx) => void (await tlog.appendIn(tx, [event])), ...nowOpt });
    let clientUrl = '';
    const previews = new PreviewStore({ db: store.db, signingKey, baseUrl: () => clientUrl, fetchValues: (person, items, provider) => registryValues(settings.services[provider], person, items), ...nowOpt });
    const loopback = isLoopback(settings.client.host);
    const clients = settings.clients ?? {};
    const warnings = checkClientAuthSettings(clients, loopback, settings.client.tls === true);
    if (!loopback && settings.client.tls !== true) throw new OnceOnlyError('invalid_file', 'a client side reachable from other machines listens with TLS', { file: join(dir, FILES.settings), field: 'client.tls', expected: 'true, or client.host on loopback' });
    const unauthenticated = (conf.held()?.gateways.find((g) => g.id === settings.id)?.subsystems ?? []).filter((x) => !Object.hasOwn(clients, x));
    if (loopback && unauthenticated.length) warnings.push(`information systems are not authenticated for ${unauthenticated.join(', ')}: any process on this machine may speak as them (loopback only; set clients in gateway.json)`);
    const gateway = new Gateway({ id: settings.id, db: store.db, sqlite: store.sqlite, conf, log, access, consents, previews, metrics, signingKey, tls, services: settings.services, clients, clientLoopback: loopback, logBodies: settings.logBodies, maxBodyBytes: settings.maxBodyBytes, ...nowOpt });
    const clientTls = settings.client.tls ? await clientTlsFiles(dir, settings) : undefined;
    const client = await createClientServer(gateway, conf, metrics, { maxBodyBytes: settings.maxBodyBytes, tls: clientTls });
    // The person's pages and API are served by the provider organisation's gateway on its own side
    // (the provider side demands gateway certificates a browser does not have). The person proves
    // who they are with a credential only they hold (consent/credentials) until citizen sign-in.
    const people = readPersonCredentials(dir);
    await client.register(previewRoutes, { previews, authenticate: (c) => people.personFor(c) });
    if (people.size) await client.register(consentRoutes, { consents, credentials: people, receiptKey: signingKey, issuer: settings.id });
    const provider = await createProviderServer(gateway, { ...tls, ca: conf.held()!.caCertificate }, { maxBodyBytes: settings.maxBodyBytes });
    clientUrl = (await client.listen({ host: settings.client.host, port: settings.client.port })).replace(/^http:/, clientTls ? 'https:' : 'http:');
    // Fastify names the scheme from its own options; the server factory made it HTTPS.
    const providerUrl = (await provider.listen({ host: settings.provider.host, port: settings.provider.port })).replace(/^http:/, 'https:');
    conf.start();
    log.start();
    tlog.start();
    gateway.start();
    const stop = async (): Promise<void> => {
      conf.stop();
      await Promise.allSettled([client.close(), provider.close()]);
      await gateway.close();
      await log.stop();
      await tlog.stop();
      await store.close();
    };
    return { gateway, conf, log, store, client, provider, clientUrl, providerUrl, warnings, stop };
  } catch (e) {
    await store.close();
    throw e;
  }
}
