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
import { checkParts, formatClientId, formatSubsystemId, memberOfId, parseClientId, parseSubsystemId } from '../core/ids.ts';
import { openStore, type Store } from '../store/db.ts';
import type { Anchor, GlobalConfiguration } from '../central/types.ts';
import { verifyGlobalConfiguration } from '../central/conf.ts';
import { ConfClient } from './confclient.ts';
import { Gateway, ServiceRegistrationSchema, type ServiceRegistration } from './gateway.ts';
import { ClientAuthSchema, checkClientAuthSettings, isLoopback, type ClientAuth } from './isauth.ts';
import { createSelfSignedServerCertificate } from '../central/pki.ts';
import { MessageLog } from './messagelog.ts';
import { TransparencyLog } from '../transparency/log.ts';
import { AccessRecorder } from '../transparency/access.ts';
import { ConsentStore, consentLogRecord } from '../consent/consent.ts';
import { consentRoutes } from '../consent/routes.ts';
import { readPersonCredentials } from '../consent/credentials.ts';
import { PreviewStore } from '../preview/preview.ts';
import { previewRoutes } from '../preview/routes.ts';
import type { Agreement } from '../catalogue/agreements.ts';
import { request } from 'undici';
import { GatewayMetrics } from './metrics.ts';
import { createClientServer, createProviderServer } from './server.ts';
import type { PeerPool } from './peers.ts';
import { cosignThroughPeers, gatewayWitness, transparencyLogId } from './witnessing.ts';
import type { App } from '../core/http.ts';
import { GatewayEvents, WebhookSchema, type RegisterFeed } from './events.ts';
import { EventStore } from '../events/store.ts';
import { newWebhookSecret } from '../events/format.ts';
import { Relay } from '../events/relay.ts';
import { DEFAULT_RETRY, EmbeddedTransport, type RetryPolicy, type Transport } from '../events/dispatch.ts';

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
    /**
     * Gateways (ids) asked to cosign each checkpoint of this gateway's transparency log
     * (gateway/witnessing); verifiers require a quorum of them, 2 by default.
     */
    witnesses: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 1100 }), { maxItems: 32, uniqueItems: true })),
    /** Tell Us Once: how pushed events are retried before they become dead letters (default 8 attempts, 1 s doubling to 5 min). */
    eventRetry: Type.Optional(Type.Object({ maxAttempts: Type.Integer({ minimum: 1, maximum: 100 }), baseDelayMs: Type.Integer({ minimum: 1, maximum: 3_600_000 }), maxDelayMs: Type.Integer({ minimum: 1, maximum: 86_400_000 }) }, { additionalProperties: false })),
    /** Tell Us Once: where each subscriber subsystem's system takes pushed events (gateway/events). */
    webhooks: Type.Optional(Type.Record(Type.String(), WebhookSchema)),
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

/**
 * Sets where the gateway pushes change events for one of its subsystems (Tell Us Once): the
 * subscriber system's URL, with a new Standard Webhooks secret, returned once for that system to
 * check signatures with (gateway.json, mode 0600, keeps it for signing).
 */
export function setWebhook(dir: string, subsystem: string, url: string, o: { timeoutMs?: number; secret?: string } = {}): { secret: string } {
  const s = readSettings(dir);
  const sub = formatSubsystemId(parseSubsystemId(subsystem, 'subsystem'));
  if (memberOfId(sub) !== memberOfId(s.id)) throw new OnceOnlyError('invalid_request', 'a gateway takes events only for its own member\'s subsystems', { field: 'subsystem', expected: `a subsystem of ${memberOfId(s.id)}` });
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new OnceOnlyError('invalid_request', 'the webhook is not a URL', { field: 'url', expected: 'an http(s) URL' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new OnceOnlyError('invalid_request', 'the webhook is not an http(s) URL', { field: 'url', expected: 'an http(s) URL' });
  // A given secret (one the receiving system already holds) is checked by the settings' schema.
  const secret = o.secret ?? newWebhookSecret();
  writeSettings(dir, { ...s, webhooks: { ...(s.webhooks ?? {}), [sub]: { url: u.href, secret, timeoutMs: o.timeoutMs ?? 10_000 } } });
  return { secret };
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
  /** Tell Us Once at this gateway. */
  events: GatewayEvents;
  /** The push transport, when this gateway relays a register's events. */
  transport: Transport | undefined;
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

export { transparencyLogId } from './witnessing.ts';

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

/**
 * Sets the gateways asked to cosign this gateway's transparency log checkpoints (ids checked for
 * shape here, against the global configuration when the gateway sends). Its own id is refused:
 * a log cannot witness itself.
 */
export function setWitnesses(dir: string, witnesses: readonly string[]): GatewaySettings {
  const s = readSettings(dir);
  const ids = witnesses.map((w, i) => formatSubsystemId(parseSubsystemId(w, `witnesses[${i}]`)));
  if (ids.includes(s.id)) throw new OnceOnlyError('invalid_request', 'a gateway cannot witness its own log', { field: 'witnesses', expected: 'ids of other gateways' });
  if (new Set(ids).size !== ids.length) throw new OnceOnlyError('invalid_request', 'a witness is named twice', { field: 'witnesses' });
  if (ids.length > 32) throw new OnceOnlyError('invalid_request', 'at most 32 witnesses', { field: 'witnesses' });
  const next = { ...s, witnesses: ids };
  writeSettings(dir, next);
  return next;
}

/**
 * The global configuration a gateway holds, read from its store (verified against its anchor),
 * for tools that act from a gateway's directory without starting it (the tracker, `transparency
 * verify --keys-from`).
 */
export async function readHeldConfiguration(dir: string): Promise<{ conf: GlobalConfiguration; settings: GatewaySettings }> {
  const settings = readSettings(dir);
  const store = await openGatewayStore(dir, process.env['DATABASE_URL'] || undefined);
  try {
    const client = new ConfClient({ db: store.db, gatewayId: settings.id, anchor: readAnchor(join(dir, FILES.anchor)), verify: verifyGlobalConfiguration });
    await client.loadStored();
    const conf = client.held();
    if (!conf) throw new OnceOnlyError('global_conf_expired', `gateway ${settings.id} holds no global configuration yet`, { field: '--dir', expected: 'the directory of a gateway that has run' });
    return { conf, settings };
  } finally {
    await store.close();
  }
}

/**
 * Starts relaying the registers' change events to subscribers and pushing them: over NATS
 * JetStream when a NATS URL is configured, else the embedded dispatcher over the store's queue.
 * Nothing runs at a gateway that relays no register.
 */
async function startTellUsOnce(events: GatewayEvents, registers: Record<string, RegisterFeed>, gatewayId: string, natsUrl: string | undefined, policy: RetryPolicy, warn: (m: string) => void): Promise<{ transport: Transport | undefined; stop: () => Promise<void> }> {
  const providers = Object.keys(registers);
  if (providers.length === 0) return { transport: undefined, stop: () => Promise.resolve() };
  const onError = (what: string) => (e: unknown): void => warn(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  // The NATS client is loaded only where it is configured: the embedded default needs none of it.
  const transport: Transport = natsUrl
    ? new (await import('../events/jetstream.ts')).JetStreamTransport({ servers: natsUrl, store: events.store, policy, onError: onError('the JetStream transport failed') })
    : new EmbeddedTransport({ store: events.store, policy, leaseName: `dispatch:${gatewayId}`, onError: onError('the event dispatcher failed') });
  await transport.start((e) => events.deliver(e));
  const relays = providers.map((provider) => new Relay({
    store: events.store,
    provider,
    fetchEvents: (after, wait, signal) => events.outbox(provider, after, wait, signal),
    latest: async () => (await events.types(provider, true)).latest,
    types: async () => (await events.types(provider)).types,
    readItems: (subject, items, asAt, knownAt) => events.readItems(provider, subject, items, asAt, knownAt),
    entitled: (s, kind, items) => events.entitled(s, kind, items, events.cachedTypes(provider)),
    queued: () => transport.wake(),
    onError: onError(`relaying the change events of ${provider} failed`),
  }));
  for (const r of relays) r.start();
  return {
    transport,
    stop: async () => {
      await Promise.allSettled(relays.map((r) => r.stop()));
      await transport.stop();
    },
  };
}

/** Opens a gateway's store: PostgreSQL when a URL is given, else `gateway.sqlite` in its directory. */
export function openGatewayStore(dir: string, databaseUrl?: string, pgSchema?: string): Promise<Store> {
  return openStore({ databaseUrl, sqliteFile: join(dir, FILES.store), ...(pgSchema ? { pgSchema } : {}) });
}

/** Starts a gateway from its directory. Needs a valid global configuration (stored or fetched). */
export async function startGateway(dir: string, opts: { databaseUrl?: string | undefined; pgSchema?: string; settings?: Partial<GatewaySettings>; now?: () => Date; onWarning?: (message: string) => void; natsUrl?: string | undefined } = {}): Promise<RunningGateway> {
  const settings = { ...readSettings(dir), ...opts.settings };
  // Background problems after start (a witness down): told as they happen, without personal data.
  const warn = opts.onWarning ?? ((m: string) => void process.stderr.write(`warning: ${m}\n`));
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
    // Set once the gateway (and its connections to peers) exists, before anything is signed.
    const late: { peers?: PeerPool } = {};
    const cosign = cosignThroughPeers({
      gatewayId: settings.id,
      witnesses: settings.witnesses ?? [],
      conf,
      peers: () => late.peers!,
      log: () => tlog,
      // Sizes and statuses only: a refusal by an honest witness is evidence of a rewritten log.
      onOutcome: (o) => {
        if (!o.ok) warn(`witness ${o.witness} did not cosign the transparency log's checkpoint: ${o.reason ?? 'no reason given'}`);
      },
    });
    const tlog = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: transparencyLogId(settings.id), signingKey, cosign, onError: (e) => warn(`the transparency log could not sign or send a checkpoint: ${e instanceof Error ? e.message : String(e)}`), ...nowOpt });
    const access = new AccessRecorder({ db: store.db, log: tlog, gatewayId: settings.id });
    const log = new MessageLog({ db: store.db, dialect: store.dialect, sqlite: store.sqlite, gatewayId: settings.id, signingKey, confSerial: () => conf.held()?.serial ?? 0, onRelease: (trx, releases) => access.write(trx, releases), ...nowOpt });
    const metrics = new GatewayMetrics();
    const agreementById = (id: string): Agreement | undefined => conf.held()?.agreements.find((a) => a.id === id);
    // Consent events go to the transparency log in the transaction that records them.
    const consents = new ConsentStore({ db: store.db, agreements: agreementById, onEvent: async (event, tx) => void (await tlog.appendIn(tx, [consentLogRecord(event, settings.id)])), ...nowOpt });
    let clientUrl = '';
    const previews = new PreviewStore({ db: store.db, signingKey, baseUrl: () => clientUrl, fetchValues: (person, items, provider) => registryValues(settings.services[provider], person, items), ...nowOpt });
    const loopback = isLoopback(settings.client.host);
    const clients = settings.clients ?? {};
    const warnings = checkClientAuthSettings(clients, loopback, settings.client.tls === true);
    if (!loopback && settings.client.tls !== true) throw new OnceOnlyError('invalid_file', 'a client side reachable from other machines listens with TLS', { file: join(dir, FILES.settings), field: 'client.tls', expected: 'true, or client.host on loopback' });
    const unauthenticated = (conf.held()?.gateways.find((g) => g.id === settings.id)?.subsystems ?? []).filter((x) => !Object.hasOwn(clients, x));
    if (loopback && unauthenticated.length) warnings.push(`information systems are not authenticated for ${unauthenticated.join(', ')}: any process on this machine may speak as them (loopback only; set clients in gateway.json)`);
    // Tell Us Once: the registers this gateway relays change events of, and its subscribers' webhooks.
    const registers: Record<string, RegisterFeed> = {};
    for (const [provider, svcs] of Object.entries(settings.services)) {
      const service = Object.values(svcs).find((x) => x.kind === 'registry' && x.events !== undefined);
      if (service) registers[provider] = { provider, service, eventsUrl: service.events! };
    }
    const late2: { gateway?: Gateway } = {};
    const events = new GatewayEvents({ gatewayId: settings.id, store: new EventStore(store.db), conf: () => conf.current(), registers, webhooks: settings.webhooks ?? {}, send: (req) => late2.gateway!.client.handle(req), ...nowOpt });
    const gateway = new Gateway({ id: settings.id, db: store.db, sqlite: store.sqlite, conf, log, access, consents, previews, events, metrics, signingKey, tls, services: settings.services, clients, clientLoopback: loopback, logBodies: settings.logBodies, maxBodyBytes: settings.maxBodyBytes, ...nowOpt });
    late.peers = gateway.peers;
    late2.gateway = gateway;
    const clientTls = settings.client.tls ? await clientTlsFiles(dir, settings) : undefined;
    const client = await createClientServer(gateway, conf, metrics, { maxBodyBytes: settings.maxBodyBytes, tls: clientTls });
    // The person's pages and API are served by the provider organisation's gateway on its own side
    // (the provider side demands gateway certificates a browser does not have). The person proves
    // who they are with a credential only they hold (consent/credentials) until citizen sign-in.
    const people = readPersonCredentials(dir);
    await client.register(previewRoutes, { previews, authenticate: (c) => people.personFor(c) });
    if (people.size) await client.register(consentRoutes, { consents, credentials: people, receiptKey: signingKey, issuer: settings.id });
    const witness = gatewayWitness({ db: store.db, gatewayId: settings.id, signingKey, conf, now: opts.now });
    const provider = await createProviderServer(gateway, { ...tls, ca: conf.held()!.caCertificate }, { maxBodyBytes: settings.maxBodyBytes, witness });
    clientUrl = (await client.listen({ host: settings.client.host, port: settings.client.port })).replace(/^http:/, clientTls ? 'https:' : 'http:');
    // Fastify names the scheme from its own options; the server factory made it HTTPS.
    const providerUrl = (await provider.listen({ host: settings.provider.host, port: settings.provider.port })).replace(/^http:/, 'https:');
    conf.start();
    log.start();
    tlog.start();
    gateway.start();
    const tellUsOnce = await startTellUsOnce(events, registers, settings.id, opts.natsUrl, settings.eventRetry ?? DEFAULT_RETRY, warn);
    const stop = async (): Promise<void> => {
      await tellUsOnce.stop();
      conf.stop();
      await Promise.allSettled([client.close(), provider.close()]);
      await gateway.close();
      await log.stop();
      await tlog.stop();
      await store.close();
    };
    return { gateway, conf, log, store, client, provider, clientUrl, providerUrl, warnings, events, transport: tellUsOnce.transport, stop };
  } catch (e) {
    await store.close();
    throw e;
  }
}
