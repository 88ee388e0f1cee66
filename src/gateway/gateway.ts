/**
 * @module gateway/gateway
 * A gateway: one per organisation (X-Road's security server). Its client side (gateway/client)
 * takes X-Road REST (`r1`) requests from the organisation's own systems, authenticates them and
 * sends them, signed, over mutual TLS to a gateway the central assigned to the provider's
 * subsystem; its provider side (gateway/provider) checks such requests (certificate, signature,
 * time, replay, address, assignment, agreement), calls the registered service, checks that the
 * answer releases nothing beyond what was granted, and signs the answer bound to the request. Both
 * sides log every exchange in a hash-chained message log. Protocol: docs/exchange.md.
 *
 * This module holds what both sides share (identity, keys, clocks, limits) and the types of the
 * gateway's settings.
 */
import type { KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Kysely } from 'kysely';
import type SQLite from 'better-sqlite3';
import { Type, type Static } from 'typebox';
import type { Database } from '../store/schema.ts';
import { memberOfId, parseSubsystemId } from '../core/ids.ts';
import { BatchSigner, BatchVerifier } from '../core/batchsign.ts';
import type { ConfClient } from './confclient.ts';
import type { MessageLog } from './messagelog.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { AccessRecorder, Release } from '../transparency/access.ts';
import type { GatewayEvents } from './events.ts';
import type { ConsentStore } from '../consent/consent.ts';
import type { PreviewStore } from '../preview/preview.ts';
import type { ClientAuth } from './isauth.ts';
import { ClientSide } from './client.ts';
import { ProviderSide } from './provider.ts';
import { PeerPool } from './peers.ts';

/** A service a provider subsystem offers through this gateway (`gateway.json` `services`). */
export const ServiceRegistrationSchema = Type.Object(
  {
    /** Base URL; the rest of the path after the service code is appended. */
    url: Type.String({ minLength: 1, maxLength: 2000 }),
    /** Milliseconds before the call is abandoned with `service_timeout`. */
    timeoutMs: Type.Integer({ minimum: 1, maximum: 600_000 }),
    /** Headers the gateway adds when calling it (e.g. the registry's bearer token); a client can never set these. */
    headers: Type.Optional(Type.Record(Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }), Type.String())),
    /**
     * `registry`: an onceonly registry, read with GET under the registry contract (gateway/release):
     * items access-checked, the answer checked against the grant. `rest`: any REST service, passed
     * through as X-Road does (any method, path, headers, body, 3xx), allowed by agreements that name
     * the service in `services`.
     */
    kind: Type.Union([Type.Literal('registry'), Type.Literal('rest')]),
    /** Description for listMethods. */
    description: Type.Optional(Type.String({ maxLength: 500 })),
    /** `rest`: the endpoints listMethods lists (X-Road's endpoint_list; `*` and `**` globs). */
    endpoints: Type.Optional(Type.Array(Type.Object({ method: Type.String({ minLength: 1, maxLength: 10 }), path: Type.String({ minLength: 1, maxLength: 500 }) }, { additionalProperties: false }), { maxItems: 500 })),
    /**
     * `registry`: URL of the register's change-event outbox (`GET …?after=&wait=`, `…/types`), set
     * when the register announces changes (Tell Us Once): the gateway relays them to subscribers.
     */
    events: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
    /** `rest`: URL of the service's OpenAPI description, for getOpenAPI. */
    openapi: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
  },
  { additionalProperties: false },
);
export type ServiceRegistration = Static<typeof ServiceRegistrationSchema>;

/** Everything a gateway needs to run. */
export interface GatewayOptions {
  /** Gateway id `INSTANCE/CLASS/MEMBER/CODE`. */
  id: string;
  db: Kysely<Database>;
  /** The raw handle under `db` when the store is SQLite (hot-path statements use it). */
  sqlite?: SQLite.Database | undefined;
  conf: ConfClient;
  log: MessageLog;
  /** Access records of releases about people, and the data-usage service that serves them. */
  access?: AccessRecorder;
  /** Consents, checked for agreements flagged consent-required (without it those release nothing). */
  consents?: ConsentStore;
  /** Explicit requests and previews, for agreements flagged preview-required (without it those release nothing). */
  previews?: PreviewStore;
  /** Tell Us Once: subscriptions, feeds and event inboxes (gateway/events). */
  events?: GatewayEvents;
  metrics: GatewayMetrics;
  signingKey: KeyObject;
  tls: { key: string; cert: string };
  /** Services by provider subsystem id, then service code. */
  services: Record<string, Record<string, ServiceRegistration>>;
  /** Information-system authentication per client (gateway/isauth). */
  clients?: Record<string, ClientAuth>;
  /** The client side listens on loopback only (then `none` is the default and allowed). */
  clientLoopback?: boolean;
  /** Keep full request and response bodies in the message log (default false: digests only). */
  logBodies?: boolean;
  /** Largest request or response body accepted, bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /** Accepted clock difference between gateways, ms (default 60 s). */
  timeWindowMs?: number;
  /** How long to wait for a provider gateway's TCP and TLS connection before trying the next (default 5 s). */
  connectTimeoutMs?: number;
  now?: () => Date;
}

/** A request as either side of the gateway receives it. */
export interface InboundRequest {
  method: string;
  rawUrl: string;
  /** Node's raw header list: name, value, name, value, … in the order and case received. */
  rawHeaders: string[];
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The TLS socket, on the provider side and on a TLS client side. */
  socket?: TLSSocket | undefined;
  /** The body was over the size limit and was not read. */
  oversized?: boolean;
  /**
   * Set only by the gateway itself, never from a connection (gateway/server builds requests
   * without it): a request its own Tell Us Once dispatcher sends as the register's subsystem. It
   * skips information-system authentication (no outside system speaks), and `release` gives the
   * access records written with the client-side log record: of the events the answer says were
   * taken (a batch may be taken in part).
   */
  internal?: { release?: (res: OutboundResponse) => Release[] };
}

/** What the gateway answers. */
export interface OutboundResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

/** What both sides share. */
export interface GatewayContext {
  readonly id: string;
  /** `INSTANCE/CLASS/MEMBER` of the gateway's owner. */
  readonly member: string;
  readonly instance: string;
  readonly o: GatewayOptions;
  readonly now: () => Date;
  readonly maxBody: number;
  readonly window: number;
  readonly signer: BatchSigner;
  readonly verifier: BatchVerifier;
  /** Connections to other gateways (the exchange, witnessing). */
  readonly peers: PeerPool;
}

/** One organisation's gateway. */
export class Gateway {
  readonly id: string;
  readonly member: string;
  readonly client: ClientSide;
  readonly provider: ProviderSide;
  /** Connections to other gateways' provider sides. */
  readonly peers: PeerPool;

  constructor(o: GatewayOptions) {
    const gw = parseSubsystemId(o.id, 'gateway.id');
    const ctx: GatewayContext = {
      id: o.id,
      member: memberOfId(o.id),
      instance: gw.instance,
      o,
      now: o.now ?? (() => new Date()),
      maxBody: o.maxBodyBytes ?? 4 * 1024 * 1024,
      window: o.timeWindowMs ?? 60_000,
      signer: new BatchSigner(o.signingKey, o.id),
      verifier: new BatchVerifier(),
      peers: new PeerPool({ conf: o.conf, tls: o.tls, maxResponseSize: o.maxBodyBytes ?? 4 * 1024 * 1024, connectTimeoutMs: o.connectTimeoutMs }),
    };
    this.peers = ctx.peers;
    this.id = ctx.id;
    this.member = ctx.member;
    this.client = new ClientSide(ctx);
    this.provider = new ProviderSide(ctx);
  }

  /** Handles a request from one of the organisation's information systems (`/r1/…`, `/listClients`). */
  handleClient(req: InboundRequest): Promise<OutboundResponse> {
    return this.client.handle(req);
  }

  /** Handles `METHOD /oo1/…` from another gateway. */
  handleProvider(req: InboundRequest): Promise<OutboundResponse> {
    return this.provider.handle(req);
  }

  /** Admits a provider-side connection before its body is read (gateway/provider). */
  admit(socket: TLSSocket): Promise<OutboundResponse | undefined> {
    return this.provider.admit(socket);
  }

  /** Starts background work (replay-guard sweeping). */
  start(): void {
    this.provider.start();
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.client.close(), this.provider.close()]);
  }
}
