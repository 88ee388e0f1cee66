/**
 * @module gateway/isauth
 * Information-system authentication on the client side (issue 10, hole 4): which of the
 * organisation's own systems may speak as which of its subsystems. X-Road offers, per client,
 * NOSSL (no check), SSLNOAUTH (TLS, no client certificate) and SSLAUTH (TLS with a registered client
 * certificate); onceonly offers, per client (subsystem or member), in `gateway.json` `clients`:
 *
 * - `none`: no check, allowed only while the client side listens on loopback (the demo), and
 *   reported as a warning at start-up;
 * - `tls`: the connection must be TLS and present a client certificate whose SHA-256 fingerprint is
 *   registered for that client (X-Road's SSLAUTH: exact match against the registered certificates);
 * - `bearer`: `Authorization: Bearer <credential>` whose SHA-256 is registered for that client
 *   (RFC 6750 §2.1), over TLS, or over plain HTTP on loopback only. The header is consumed by the
 *   gateway and not passed on.
 *
 * A client with no entry is `none` on a loopback listener and refused on any other: the default
 * for a listener others can reach is authenticated.
 */
import type { TLSSocket } from 'node:tls';
import { Type, type Static } from 'typebox';
import { createHash } from 'node:crypto';
import { OnceOnlyError } from '../core/errors.ts';
import { safeEqual } from '../core/crypto.ts';

export const ClientAuthSchema = Type.Object(
  {
    auth: Type.Union([Type.Literal('none'), Type.Literal('tls'), Type.Literal('bearer')]),
    /** SHA-256 fingerprints (lower-case hex) of the certificates the system may present (`tls`). */
    certificates: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { maxItems: 100 })),
    /** SHA-256 (lower-case hex) of the bearer credentials issued to the system (`bearer`). */
    tokens: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { maxItems: 100 })),
  },
  { additionalProperties: false },
);
export type ClientAuth = Static<typeof ClientAuthSchema>;

/** True when a listener on `host` can be reached only from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** What the client side knows about a connection. */
export interface Connection {
  /** The TLS socket when the client side listens with TLS. */
  tls: TLSSocket | undefined;
  authorization: string | undefined;
}

function refuse(client: string, why: string, expected: string): OnceOnlyError {
  return new OnceOnlyError('client_not_authenticated', `client ${client}: ${why}`, { field: 'headers.x-road-client', expected });
}

/**
 * Checks that the connection may speak as `client`; returns true when it used the Authorization
 * header (which is then not passed on).
 */
export function authenticateClient(client: string, settings: Readonly<Record<string, ClientAuth>>, loopback: boolean, c: Connection): boolean {
  const s = Object.hasOwn(settings, client) ? settings[client] : undefined;
  const mode = s?.auth ?? (loopback ? 'none' : undefined);
  if (mode === undefined) throw refuse(client, 'no information-system authentication is configured for this client, and this gateway is reachable from other machines', 'a tls or bearer entry for the client in gateway.json');
  if (mode === 'none') {
    if (!loopback) throw refuse(client, 'authentication "none" is allowed only on a loopback listener', 'tls or bearer');
    return false;
  }
  if (mode === 'tls') {
    if (!c.tls) throw refuse(client, 'specifies TLS but the connection is plain HTTP', 'a TLS connection with the client certificate registered for it');
    const cert = c.tls.getPeerCertificate();
    if (!cert || !cert.fingerprint256) throw refuse(client, 'specifies TLS but did not present a client certificate', 'the client certificate registered for it');
    const fp = cert.fingerprint256.replaceAll(':', '').toLowerCase();
    if (!(s?.certificates ?? []).some((x) => safeEqual(x, fp))) throw refuse(client, 'its TLS certificate does not match any certificate registered for it', 'the client certificate registered for it');
    return false;
  }
  if (!c.tls && !loopback) throw refuse(client, 'a bearer credential over plain HTTP is accepted on loopback only', 'TLS');
  const m = typeof c.authorization === 'string' ? /^Bearer ([A-Za-z0-9._~+/=-]{16,512})$/.exec(c.authorization) : null;
  if (!m) throw refuse(client, c.authorization === undefined ? 'a bearer credential is required' : 'the Authorization header is not a bearer credential', 'Authorization: Bearer <the credential issued for this client>');
  const digest = createHash('sha256').update(m[1]!).digest('hex');
  // Compare against every registered digest so that timing does not tell which one matched.
  let ok = false;
  for (const t of s?.tokens ?? []) ok = safeEqual(t, digest) || ok;
  if (!ok) throw refuse(client, 'the bearer credential is not valid for this client', 'the credential issued for this client');
  return true;
}

/** Start-up check of the settings against the listener; returns warnings to print. */
export function checkClientAuthSettings(settings: Readonly<Record<string, ClientAuth>>, loopback: boolean, tls: boolean): string[] {
  const warnings: string[] = [];
  for (const [client, s] of Object.entries(settings)) {
    if (s.auth === 'none' && !loopback) throw new OnceOnlyError('invalid_file', `client ${client}: authentication "none" is allowed only when the client side listens on loopback`, { field: `clients.${client}.auth`, expected: 'tls or bearer' });
    if (s.auth === 'none') warnings.push(`client ${client}: no information-system authentication (loopback only)`);
    if (s.auth === 'tls' && !tls) throw new OnceOnlyError('invalid_file', `client ${client}: authentication "tls" needs the client side to listen with TLS`, { field: `clients.${client}.auth`, expected: 'client.tls: true in gateway.json' });
    if (s.auth === 'tls' && !(s.certificates ?? []).length) warnings.push(`client ${client}: tls authentication with no certificate registered: every request will be refused`);
    if (s.auth === 'bearer' && !(s.tokens ?? []).length) warnings.push(`client ${client}: bearer authentication with no credential registered: every request will be refused`);
    if (s.auth === 'bearer' && !tls && !loopback) throw new OnceOnlyError('invalid_file', `client ${client}: bearer credentials over plain HTTP are allowed on loopback only`, { field: `clients.${client}.auth`, expected: 'client.tls: true, or a loopback listener' });
  }
  return warnings;
}
