/**
 * @module central/conf
 * Building, signing and verifying the global configuration (X-Road's "global configuration":
 * one signed document that carries the member registry, the gateways with their certificates
 * and keys, the agreements in force and the CA certificate to every gateway).
 *
 * The document travels as a JWS Compact Serialization (RFC 7515 §7.1) signed with Ed25519
 * (`alg: EdDSA`, RFC 8037 §3.1) by the key named in the anchor, with `typ`
 * `onceonly-global-conf+jws` (RFC 7515 §4.1.9) so that no other signed object of this
 * central can be replayed as a configuration. The payload is the {@link GlobalConfiguration}
 * as UTF-8 JSON.
 *
 * Signing and checking go through core/jws (jose): the algorithm pinned, `typ` required, `crit`
 * refused.
 */
import { Type } from 'typebox';
import { checker } from '../core/schema.ts';
import type { KeyObject } from 'node:crypto';
import { OnceOnlyError } from '../core/errors.ts';
import { importPublicJwk } from '../core/crypto.ts';
import { jsonPayload, signJws, verifyJws } from '../core/jws.ts';
import type { Agreement } from '../catalogue/agreements.ts';
import type { Anchor, GatewayEntry, GlobalConfiguration, MemberEntry, SubsystemEntry } from './types.ts';

/** The JWS `typ` of a global configuration. */
export const GLOBAL_CONF_TYP = 'onceonly-global-conf+jws';

/** The media type a global configuration is served with (RFC 7515 §9.2.1). */
export const GLOBAL_CONF_MEDIA_TYPE = 'application/jose';

/** Default validity of a configuration: ten minutes, as issue 3 asks. */
export const DEFAULT_VALIDITY_SECONDS = 600;

/** How far a configuration's `issuedAt` may lie in the future of the verifier's clock. */
export const CLOCK_SKEW_SECONDS = 300;

/** Everything a configuration is built from: a snapshot of the central's state. */
export interface CentralState {
  instance: string;
  /** The serial this configuration will carry. */
  serial: number;
  caCertificate: string;
  members: MemberEntry[];
  subsystems: SubsystemEntry[];
  gateways: GatewayEntry[];
  agreements: Agreement[];
}

/** Options of {@link buildGlobalConfiguration}. */
export interface BuildOptions {
  now: Date;
  /** Seconds until the configuration expires (default {@link DEFAULT_VALIDITY_SECONDS}). */
  validitySeconds?: number;
}

/** Options of {@link verifyGlobalConfiguration}. */
export interface VerifyOptions {
  /** Refuse a configuration with a lower serial (the one the gateway already holds): no rollback. */
  minSerial?: number;
  /**
   * Check signature and content only, not time (expiry, issued-in-the-future). Only for proving
   * what was published (an offline message-log check needs the keys of configurations long
   * expired, perhaps issued by a central whose clock was off); never for deciding on traffic.
   */
  ignoreClock?: boolean;
}

const byId = <T extends { id: string }>(a: T, b: T): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Builds the configuration document from a state snapshot; entries sorted by id so equal states give equal documents. */
export function buildGlobalConfiguration(state: CentralState, opts: BuildOptions): GlobalConfiguration {
  const validity = opts.validitySeconds ?? DEFAULT_VALIDITY_SECONDS;
  if (!Number.isInteger(validity) || validity < 1) throw new OnceOnlyError('invalid_value', 'validitySeconds must be a positive whole number', { field: 'validitySeconds' });
  return {
    kind: 'onceonly-global-configuration',
    version: 1,
    instance: state.instance,
    serial: state.serial,
    issuedAt: opts.now.toISOString(),
    expiresAt: new Date(opts.now.getTime() + validity * 1000).toISOString(),
    caCertificate: state.caCertificate,
    members: [...state.members].sort(byId),
    subsystems: [...state.subsystems].sort(byId),
    gateways: [...state.gateways].sort(byId),
    agreements: [...state.agreements].sort(byId),
  };
}

/** Signs a configuration: JWS compact, `alg: EdDSA`, `typ: onceonly-global-conf+jws`. */
export function signGlobalConfiguration(conf: GlobalConfiguration, privateKey: KeyObject): Promise<string> {
  return signJws(JSON.stringify(conf), privateKey, GLOBAL_CONF_TYP);
}

function invalid(message: string, detail: Record<string, unknown> = {}): OnceOnlyError {
  return new OnceOnlyError('invalid_global_conf', `global configuration refused: ${message}`, { field: 'globalConfiguration', ...detail });
}

const NonEmpty = Type.String({ minLength: 1 });
const StatusSchema = Type.Union([Type.Literal('active'), Type.Literal('suspended')]);
const Instant = Type.String({ pattern: '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z$' });
const DateText = Type.String({ pattern: '^\\d{4}-\\d\\d-\\d\\d$' });

/**
 * The payload's shape, so that code using a verified configuration can trust its types. Unknown
 * keys are allowed (a newer central may add some; the signature already vouches for them).
 */
const GlobalConfigurationSchema = Type.Object({
  kind: Type.Literal('onceonly-global-configuration'),
  version: Type.Literal(1),
  instance: NonEmpty,
  serial: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  issuedAt: Instant,
  expiresAt: Instant,
  caCertificate: NonEmpty,
  members: Type.Array(Type.Object({ id: NonEmpty, name: Type.String(), status: StatusSchema })),
  subsystems: Type.Array(Type.Object({ id: NonEmpty, member: NonEmpty, status: StatusSchema })),
  gateways: Type.Array(Type.Object({
    id: NonEmpty,
    member: NonEmpty,
    address: NonEmpty,
    tlsCertificate: NonEmpty,
    tlsFingerprint: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    signingKey: Type.Object({ kty: Type.Literal('OKP'), crv: Type.Literal('Ed25519'), x: NonEmpty }),
    status: StatusSchema,
    subsystems: Type.Array(NonEmpty),
  })),
  agreements: Type.Array(Type.Object({
    id: NonEmpty,
    client: NonEmpty,
    provider: NonEmpty,
    items: Type.Array(NonEmpty),
    history: Type.Array(Type.Object({ item: NonEmpty, years: Type.Optional(Type.Integer({ minimum: 1 })) })),
    services: Type.Array(NonEmpty),
    purpose: Type.Object({ id: NonEmpty, description: Type.String() }),
    legalBasis: NonEmpty,
    validFrom: DateText,
    validUntil: DateText,
    consentRequired: Type.Boolean(),
    previewRequired: Type.Boolean(),
    // Optional: configurations signed before Tell Us Once have none (read as no notifications).
    events: Type.Optional(Type.Array(NonEmpty)),
  })),
});

const checkPayload = checker(GlobalConfigurationSchema, 'globalConfiguration', 'invalid_global_conf');

/** Checks the payload's shape, so that code using a verified configuration can trust its types. */
function checkShape(p: unknown): GlobalConfiguration {
  try {
    const conf = checkPayload(p) as Omit<GlobalConfiguration, 'agreements'> & { agreements: (Omit<GlobalConfiguration['agreements'][number], 'events'> & { events?: string[] })[] };
    return { ...conf, agreements: conf.agreements.map((a) => ({ ...a, events: a.events ?? [] })) };
  } catch (e) {
    const err = e as OnceOnlyError;
    throw invalid(`payload is malformed: ${err.message}`, { path: err.detail.field });
  }
}

/**
 * Verifies a signed configuration against the anchor and returns its payload. Throws
 * `invalid_global_conf` when the JWS is malformed (RFC 7515 §5.2), its header is not exactly
 * `alg: EdDSA` with our `typ` and no `crit` (§4.1.11: unknown critical extensions must be
 * refused), the signature does not verify with the anchor's key, the payload is malformed, it is
 * for another instance, it claims to be issued more than {@link CLOCK_SKEW_SECONDS} in the future,
 * or its serial is below `minSerial`; and `global_conf_expired` when `now >= expiresAt`.
 */
export async function verifyGlobalConfiguration(jws: string, anchor: Anchor, now: Date, opts: VerifyOptions = {}): Promise<GlobalConfiguration> {
  // The anchor's key is checked first, so a broken anchor is not reported as a bad configuration.
  try {
    importPublicJwk(anchor.publicKey);
  } catch {
    throw invalid('the anchor holds no usable Ed25519 key', { path: 'anchor.publicKey' });
  }
  const v = await verifyJws(jws, anchor.publicKey, GLOBAL_CONF_TYP);
  if (!v.ok) throw invalid(v.reason === 'the signature does not verify with this key' ? 'signature does not verify with the anchor key' : v.reason, { path: 'jws' });
  const payload = jsonPayload(v.payload);
  if (payload === undefined) throw invalid('payload is not JSON', { path: 'payload' });
  const conf = checkShape(payload);
  if (conf.instance !== anchor.instance) throw invalid(`it is for instance ${conf.instance}, not ${anchor.instance}`, { path: 'instance' });
  if (!opts.ignoreClock && Date.parse(conf.issuedAt) > now.getTime() + CLOCK_SKEW_SECONDS * 1000) throw invalid('issuedAt is in the future; check the clocks', { path: 'issuedAt' });
  if (opts.minSerial !== undefined && conf.serial < opts.minSerial) {
    throw invalid(`serial ${conf.serial} is older than ${opts.minSerial}, the one already held (rollback refused)`, { path: 'serial', serial: conf.serial, minSerial: opts.minSerial });
  }
  if (!opts.ignoreClock && now.getTime() >= Date.parse(conf.expiresAt)) {
    throw new OnceOnlyError('global_conf_expired', `global configuration ${conf.serial} expired at ${conf.expiresAt}`, {
      field: 'globalConfiguration',
      serial: conf.serial,
      expiresAt: conf.expiresAt,
    });
  }
  return conf;
}
