/**
 * @module central/types
 * The global configuration: the one signed document the central authority publishes and every
 * gateway lives by (X-Road's "global configuration"). A gateway trusts nothing in it until the
 * signature verifies against the anchor it was given out of band, and nothing at all once it has
 * expired.
 */
import type { Ed25519PublicJwk } from '../core/crypto.ts';
import type { Agreement } from '../catalogue/agreements.ts';

/** What an operator hands each gateway out of band: whom to trust and where to find them. */
export interface Anchor {
  /** Format marker. */
  kind: 'onceonly-anchor';
  version: 1;
  /** X-Road instance identifier, e.g. `UK`. */
  instance: string;
  /** Where the central serves the global configuration. */
  centralUrl: string;
  /** The central's configuration-signing key. */
  publicKey: Ed25519PublicJwk;
  createdAt: string;
}

export type Status = 'active' | 'suspended';

export interface MemberEntry {
  /** `INSTANCE/CLASS/MEMBER`. */
  id: string;
  name: string;
  status: Status;
}

export interface SubsystemEntry {
  /** `INSTANCE/CLASS/MEMBER/SUBSYSTEM`. */
  id: string;
  /** `INSTANCE/CLASS/MEMBER`. */
  member: string;
  status: Status;
}

export interface GatewayEntry {
  /** Gateway id: `INSTANCE/CLASS/MEMBER/GATEWAYCODE` (a member may run several). */
  id: string;
  member: string;
  /** Base URL of its provider side, e.g. `https://127.0.0.1:8601`. */
  address: string;
  /** TLS certificate issued by the central CA, PEM. */
  tlsCertificate: string;
  /** SHA-256 of the certificate's DER, lower-case hex: what peers pin. */
  tlsFingerprint: string;
  /** Its message-signing key. */
  signingKey: Ed25519PublicJwk;
  status: Status;
  /**
   * The subsystems the central assigned to it (X-Road's clients of a security server): it serves
   * these as a provider and sends for these as a client, and for no other.
   */
  subsystems: string[];
}

/** The signed document itself (the JWS payload). */
export interface GlobalConfiguration {
  kind: 'onceonly-global-configuration';
  version: 1;
  instance: string;
  /** Monotonic serial: a gateway never accepts an older configuration than it holds. */
  serial: number;
  issuedAt: string;
  expiresAt: string;
  /** The central CA's certificate, PEM. */
  caCertificate: string;
  members: MemberEntry[];
  subsystems: SubsystemEntry[];
  gateways: GatewayEntry[];
  agreements: Agreement[];
}
