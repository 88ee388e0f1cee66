/**
 * @module central/central
 * The central authority as a library: {@link initCentral} creates one (CA, configuration-signing
 * key, first management token, anchor, seeded agreements), and {@link Central} runs it: the
 * member registry, gateway registration with certificate issuance, suspension, agreement
 * publication, and the signed global configuration. The CLI, the HTTP server and the demo all
 * go through this class.
 *
 * Every change runs in one store transaction that also bumps `state_version` (so the next
 * configuration request re-signs) and appends the admin audit entry: the change, its audit
 * record and its effect on the configuration are committed together or not at all.
 *
 * Files in the central's directory (mode 0700): `ca.key.pem` and `signing.key.pem` (0600, the
 * two secrets), `ca.cert.pem`, `anchor.json` (public; handed to gateways out of band) and, unless
 * DATABASE_URL points at PostgreSQL, `central.sqlite`.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, type KeyObject } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { OnceOnlyError, isOnceOnlyError } from '../core/errors.ts';
import { ID_PART } from '../core/ids.ts';
import { generateSigningKey, importPublicJwk, loadPrivateKey, privateKeyPem, publicJwk, safeEqual, sha256hex, type Ed25519PublicJwk } from '../core/crypto.ts';
import { DEFAULT_CATALOGUE_FILE, loadCatalogue, type Catalogue } from '../catalogue/catalogue.ts';
import { DEFAULT_AGREEMENTS_FILE, parseAgreements, type Agreement } from '../catalogue/agreements.ts';
import { readDocument, type Locator } from '../catalogue/document.ts';
import { openStore, type Store } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { appendAudit, readAuditLog, verifyAdminLog, type AuditEntry, type AuditVerification } from './audit.ts';
import { DEFAULT_VALIDITY_SECONDS, buildGlobalConfiguration, signGlobalConfiguration, type CentralState } from './conf.ts';
import { memberOf, parseGatewayId, parseMemberId, parseSubsystem } from './ids.ts';
import { certificateFingerprint, createCertificateAuthority, issueGatewayCertificate, type CertificateAuthority } from './pki.ts';
import type { Anchor, GlobalConfiguration, MemberEntry, Status, SubsystemEntry } from './types.ts';

/** File names inside a central's directory. */
export const CENTRAL_FILES = {
  anchor: 'anchor.json',
  caKey: 'ca.key.pem',
  caCert: 'ca.cert.pem',
  signingKey: 'signing.key.pem',
  sqlite: 'central.sqlite',
} as const;

/** Who did it: `cli` (local operator), `api:<token-id>` (management API), `init`. */
export type Actor = string;

/** Options of {@link initCentral}. */
export interface InitCentralOptions {
  /** Directory for keys and the anchor (created with mode 0700). */
  dir: string;
  /** X-Road instance identifier, e.g. `UK`. */
  instance: string;
  /** URL gateways fetch the configuration from, e.g. `http://127.0.0.1:8500`. */
  url: string;
  /** Store to use; default: `DIR/central.sqlite`, or PostgreSQL when `databaseUrl` is given. */
  store?: Store;
  databaseUrl?: string | undefined;
  /** Agreements seeded as version 1 (default config/agreements.yaml). */
  agreementsFile?: string | undefined;
  /** Catalogue the agreements are checked against (default config/catalogue.yaml). */
  catalogueFile?: string | undefined;
  now?: Date;
}

/** What {@link initCentral} made. */
export interface InitCentralResult {
  anchor: Anchor;
  anchorFile: string;
  /** The first management API token. Shown once; only its hash is stored. */
  token: string;
  tokenId: string;
  caCertificate: string;
  /** Number of agreements seeded. */
  agreements: number;
  /** Where the state lives (no credentials). */
  storeLocation: string;
}

/** Options of {@link Central.open}. */
export interface OpenCentralOptions {
  dir: string;
  /** Store to use (not closed by {@link Central.close}); default as in {@link initCentral}. */
  store?: Store;
  databaseUrl?: string | undefined;
  catalogueFile?: string | undefined;
  /** Validity of each signed configuration (default 600 s). */
  validitySeconds?: number;
  /** Clock, for tests. */
  clock?: () => Date;
}

/** What the central hands a newly registered gateway. */
export interface GatewayRegistration {
  tlsCertificate: string;
  caCertificate: string;
  /** SHA-256 of the certificate DER, lower-case hex. */
  fingerprint: string;
}

/** Input of {@link Central.registerGateway}. */
export interface GatewayInput {
  /** `INSTANCE/CLASS/MEMBER/GATEWAYCODE`. */
  id: string;
  /** Optional; when given it must be the member part of `id`. */
  member?: string | undefined;
  /** Base URL of the provider side, https. */
  address: string;
  /** ECDSA P-256 public key, SPKI PEM. */
  tlsPublicKey: string;
  /** Ed25519 public key for message signatures. */
  signingKey: unknown;
  /** Subsystems of its member it is to serve (X-Road's clients of a security server). */
  subsystems?: readonly string[] | undefined;
}

/** A gateway as the operator sees it. */
export interface GatewayListing {
  id: string;
  member: string;
  address: string;
  fingerprint: string;
  status: 'pending' | Status;
  subsystems: { id: string; status: 'pending' | 'active' }[];
  createdAt: string;
}

/** A signed configuration and its decoded payload. */
export interface SignedConfiguration {
  jws: string;
  conf: GlobalConfiguration;
}

/** Opens the central's store: PostgreSQL when `databaseUrl` is given, else `DIR/central.sqlite`. */
export function openCentralStore(dir: string, databaseUrl?: string): Promise<Store> {
  return databaseUrl ? openStore({ databaseUrl }) : openStore({ sqliteFile: join(dir, CENTRAL_FILES.sqlite) });
}

function checkUrl(url: string, field: string, protocols: readonly string[]): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new OnceOnlyError('invalid_value', `${field} is not a URL`, { field, expected: `a ${protocols.join(' or ')} URL` });
  }
  if (!protocols.includes(u.protocol) || u.username || u.password || u.search || u.hash) {
    throw new OnceOnlyError('invalid_value', `${field} must be a ${protocols.join(' or ')} URL without credentials, query or fragment`, { field, expected: `e.g. ${protocols[0]}//127.0.0.1:8601` });
  }
  return u;
}

/** The URL without a trailing slash, so ids and paths can be appended with one. */
function baseUrl(u: URL): string {
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

/** A new management token `oo1.<id>.<secret>`: the id names it in the audit log, the secret is 256 random bits. */
function newToken(): { id: string; token: string; hash: string } {
  const id = randomBytes(6).toString('hex');
  const token = `oo1.${id}.${randomBytes(32).toString('base64url')}`;
  return { id, token, hash: sha256hex(token) };
}

function writeSecret(file: string, text: string): void {
  // 'wx' fails if the file exists: never overwrite a key, even in a race with another init.
  writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

/**
 * Creates a central authority in `dir`: CA, configuration-signing key, a management token,
 * `anchor.json`, and in the store the counters, the token hash, agreements version 1 and the
 * first audit entry. Refuses (`conflict`) if `dir` or the store already holds a central.
 */
export async function initCentral(opts: InitCentralOptions): Promise<InitCentralResult> {
  if (!ID_PART.test(opts.instance)) throw new OnceOnlyError('invalid_identifier', 'instance is not valid', { field: 'instance', expected: '1-64 letters, digits, ".", "_" or "-", e.g. UK' });
  const url = baseUrl(checkUrl(opts.url, 'url', ['http:', 'https:']));
  const files = Object.fromEntries(Object.entries(CENTRAL_FILES).map(([k, v]) => [k, join(opts.dir, v)])) as Record<keyof typeof CENTRAL_FILES, string>;
  for (const f of [files.anchor, files.caKey, files.caCert, files.signingKey]) {
    if (existsSync(f)) throw new OnceOnlyError('conflict', `${opts.dir} already holds a central authority (${f} exists); it is never overwritten`, { file: f, expected: 'an empty or new directory' });
  }
  // Check the agreements before making anything, so a bad file leaves nothing behind.
  const catalogue = loadCatalogue(opts.catalogueFile ?? DEFAULT_CATALOGUE_FILE);
  const agreementsFile = opts.agreementsFile ?? DEFAULT_AGREEMENTS_FILE;
  const { doc, locate } = readDocument(agreementsFile);
  const agreements = parseAgreements(doc, agreementsFile, catalogue, locate).list();

  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  chmodSync(opts.dir, 0o700);
  const store = opts.store ?? (await openCentralStore(opts.dir, opts.databaseUrl));
  const written: string[] = [];
  try {
    const existing = await store.db.selectFrom('central_counter').select('name').where('name', '=', 'conf_serial').executeTakeFirst();
    if (existing) throw new OnceOnlyError('conflict', `the store ${store.location} already holds a central authority`, { field: 'store', expected: 'a store without a central' });

    const now = opts.now ?? new Date();
    const ca = await createCertificateAuthority(opts.instance, now);
    const signing = generateSigningKey();
    const token = newToken();
    const anchor: Anchor = { kind: 'onceonly-anchor', version: 1, instance: opts.instance, centralUrl: url, publicKey: publicJwk(signing.publicKey), createdAt: now.toISOString() };

    writeSecret(files.caKey, ca.privateKeyPem);
    written.push(files.caKey);
    writeSecret(files.signingKey, privateKeyPem(signing.privateKey));
    written.push(files.signingKey);
    writeFileSync(files.caCert, ca.certificatePem, { mode: 0o644, flag: 'wx' });
    written.push(files.caCert);

    await store.db.transaction().execute(async (trx) => {
      const at = now.toISOString();
      await trx.insertInto('central_counter').values([
        { name: 'conf_serial', value: 0 },
        { name: 'state_version', value: 1 },
        { name: 'audit_seq', value: 0 },
      ]).execute();
      await trx.insertInto('central_token').values({ id: token.id, hash: token.hash, label: 'created by central init', created_at: at, revoked_at: null }).execute();
      await trx.insertInto('central_agreements').values({ version: 1, document: JSON.stringify({ agreements }), published_at: at, actor: 'init' }).execute();
      await appendAudit(trx, {
        actor: 'init',
        action: 'central.init',
        target: opts.instance,
        at: now,
        detail: { centralUrl: url, caFingerprint: certificateFingerprint(ca.certificatePem), signingKey: anchor.publicKey.x, tokenId: token.id, agreementsVersion: 1, agreements: agreements.length },
      });
    });
    // The anchor is written last: its presence means the central is complete.
    writeFileSync(files.anchor, `${JSON.stringify(anchor, null, 2)}\n`, { mode: 0o644, flag: 'wx' });
    return { anchor, anchorFile: files.anchor, token: token.token, tokenId: token.id, caCertificate: ca.certificatePem, agreements: agreements.length, storeLocation: store.location };
  } catch (e) {
    for (const f of written) rmSync(f, { force: true });
    throw e;
  } finally {
    if (!opts.store) await store.close();
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    throw new OnceOnlyError('invalid_file', `cannot read ${file}; is this a central directory made by "central init"?`, { file, expected: 'a directory made by onceonly central init' });
  }
}

function checkSigningJwk(v: unknown): Ed25519PublicJwk {
  const field = 'signingKey';
  const expected = 'an Ed25519 public JWK {"kty":"OKP","crv":"Ed25519","x":"..."} (RFC 8037)';
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OnceOnlyError('invalid_value', 'signingKey must be a JWK object', { field, expected });
  const o = v as Record<string, unknown>;
  // A private JWK sent by mistake must not end up published in the configuration.
  if ('d' in o) throw new OnceOnlyError('invalid_value', 'signingKey is a private key; send only the public part', { field, expected });
  if (o['kty'] !== 'OKP' || o['crv'] !== 'Ed25519' || typeof o['x'] !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(o['x'])) {
    throw new OnceOnlyError('invalid_value', 'signingKey is not an Ed25519 public JWK', { field, expected });
  }
  const jwk: Ed25519PublicJwk = { kty: 'OKP', crv: 'Ed25519', x: o['x'] };
  try {
    importPublicJwk(jwk);
  } catch {
    throw new OnceOnlyError('invalid_value', 'signingKey is not a valid Ed25519 point', { field, expected });
  }
  return jwk;
}

function checkName(v: unknown): string {
  if (typeof v !== 'string' || v.trim() === '' || v.length > 200 || /\p{Cc}/u.test(v)) {
    throw new OnceOnlyError('invalid_value', 'name must be 1-200 printable characters', { field: 'name', expected: 'the organisation name, e.g. "General Register Office"' });
  }
  return v.trim();
}

type Db = Kysely<Database> | Transaction<Database>;
type StatusTable = 'central_member' | 'central_subsystem' | 'central_gateway';

/** A running central authority over its directory and store. */
export class Central {
  readonly #store: Store;
  readonly #ownsStore: boolean;
  readonly #ca: CertificateAuthority;
  readonly #signingKey: KeyObject;
  readonly #catalogue: Catalogue;
  readonly #validitySeconds: number;
  readonly #clock: () => Date;
  #cache: (SignedConfiguration & { stateVersion: number; refreshAt: number }) | undefined;
  #pending: Promise<SignedConfiguration> | undefined;

  /** The anchor gateways are given. */
  readonly anchor: Anchor;

  private constructor(store: Store, ownsStore: boolean, anchor: Anchor, ca: CertificateAuthority, signingKey: KeyObject, catalogue: Catalogue, validitySeconds: number, clock: () => Date) {
    this.#store = store;
    this.#ownsStore = ownsStore;
    this.anchor = anchor;
    this.#ca = ca;
    this.#signingKey = signingKey;
    this.#catalogue = catalogue;
    this.#validitySeconds = validitySeconds;
    this.#clock = clock;
  }

  /** Opens a central made by {@link initCentral}: reads its keys and anchor, opens (and migrates) its store. */
  static async open(opts: OpenCentralOptions): Promise<Central> {
    const anchorFile = join(opts.dir, CENTRAL_FILES.anchor);
    let anchor: Anchor;
    try {
      anchor = JSON.parse(readText(anchorFile)) as Anchor;
    } catch (e) {
      if (isOnceOnlyError(e)) throw e;
      throw new OnceOnlyError('invalid_file', `${anchorFile} is not JSON`, { file: anchorFile });
    }
    const ca: CertificateAuthority = { certificatePem: readText(join(opts.dir, CENTRAL_FILES.caCert)), privateKeyPem: readText(join(opts.dir, CENTRAL_FILES.caKey)) };
    const signingKey = loadPrivateKey(readText(join(opts.dir, CENTRAL_FILES.signingKey)));
    // A key that does not match the anchor would publish configurations no gateway accepts.
    if (publicJwk(signingKey).x !== anchor.publicKey?.x) {
      throw new OnceOnlyError('invalid_file', `${CENTRAL_FILES.signingKey} does not match the key in ${CENTRAL_FILES.anchor}`, { file: anchorFile });
    }
    const validity = opts.validitySeconds ?? DEFAULT_VALIDITY_SECONDS;
    if (!Number.isInteger(validity) || validity < 2) throw new OnceOnlyError('invalid_value', 'validitySeconds must be a whole number of at least 2', { field: 'validitySeconds' });
    const catalogue = loadCatalogue(opts.catalogueFile ?? DEFAULT_CATALOGUE_FILE);
    const store = opts.store ?? (await openCentralStore(opts.dir, opts.databaseUrl));
    const counter = await store.db.selectFrom('central_counter').select('value').where('name', '=', 'conf_serial').executeTakeFirst();
    if (!counter) {
      if (!opts.store) await store.close();
      throw new OnceOnlyError('invalid_file', `the store ${store.location} holds no central authority; was it initialised with another DATABASE_URL?`, { field: 'store' });
    }
    return new Central(store, !opts.store, anchor, ca, signingKey, catalogue, validity, opts.clock ?? (() => new Date()));
  }

  /** The X-Road instance this central serves. */
  get instance(): string {
    return this.anchor.instance;
  }

  /** The CA certificate, PEM. */
  get caCertificate(): string {
    return this.#ca.certificatePem;
  }

  /** The store (for tests and tools that inspect it). */
  get store(): Store {
    return this.#store;
  }

  /** Closes the store if this instance opened it. */
  async close(): Promise<void> {
    if (this.#ownsStore) await this.#store.close();
  }

  /**
   * Runs one management change: `fn` in a transaction that also bumps `state_version` and
   * appends the audit entry. If `fn` throws, nothing is written, audit entry included.
   */
  async #change<T>(actor: Actor, action: string, target: string, fn: (trx: Transaction<Database>) => Promise<{ result: T; detail: Record<string, unknown> }>): Promise<T> {
    const at = this.#clock();
    return this.#store.db.transaction().execute(async (trx) => {
      const { result, detail } = await fn(trx);
      await trx.updateTable('central_counter').set((eb) => ({ value: eb('value', '+', 1) })).where('name', '=', 'state_version').execute();
      await appendAudit(trx, { actor, action, target, detail, at });
      return result;
    });
  }

  async #memberRow(db: Db, id: string): Promise<{ id: string; name: string; status: string } | undefined> {
    return db.selectFrom('central_member').select(['id', 'name', 'status']).where('id', '=', id).executeTakeFirst();
  }

  /** Adds a member (organisation), active. `conflict` if it exists. */
  async addMember(input: { id: string; name: string }, actor: Actor = 'cli'): Promise<MemberEntry> {
    const id = parseMemberId(input.id, 'id', this.instance);
    const name = checkName(input.name);
    return this.#change(actor, 'member.add', id, async (trx) => {
      if (await this.#memberRow(trx, id)) throw new OnceOnlyError('conflict', `member ${id} already exists`, { field: 'id' });
      const at = this.#clock().toISOString();
      await trx.insertInto('central_member').values({ id, name, status: 'active', created_at: at, updated_at: at }).execute();
      return { result: { id, name, status: 'active' as const }, detail: { name } };
    });
  }

  async #requireMember(db: Db, member: string, field: string, mustBeActive: boolean): Promise<void> {
    const row = await this.#memberRow(db, member);
    if (!row) throw new OnceOnlyError('not_found', `member ${member} is not registered`, { field, expected: 'a registered member; add it first' });
    if (mustBeActive && row.status !== 'active') throw new OnceOnlyError('conflict', `member ${member} is suspended`, { field, expected: 'an active member' });
  }

  /** Adds a subsystem, active, to an existing member. */
  async addSubsystem(input: { id: string }, actor: Actor = 'cli'): Promise<SubsystemEntry> {
    const id = parseSubsystem(input.id, 'id', this.instance);
    const member = memberOf(id);
    return this.#change(actor, 'subsystem.add', id, async (trx) => {
      await this.#requireMember(trx, member, 'id', false);
      if (await trx.selectFrom('central_subsystem').select('id').where('id', '=', id).executeTakeFirst()) {
        throw new OnceOnlyError('conflict', `subsystem ${id} already exists`, { field: 'id' });
      }
      const at = this.#clock().toISOString();
      await trx.insertInto('central_subsystem').values({ id, member, status: 'active', created_at: at, updated_at: at }).execute();
      return { result: { id, member, status: 'active' as const }, detail: { member } };
    });
  }

  /**
   * Registers a gateway of an active member: issues its TLS certificate from the CA and records
   * its address, certificate fingerprint, signing key and the subsystems it is to serve. `conflict`
   * if the id is taken (a gateway with new keys is registered under a new code, so peers never
   * confuse the two).
   *
   * Trust model (X-Road: a security server's registration is approved by the central, bound to its
   * certificate and owner): registered by the operator (a full management token, or the CLI), the
   * gateway is active at once; registered with a member's registration token it is `pending`, not in
   * the global configuration, and receives no traffic until the operator approves it
   * ({@link approveGateway}). Either way it serves only the subsystems assigned to it.
   */
  async registerGateway(input: GatewayInput, actor: Actor = 'cli', opts: { registrationToken?: string } = {}): Promise<GatewayRegistration & { status: 'pending' | 'active' }> {
    const id = parseGatewayId(input.id, 'id', this.instance);
    const member = memberOf(id);
    if (input.member !== undefined && parseMemberId(input.member, 'member', this.instance) !== member) {
      throw new OnceOnlyError('invalid_value', `member ${input.member} is not the member of gateway ${id}`, { field: 'member', expected: member });
    }
    const address = baseUrl(checkUrl(input.address, 'address', ['https:']));
    const signingKey = checkSigningJwk(input.signingKey);
    const subsystems = [...new Set((input.subsystems ?? []).map((x, i) => parseSubsystem(x, `subsystems[${i}]`, this.instance)))];
    for (const [i, sub] of subsystems.entries()) {
      if (memberOf(sub) !== member) throw new OnceOnlyError('invalid_value', `subsystem ${sub} is not a subsystem of ${member}`, { field: `subsystems[${i}]`, expected: `a subsystem of ${member}` });
    }
    const status = opts.registrationToken !== undefined ? 'pending' : 'active';
    // Refuse early so that no certificate is issued for a gateway that cannot be registered;
    // the same checks run again inside the transaction, which is what counts.
    await this.#requireMember(this.#store.db, member, 'member', true);
    const tlsCertificate = await issueGatewayCertificate(this.#ca, { gatewayId: id, member, tlsPublicKeySpkiPem: input.tlsPublicKey, address, now: this.#clock() });
    const fingerprint = certificateFingerprint(tlsCertificate);
    return this.#change(actor, 'gateway.register', id, async (trx) => {
      await this.#requireMember(trx, member, 'member', true);
      if (opts.registrationToken !== undefined) {
        // Used up in the registration's own transaction: two concurrent uses cannot both succeed.
        const used = await trx.updateTable('central_token').set({ used_at: this.#clock().toISOString() }).where('id', '=', opts.registrationToken).where('used_at', 'is', null).where('member', '=', member).executeTakeFirst();
        if (Number(used.numUpdatedRows) !== 1) throw new OnceOnlyError('unauthorized', 'this registration token has been used, or is for another member', { field: 'authorization' });
      }
      if (await trx.selectFrom('central_gateway').select('id').where('id', '=', id).executeTakeFirst()) {
        throw new OnceOnlyError('conflict', `gateway ${id} is already registered`, { field: 'id', expected: 'a new gateway code' });
      }
      for (const sub of subsystems) {
        if (!(await trx.selectFrom('central_subsystem').select('id').where('id', '=', sub).executeTakeFirst())) {
          throw new OnceOnlyError('not_found', `subsystem ${sub} is not registered`, { field: 'subsystems', expected: 'registered subsystems of the member; add them first' });
        }
      }
      const at = this.#clock().toISOString();
      await trx.insertInto('central_gateway').values({
        id, member, address, tls_certificate: tlsCertificate, fingerprint, signing_key: JSON.stringify(signingKey), status, created_at: at, updated_at: at,
      }).execute();
      if (subsystems.length) await trx.insertInto('central_gateway_subsystem').values(subsystems.map((sub) => ({ gateway_id: id, subsystem_id: sub, status, created_at: at }))).execute();
      return { result: { tlsCertificate, caCertificate: this.#ca.certificatePem, fingerprint, status }, detail: { member, address, fingerprint, signingKey: signingKey.x, status, subsystems } };
    });
  }

  /**
   * Approves a pending gateway: it enters the next configuration, active, with the subsystems it
   * asked for. Only the operator can do this (CLI or a full management token).
   */
  async approveGateway(idIn: string, actor: Actor = 'cli'): Promise<void> {
    const id = parseGatewayId(idIn, 'id', this.instance);
    await this.#change(actor, 'gateway.approve', id, async (trx) => {
      const row = await trx.selectFrom('central_gateway').select('status').where('id', '=', id).executeTakeFirst();
      if (!row) throw new OnceOnlyError('not_found', `gateway ${id} is not registered`, { field: 'id' });
      if (row.status !== 'pending') throw new OnceOnlyError('conflict', `gateway ${id} is ${row.status}, not pending`, { field: 'id', expected: 'a gateway awaiting approval' });
      const at = this.#clock().toISOString();
      await trx.updateTable('central_gateway').set({ status: 'active', updated_at: at }).where('id', '=', id).execute();
      const subs = await trx.updateTable('central_gateway_subsystem').set({ status: 'active' }).where('gateway_id', '=', id).where('status', '=', 'pending').returning('subsystem_id').execute();
      return { result: undefined, detail: { from: 'pending', to: 'active', subsystems: subs.map((x) => x.subsystem_id) } };
    });
  }

  /** Assigns a subsystem of the gateway's member to the gateway (active at the next configuration). */
  async assignSubsystem(gatewayIn: string, subsystemIn: string, actor: Actor = 'cli'): Promise<void> {
    const gateway = parseGatewayId(gatewayIn, 'gateway', this.instance);
    const sub = parseSubsystem(subsystemIn, 'subsystem', this.instance);
    if (memberOf(sub) !== memberOf(gateway)) throw new OnceOnlyError('invalid_value', `subsystem ${sub} is not a subsystem of ${memberOf(gateway)}`, { field: 'subsystem', expected: `a subsystem of ${memberOf(gateway)}` });
    await this.#change(actor, 'gateway.assign', gateway, async (trx) => {
      if (!(await trx.selectFrom('central_gateway').select('id').where('id', '=', gateway).executeTakeFirst())) throw new OnceOnlyError('not_found', `gateway ${gateway} is not registered`, { field: 'gateway' });
      if (!(await trx.selectFrom('central_subsystem').select('id').where('id', '=', sub).executeTakeFirst())) throw new OnceOnlyError('not_found', `subsystem ${sub} is not registered`, { field: 'subsystem' });
      const existing = await trx.selectFrom('central_gateway_subsystem').select('status').where('gateway_id', '=', gateway).where('subsystem_id', '=', sub).executeTakeFirst();
      if (existing?.status === 'active') throw new OnceOnlyError('conflict', `${sub} is already assigned to ${gateway}`, { field: 'subsystem' });
      if (existing) await trx.updateTable('central_gateway_subsystem').set({ status: 'active' }).where('gateway_id', '=', gateway).where('subsystem_id', '=', sub).execute();
      else await trx.insertInto('central_gateway_subsystem').values({ gateway_id: gateway, subsystem_id: sub, status: 'active', created_at: this.#clock().toISOString() }).execute();
      return { result: undefined, detail: { subsystem: sub } };
    });
  }

  /** Takes a subsystem away from a gateway: from the next configuration it neither serves nor sends for it. */
  async unassignSubsystem(gatewayIn: string, subsystemIn: string, actor: Actor = 'cli'): Promise<void> {
    const gateway = parseGatewayId(gatewayIn, 'gateway', this.instance);
    const sub = parseSubsystem(subsystemIn, 'subsystem', this.instance);
    await this.#change(actor, 'gateway.unassign', gateway, async (trx) => {
      const r = await trx.deleteFrom('central_gateway_subsystem').where('gateway_id', '=', gateway).where('subsystem_id', '=', sub).executeTakeFirst();
      if (Number(r.numDeletedRows) !== 1) throw new OnceOnlyError('not_found', `${sub} is not assigned to ${gateway}`, { field: 'subsystem' });
      return { result: undefined, detail: { subsystem: sub } };
    });
  }

  /** Every registered gateway with its status and subsystems, pending ones included. */
  async listGateways(): Promise<GatewayListing[]> {
    const [gateways, assignments] = await Promise.all([
      this.#store.db.selectFrom('central_gateway').select(['id', 'member', 'address', 'fingerprint', 'status', 'created_at']).orderBy('id').execute(),
      this.#store.db.selectFrom('central_gateway_subsystem').select(['gateway_id', 'subsystem_id', 'status']).orderBy('subsystem_id').execute(),
    ]);
    return gateways.map((g) => ({
      id: g.id, member: g.member, address: g.address, fingerprint: g.fingerprint, status: g.status as GatewayListing['status'], createdAt: g.created_at,
      subsystems: assignments.filter((a) => a.gateway_id === g.id).map((a) => ({ id: a.subsystem_id, status: a.status as 'pending' | 'active' })),
    }));
  }

  async #setStatus(table: StatusTable, kind: string, id: string, status: Status, actor: Actor): Promise<void> {
    await this.#change(actor, `${kind}.${status === 'active' ? 'activate' : 'suspend'}`, id, async (trx) => {
      const row = await trx.selectFrom(table).select('status').where('id', '=', id).executeTakeFirst();
      if (!row) throw new OnceOnlyError('not_found', `${kind} ${id} is not registered`, { field: 'id' });
      // A pending gateway enters service only by approval, which names what it serves.
      if (row.status === 'pending' && status === 'active') throw new OnceOnlyError('conflict', `${kind} ${id} is pending: approve it instead`, { field: 'id', expected: 'onceonly central gateway approve' });
      await trx.updateTable(table).set({ status, updated_at: this.#clock().toISOString() }).where('id', '=', id).execute();
      return { result: undefined, detail: { from: row.status, to: status } };
    });
  }

  /**
   * Suspends a member. Its subsystems and gateways keep their own status; gateways must treat
   * anything of a suspended member as suspended (the configuration lists both), so that
   * activating the member again restores exactly what was there.
   */
  suspendMember(id: string, actor: Actor = 'cli'): Promise<void> {
    return this.#setStatus('central_member', 'member', parseMemberId(id, 'id', this.instance), 'suspended', actor);
  }

  /** Activates a suspended member. */
  activateMember(id: string, actor: Actor = 'cli'): Promise<void> {
    return this.#setStatus('central_member', 'member', parseMemberId(id, 'id', this.instance), 'active', actor);
  }

  /** Suspends a subsystem: it may neither ask nor be asked. */
  suspendSubsystem(id: string, actor: Actor = 'cli'): Promise<void> {
    return this.#setStatus('central_subsystem', 'subsystem', parseSubsystem(id, 'id', this.instance), 'suspended', actor);
  }

  /** Activates a suspended subsystem. */
  activateSubsystem(id: string, actor: Actor = 'cli'): Promise<void> {
    return this.#setStatus('central_subsystem', 'subsystem', parseSubsystem(id, 'id', this.instance), 'active', actor);
  }

  /** Suspends a gateway: peers stop accepting its certificate at their next configuration. */
  suspendGateway(id: string, actor: Actor = 'cli'): Promise<void> {
    return this.#setStatus('central_gateway', 'gateway', parseGatewayId(id, 'id', this.instance), 'suspended', actor);
  }

  /** Activates a suspended gateway. */
  activateGateway(id: string, actor: Actor = 'cli'): Promise<void> {
    return this.#setStatus('central_gateway', 'gateway', parseGatewayId(id, 'id', this.instance), 'active', actor);
  }

  /**
   * Publishes a new agreements document (`{agreements: [...]}`), checked completely against the
   * catalogue first (`invalid_file`, 422, naming the field, when anything is wrong; nothing
   * changes then). The new set replaces the old one in the next configuration.
   */
  async publishAgreements(doc: unknown, opts: { actor?: Actor; source?: string; locate?: Locator } = {}): Promise<{ version: number; agreements: number }> {
    const agreements = parseAgreements(doc, opts.source ?? 'agreements', this.#catalogue, opts.locate).list();
    return this.#change(opts.actor ?? 'cli', 'agreements.publish', 'agreements', async (trx) => {
      const last = await trx.selectFrom('central_agreements').select((eb) => eb.fn.max('version').as('v')).executeTakeFirst();
      const version = Number(last?.v ?? 0) + 1;
      await trx.insertInto('central_agreements').values({ version, document: JSON.stringify({ agreements }), published_at: this.#clock().toISOString(), actor: opts.actor ?? 'cli' }).execute();
      return { result: { version, agreements: agreements.length }, detail: { version, agreements: agreements.length, ids: agreements.map((a) => a.id) } };
    });
  }

  /** Publishes an agreements file (YAML or JSON); problems name the file and line. */
  publishAgreementsFile(file: string, actor: Actor = 'cli'): Promise<{ version: number; agreements: number }> {
    const { doc, locate } = readDocument(file);
    return this.publishAgreements(doc, { actor, source: file, locate });
  }

  /** Creates another management API token; returns it once. */
  async createToken(label: string, actor: Actor = 'cli'): Promise<{ id: string; token: string }> {
    const t = newToken();
    return this.#change(actor, 'token.create', t.id, async (trx) => {
      await trx.insertInto('central_token').values({ id: t.id, hash: t.hash, label, created_at: this.#clock().toISOString(), revoked_at: null, scope: null, member: null, used_at: null }).execute();
      return { result: { id: t.id, token: t.token }, detail: { label } };
    });
  }

  /**
   * A token that can do one thing: register one gateway of `member` (it is used up by that).
   * This is what the central operator hands an organisation to onboard its gateway, instead of a
   * management token that could act for every member.
   */
  async createRegistrationToken(memberIn: string, label: string, actor: Actor = 'cli'): Promise<{ id: string; token: string }> {
    const member = parseMemberId(memberIn, 'member', this.instance);
    const t = newToken();
    return this.#change(actor, 'token.create', t.id, async (trx) => {
      await this.#requireMember(trx, member, 'member', true);
      await trx.insertInto('central_token').values({ id: t.id, hash: t.hash, label, created_at: this.#clock().toISOString(), revoked_at: null, scope: 'gateway-registration', member, used_at: null }).execute();
      return { result: { id: t.id, token: t.token }, detail: { label, scope: 'gateway-registration', member } };
    });
  }

  /**
   * Checks a management token and returns its id. The stored SHA-256 is compared in constant
   * time; every failure is the same `unauthorized`, so a caller learns nothing about which
   * part was wrong.
   */
  /** Checks a token; returns its id and, for a scoped token, its scope and member. */
  async authenticateScoped(token: string | undefined): Promise<{ id: string; scope: string | null; member: string | null }> {
    const id = await this.authenticate(token);
    const row = await this.#store.db.selectFrom('central_token').select(['scope', 'member', 'used_at']).where('id', '=', id).executeTakeFirstOrThrow();
    if (row.used_at !== null) throw new OnceOnlyError('unauthorized', 'this registration token has been used', { field: 'authorization', expected: 'a new registration token from the central operator' });
    return { id, scope: row.scope, member: row.member };
  }

  async authenticate(token: string | undefined): Promise<string> {
    const refuse = (): OnceOnlyError => new OnceOnlyError('unauthorized', 'a valid management token is required', { field: 'authorization', expected: 'Authorization: Bearer <token from central init>' });
    if (!token) throw refuse();
    const m = /^oo1\.([0-9a-f]{12})\.[A-Za-z0-9_-]{43}$/.exec(token);
    const row = m ? await this.#store.db.selectFrom('central_token').select(['id', 'hash', 'revoked_at']).where('id', '=', m[1]!).executeTakeFirst() : undefined;
    // Compare against something even when there is no row, so timing does not reveal token ids.
    const ok = safeEqual(sha256hex(token), row?.hash ?? '0'.repeat(64));
    if (!row || !ok || row.revoked_at !== null) throw refuse();
    return row.id;
  }

  /** A snapshot of the state the next configuration is built from. */
  async snapshot(db: Db = this.#store.db): Promise<Omit<CentralState, 'serial'>> {
    const [members, subsystems, gateways, assignments, agreements] = await Promise.all([
      db.selectFrom('central_member').select(['id', 'name', 'status']).orderBy('id').execute(),
      db.selectFrom('central_subsystem').select(['id', 'member', 'status']).orderBy('id').execute(),
      // A pending gateway is not in the configuration: no peer knows its certificate or sends to it.
      db.selectFrom('central_gateway').selectAll().where('status', '!=', 'pending').orderBy('id').execute(),
      db.selectFrom('central_gateway_subsystem').select(['gateway_id', 'subsystem_id']).where('status', '=', 'active').orderBy('subsystem_id').execute(),
      db.selectFrom('central_agreements').select('document').orderBy('version', 'desc').limit(1).executeTakeFirst(),
    ]);
    const served = new Map<string, string[]>();
    for (const a of assignments) (served.get(a.gateway_id) ?? served.set(a.gateway_id, []).get(a.gateway_id)!).push(a.subsystem_id);
    return {
      instance: this.instance,
      caCertificate: this.#ca.certificatePem,
      members: members.map((m) => ({ id: m.id, name: m.name, status: m.status as Status })),
      subsystems: subsystems.map((s) => ({ id: s.id, member: s.member, status: s.status as Status })),
      gateways: gateways.map((g) => ({
        id: g.id, member: g.member, address: g.address, tlsCertificate: g.tls_certificate, tlsFingerprint: g.fingerprint,
        signingKey: JSON.parse(g.signing_key) as Ed25519PublicJwk, status: g.status as Status, subsystems: served.get(g.id) ?? [],
      })),
      // Documents published before agreements could grant history or services say nothing of either.
      agreements: agreements ? (JSON.parse(agreements.document) as { agreements: Agreement[] }).agreements.map((a) => ({ ...a, history: a.history ?? [], services: a.services ?? [] })) : [],
    };
  }

  /**
   * The configuration to serve: the last signed one while the state is unchanged and it is
   * younger than half its validity (so a gateway fetching every minute always holds one with
   * plenty of life left), else a fresh one with the next serial. Cheap on the hot path: one
   * counter read, then memory.
   */
  async currentConfiguration(now: Date = this.#clock()): Promise<SignedConfiguration> {
    const sv = await this.#counter('state_version');
    const c = this.#cache;
    if (c && c.stateVersion === sv && now.getTime() < c.refreshAt) return { jws: c.jws, conf: c.conf };
    // Concurrent requests share one signing instead of each minting a serial.
    this.#pending ??= this.#refresh(now).finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #counter(name: string, db: Db = this.#store.db): Promise<number> {
    const row = await db.selectFrom('central_counter').select('value').where('name', '=', name).executeTakeFirstOrThrow();
    return row.value;
  }

  async #refresh(now: Date): Promise<SignedConfiguration> {
    const half = (this.#validitySeconds * 1000) / 2;
    const signed = await this.#store.db.transaction().execute(async (trx) => {
      const sv = await this.#counter('state_version', trx);
      // Another process (a second server, or the CLI) may have signed one already.
      const last = await trx.selectFrom('central_conf').selectAll().orderBy('serial', 'desc').limit(1).executeTakeFirst();
      if (last && last.state_version === sv && now.getTime() < Date.parse(last.issued_at) + half && now.getTime() >= Date.parse(last.issued_at)) {
        const conf = JSON.parse(Buffer.from(last.jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as GlobalConfiguration;
        return { jws: last.jws, conf, stateVersion: sv, issued: Date.parse(last.issued_at) };
      }
      const { value: serial } = await trx.updateTable('central_counter').set((eb) => ({ value: eb('value', '+', 1) })).where('name', '=', 'conf_serial').returning('value').executeTakeFirstOrThrow();
      const state = await this.snapshot(trx);
      const conf = buildGlobalConfiguration({ ...state, serial }, { now, validitySeconds: this.#validitySeconds });
      const jws = await signGlobalConfiguration(conf, this.#signingKey);
      await trx.insertInto('central_conf').values({ serial, jws, issued_at: conf.issuedAt, expires_at: conf.expiresAt, state_version: sv }).execute();
      return { jws, conf, stateVersion: sv, issued: now.getTime() };
    });
    this.#cache = { jws: signed.jws, conf: signed.conf, stateVersion: signed.stateVersion, refreshAt: signed.issued + half };
    return { jws: signed.jws, conf: signed.conf };
  }

  /** The admin audit log, oldest first. */
  auditLog(opts: { after?: number; limit?: number } = {}): Promise<AuditEntry[]> {
    return readAuditLog(this.#store.db, opts);
  }

  /** Verifies the admin audit log's hash chain. */
  verifyAdminLog(): Promise<AuditVerification> {
    return verifyAdminLog(this.#store.db);
  }
}
