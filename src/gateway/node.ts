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
import { generateKeyPairSync } from 'node:crypto';
import { ERROR_STATUS, OnceOnlyError, type ErrorType } from '../core/errors.ts';
import { generateSigningKey, loadPrivateKey, privateKeyPem, publicJwk } from '../core/crypto.ts';
import { parseSubsystemId } from '../core/ids.ts';
import { openStore, type Store } from '../store/db.ts';
import type { Anchor } from '../central/types.ts';
import { verifyGlobalConfiguration } from '../central/conf.ts';
import { ConfClient } from './confclient.ts';
import { Gateway, type ServiceRegistration } from './gateway.ts';
import { MessageLog } from './messagelog.ts';
import { TransparencyLog } from '../transparency/log.ts';
import { AccessRecorder } from '../transparency/access.ts';
import { ConsentStore } from '../consent/consent.ts';
import { consentRoutes, type PersonCredential } from '../consent/routes.ts';
import { PreviewStore } from '../preview/preview.ts';
import { previewRoutes } from '../preview/routes.ts';
import type { Agreement } from '../catalogue/agreements.ts';
import { request } from 'undici';
import { GatewayMetrics } from './metrics.ts';
import { createClientServer, createProviderServer } from './server.ts';
import type { App } from '../core/http.ts';

/** `gateway.json`. */
export interface GatewaySettings {
  id: string;
  /** Where other gateways reach the provider side (what the central publishes). */
  address: string;
  client: { host: string; port: number };
  provider: { host: string; port: number };
  services: Record<string, Record<string, ServiceRegistration>>;
  logBodies: boolean;
  maxBodyBytes: number;
  /** Global configuration fetch interval, ms. */
  confIntervalMs: number;
}

const FILES = { settings: 'gateway.json', anchor: 'anchor.json', tlsKey: 'tls.key.pem', tlsCert: 'tls.cert.pem', signingKey: 'signing.key.pem', store: 'gateway.sqlite' } as const;

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
}

/** Creates a gateway directory: keys, certificate issued by the central, settings. */
export async function initGateway(o: InitGatewayOptions): Promise<GatewaySettings> {
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
    }),
  });
  const body = (await res.json()) as { tlsCertificate?: string; message?: string; type?: string };
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
  return settings;
}

/** Reads `gateway.json`. */
export function readSettings(dir: string): GatewaySettings {
  const file = join(dir, FILES.settings);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as GatewaySettings;
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `cannot read the gateway settings: ${e instanceof Error ? e.message : String(e)}`, { file });
  }
}

/** Registers (or replaces) a service of one of this gateway's subsystems in `gateway.json`. */
export function addService(dir: string, subsystem: string, serviceCode: string, reg: ServiceRegistration): GatewaySettings {
  const s = readSettings(dir);
  const sub = parseSubsystemId(subsystem, 'subsystem');
  const gw = parseSubsystemId(s.id, 'id');
  if (sub.instance !== gw.instance || sub.memberClass !== gw.memberClass || sub.memberCode !== gw.memberCode) {
    throw new OnceOnlyError('invalid_request', 'a gateway serves only its own member\'s subsystems', { field: 'subsystem', expected: `a subsystem of ${gw.instance}/${gw.memberClass}/${gw.memberCode}` });
  }
  try {
    new URL(reg.url);
  } catch {
    throw new OnceOnlyError('invalid_request', 'the service URL is not a URL', { field: 'url' });
  }
  (s.services[subsystem] ??= {})[serviceCode] = reg;
  // Service registrations may hold credentials (the registry's bearer token).
  writeSecret(join(dir, FILES.settings), JSON.stringify(s, null, 2));
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
  stop(): Promise<void>;
}

/**
 * The people's bearer credentials for the consent API (`consent-credentials.json` in the gateway
 * directory, `[{token, person}]`): a stand-in for citizen sign-in, which comes with the portal.
 */
function readConsentCredentials(dir: string): PersonCredential[] {
  const file = join(dir, 'consent-credentials.json');
  if (!existsSync(file)) return [];
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `${file} is not JSON: ${(e as Error).message}`, { file });
  }
  if (!Array.isArray(v) || !v.every((c) => typeof c === 'object' && c !== null && typeof (c as PersonCredential).token === 'string' && typeof (c as PersonCredential).person === 'string')) {
    throw new OnceOnlyError('invalid_file', `${file} must be a list of {token, person}`, { file, expected: '[{"token": "…", "person": "P-…"}]' });
  }
  return v as PersonCredential[];
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
    const gateway = new Gateway({ id: settings.id, db: store.db, sqlite: store.sqlite, conf, log, access, consents, previews, metrics, signingKey, tls, services: settings.services, logBodies: settings.logBodies, maxBodyBytes: settings.maxBodyBytes, ...nowOpt });
    const client = await createClientServer(gateway, conf, metrics, { maxBodyBytes: settings.maxBodyBytes });
    // The person's pages and API are served by the provider organisation's gateway on its own side
    // (the provider side demands gateway certificates a browser does not have).
    await client.register(previewRoutes, { previews });
    const credentials = readConsentCredentials(dir);
    if (credentials.length) await client.register(consentRoutes, { consents, credentials, receiptKey: signingKey, issuer: settings.id });
    const provider = await createProviderServer(gateway, { ...tls, ca: conf.held()!.caCertificate }, { maxBodyBytes: settings.maxBodyBytes });
    clientUrl = await client.listen({ host: settings.client.host, port: settings.client.port });
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
    return { gateway, conf, log, store, client, provider, clientUrl, providerUrl, stop };
  } catch (e) {
    await store.close();
    throw e;
  }
}
