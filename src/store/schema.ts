/**
 * @module store/schema
 * Kysely table types. Dates are `YYYY-MM-DD` text, instants UTC ISO text, JSON values text, on
 * both engines (see core/dates for why); sequence numbers are numbers on both (the PostgreSQL
 * driver is told to parse int8 as a JS number, safe below 2^53).
 */
import type { ColumnType, Generated } from 'kysely';

/** A record held by a registry: a person, an address, a company. */
export interface SubjectTable {
  /** Registry subsystem id that masters the record, e.g. `UK/GOV/GRO/population`. */
  registry: string;
  /** The record's identifier inside that registry (national id, address id, company number). */
  id: string;
  /** When the registry first recorded it (UTC instant). */
  recorded_at: string;
}

/**
 * One bitemporal fact: `item` of `subject` had `value` from `valid_from` (inclusive) to
 * `valid_to` (exclusive, null = still true), as the registry believed from `recorded_at` until
 * `superseded_at` (null = current belief). Rows are never updated except to set `superseded_at`,
 * so "what did we know on day X" stays answerable.
 */
export interface FactTable {
  seq: Generated<number>;
  registry: string;
  subject: string;
  item: string;
  /** JSON text of the value. */
  value: string;
  valid_from: string;
  valid_to: string | null;
  recorded_at: string;
  superseded_at: string | null;
  /** `initial`, `change` or `correction`. */
  kind: string;
  /** The change or correction that wrote this row. */
  change_id: string;
}

/** The journal of changes and corrections as they were requested: what happened, not its effect. */
export interface ChangeTable {
  id: string;
  registry: string;
  subject: string;
  /** e.g. `move`, `name`, `death`, `correction`, `register`. */
  type: string;
  effective_date: string;
  recorded_at: string;
  /** JSON text of the validated request. */
  payload: string;
}

export interface Database {
  subject: SubjectTable;
  fact: FactTable;
  change: ChangeTable;
  gateway_conf: GatewayConfTable;
  replay_guard: ReplayGuardTable;
  message_log: MessageLogTable;
  message_log_head: MessageLogHeadTable;
  message_log_checkpoint: MessageLogCheckpointTable;
  central_member: CentralMemberTable;
  central_subsystem: CentralSubsystemTable;
  central_gateway: CentralGatewayTable;
  central_agreements: CentralAgreementsTable;
  central_conf: CentralConfTable;
  central_counter: CentralCounterTable;
  central_token: CentralTokenTable;
  central_audit: CentralAuditTable;
  transparency_tree: TransparencyTreeTable;
  transparency_entry: TransparencyEntryTable;
  transparency_node: TransparencyNodeTable;
  transparency_head: TransparencyHeadTable;
  consent_record: ConsentRecordTable;
  consent_history: ConsentHistoryTable;
  preview: PreviewTable;
  access_record: AccessRecordTable;
  central_gateway_subsystem: CentralGatewaySubsystemTable;
  transparency_cosignature: TransparencyCosignatureTable;
  transparency_witness: TransparencyWitnessTable;
  event_counter: EventCounterTable;
  event_outbox: EventOutboxTable;
  event_subscription: EventSubscriptionTable;
  event_interest: EventInterestTable;
  event_queue: EventQueueTable;
  event_relay: EventRelayTable;
  event_lease: EventLeaseTable;
  portal_session: PortalSessionTable;
  portal_match: PortalMatchTable;
}

/** A register's event counter (migration 0010_tell_us_once). */
export interface EventCounterTable {
  registry: string;
  seq: number;
}

/** One change event of a register, written with the change (the transactional outbox). */
export interface EventOutboxTable {
  registry: string;
  seq: number;
  id: string;
  subject: string;
  change_id: string;
  type: string;
  effective_date: string;
  recorded_at: string;
  /** JSON array of the items the change wrote. */
  items: string;
  /** JSON array of member or subsystem ids the person chose to tell; null for all entitled. */
  notify: string | null;
}

/** A subscription to a provider's change events, at the provider's gateway. */
export interface EventSubscriptionTable {
  id: string;
  provider: string;
  client: string;
  /** JSON array of change types. */
  events: string;
  agreement: string;
  purpose: string;
  mode: 'push' | 'pull';
  status: 'active' | 'removed';
  created_at: string;
  removed_at: string | null;
  from_seq: number;
}

/** A subject on a subscription's interest list. */
export interface EventInterestTable {
  subscription: string;
  subject: string;
  added_at: string;
}

/** One event for one subscription, and its delivery. */
export interface EventQueueTable {
  subscription: string;
  seq: number;
  event_id: string;
  subject: string;
  type: string;
  payload: string;
  created_at: string;
  /** `refused`: never delivered (the subscription ended, or the agreement or the member lapsed). */
  state: 'pending' | 'delivered' | 'dead' | 'refused';
  attempts: number;
  next_attempt_at: string;
  last_error: string | null;
  delivered_at: string | null;
  /** 1 once handed to JetStream (when that transport is used). */
  published: number;
}

/** How far a gateway has relayed a register's outbox. */
export interface EventRelayTable {
  provider: string;
  cursor: number;
  updated_at: string;
}

/** Which process holds a named lease, until when. */
export interface EventLeaseTable {
  name: string;
  holder: string;
  until: string;
}

/** One release of items about a person by a provider gateway (migration 0007_access). */
export interface AccessRecordTable {
  gateway_id: string;
  log_position: number;
  person: string;
  at: string;
  client: string;
  provider: string;
  service: string;
  /** JSON array text. */
  items: string;
  agreement: string;
  purpose: string;
  legal_basis: string;
  request_id: string;
  user_id: string | null;
  tlog_index: number;
  /** The valid-time date read (`asAt`), when it was not today (migration 0008). */
  as_at: ColumnType<string | null, string | null | undefined, string | null>;
  /** Several records of one exchange (a pull-feed page), 0.. (migration 0010). */
  part: ColumnType<number, number | undefined, number>;
  /** JSON `{type, eventId}` when the release was a notification of a change (Tell Us Once). */
  notice: ColumnType<string | null, string | null | undefined, string | null>;
  /** The transaction-time instant read (`knownAt`), when one was asked for. */
  known_at: ColumnType<string | null, string | null | undefined, string | null>;
}

/** A verified global configuration a gateway accepted. */
export interface GatewayConfTable {
  gateway_id: string;
  serial: number;
  jws: string;
  issued_at: string;
  expires_at: string;
  fetched_at: string;
}

/** Request ids seen, refused again until `expires_at`. */
export interface ReplayGuardTable {
  gateway_id: string;
  client: string;
  request_id: string;
  expires_at: string;
}

/** One exchange as one gateway saw it; a link in that gateway's hash chain. */
export interface MessageLogTable {
  seq: Generated<number>;
  gateway_id: string;
  position: number;
  at: string;
  /** `client` (this gateway sent the request) or `provider` (it served it). */
  side: string;
  request_id: string;
  client: string;
  service: string;
  purpose: string | null;
  agreement: string | null;
  /** JSON array of item ids, when the service is a registry read. */
  items: string | null;
  user_id: string | null;
  status: number;
  error_type: string | null;
  request_hash: string;
  response_digest: string | null;
  request_signature: string | null;
  response_signature: string | null;
  /** Full bodies only when the gateway is configured to keep them. */
  request_body: string | null;
  response_body: string | null;
  /** Canonical record format the hash covers: 1 (before migration 0008) or 2 (with peer and detail). */
  format: ColumnType<number, number | undefined, number>;
  /** The other gateway of the exchange: the provider gateway on the client side, the sender on the provider side. */
  peer: string | null;
  /** JSON object: X-Road request id, error id, the time read, the gateways tried (format 2). */
  detail: string | null;
  prev_hash: string;
  hash: string;
}

export interface MessageLogHeadTable {
  gateway_id: string;
  position: number;
  hash: string;
}

export interface MessageLogCheckpointTable {
  gateway_id: string;
  position: number;
  hash: string;
  at: string;
  conf_serial: number;
  signature: string;
}

/** A member (organisation) known to the central authority. */
export interface CentralMemberTable {
  /** `INSTANCE/CLASS/MEMBER`. */
  id: string;
  name: string;
  /** `active` or `suspended`. */
  status: string;
  created_at: string;
  updated_at: string;
}

/** A subsystem of a member. */
export interface CentralSubsystemTable {
  /** `INSTANCE/CLASS/MEMBER/SUBSYSTEM`. */
  id: string;
  member: string;
  status: string;
  created_at: string;
  updated_at: string;
}

/** A subsystem the central assigned to a gateway (migration 0008): the gateway serves it and sends for it. */
export interface CentralGatewaySubsystemTable {
  gateway_id: string;
  subsystem_id: string;
  /** `pending` (asked for at registration, awaiting the operator) or `active`. */
  status: string;
  created_at: string;
}

/** A registered gateway with the certificate the central CA issued it. */
export interface CentralGatewayTable {
  /** `INSTANCE/CLASS/MEMBER/GATEWAYCODE`. */
  id: string;
  member: string;
  address: string;
  tls_certificate: string;
  /** SHA-256 of the certificate DER, lower-case hex. */
  fingerprint: string;
  /** JSON text of the gateway's Ed25519 public JWK. */
  signing_key: string;
  /** `pending` (registered with a member's token, awaiting the operator's approval), `active` or `suspended`. */
  status: string;
  created_at: string;
  updated_at: string;
}

/** A published agreements document; the highest version is in force. */
export interface CentralAgreementsTable {
  version: number;
  /** JSON text `{agreements: [...]}`, as validated. */
  document: string;
  published_at: string;
  actor: string;
}

/** A signed global configuration. */
export interface CentralConfTable {
  serial: number;
  jws: string;
  issued_at: string;
  expires_at: string;
  /** The `state_version` counter it was built from. */
  state_version: number;
}

/** Named counters (`conf_serial`, `state_version`). */
export interface CentralCounterTable {
  name: string;
  value: number;
}

/** A management API token: only its SHA-256 is stored. */
export interface CentralTokenTable {
  id: string;
  /** SHA-256 hex of the token. */
  hash: string;
  label: string;
  created_at: string;
  revoked_at: string | null;
  /** Null: a full management token. `gateway-registration`: may register one gateway of `member`. */
  scope: string | null;
  member: string | null;
  /** When a single-use token was used. */
  used_at: string | null;
}

/** One entry of the admin audit log, a link in its hash chain. */
export interface CentralAuditTable {
  seq: number;
  at: string;
  /** `cli`, `api:<token-id>` or `init`. */
  actor: string;
  action: string;
  target: string;
  /** JSON text. */
  detail: string;
  prev_hash: string;
  hash: string;
}

/** A transparency log's size; appends lock this row. */
export interface TransparencyTreeTable {
  /** The log's name (its origin, signed into every tree head). */
  log: string;
  size: number;
}

/** One entry of a transparency log: a leaf of its Merkle tree. */
export interface TransparencyEntryTable {
  log: string;
  /** The 0-based leaf index. */
  seq: number;
  /** The exact leaf input: canonical JSON text `{format, index, record, time}`. */
  entry: string;
  /** RFC 9162 leaf hash SHA-256(0x00 || entry), 32 bytes. */
  leaf_hash: Buffer;
  /** When it was appended, UTC ISO (also inside `entry`, where the hash covers it). */
  appended_at: string;
}

/** The hash of a complete subtree of 2^level leaves (level >= 1), number `idx` on its level. */
export interface TransparencyNodeTable {
  log: string;
  level: number;
  idx: number;
  /** 32 bytes. */
  hash: Buffer;
}

/** A signed tree head. */
export interface TransparencyHeadTable {
  log: string;
  tree_size: number;
  /** 32 bytes. */
  root_hash: Buffer;
  signed_at: string;
  /**
   * The checkpoint's signed-note key ID, 8 hex digits (heads signed before migration 0009: the
   * RFC 7638 thumbprint of the signing key's JWK).
   */
  key_id: string;
  /** The base64 of the checkpoint's signature line (before 0009: Ed25519 over the onceonly-tree-head-1 message, base64url). */
  signature: string;
}

/** A witness's cosignature of one of this store's checkpoints (migration 0009_witness). */
export interface TransparencyCosignatureTable {
  log: string;
  tree_size: number;
  root_hash: Buffer;
  /** The cosigner's key name. */
  witness: string;
  /** Its key ID, 8 hex digits. */
  key_id: string;
  /** The signature line, without its newline. */
  line: string;
  /** POSIX seconds, from the cosignature. */
  cosigned_at: number;
  received_at: string;
}

/** What this gateway, as a witness, last cosigned for a log origin (migration 0009_witness). */
export interface TransparencyWitnessTable {
  origin: string;
  tree_size: number;
  root_hash: Buffer;
  /** That checkpoint, with the log's signature(s) and this witness's cosignature. */
  checkpoint: string;
  updated_at: string;
}

/** A consent record (ISO/IEC TS 27560): its current state; every change is in `consent_history`. */
export interface ConsentRecordTable {
  id: string;
  /** The person (PII principal), e.g. `P-000001234-7`. */
  person: string;
  /** The client subsystem that receives the data (PII controller). */
  controller: string;
  provider: string;
  agreement: string;
  purpose: string;
  purpose_description: string;
  legal_basis: string;
  /** JSON array of item ids, sorted. */
  items: string;
  /** `requested`, `given`, `refused`, `withdrawn` or `expired` (W3C DPV consent states). */
  state: string;
  created_at: string;
  given_at: string | null;
  expires_at: string | null;
  updated_at: string;
  /** Number of history rows; every change is a compare-and-set on it. */
  version: number;
}

/** One change of state of a consent record. */
export interface ConsentHistoryTable {
  consent_id: string;
  /** 1-based position in the record's history. */
  seq: number;
  /** Null for the change that created the record. */
  from_state: string | null;
  to_state: string;
  at: string;
  /** `person`, `operator`, `system` (expiry) or another short label of who made the change. */
  actor: string;
}

/** An explicit request awaiting, or answered by, the person's preview decision (OOTS). */
export interface PreviewTable {
  id: string;
  client: string;
  provider: string;
  person: string;
  agreement: string;
  purpose: string;
  purpose_description: string;
  legal_basis: string;
  /** JSON array of item ids, sorted. */
  items: string;
  request_fingerprint: string;
  /** `pending`, `approved` or `declined`. */
  state: string;
  created_at: string;
  link_expires_at: string;
  decided_at: string | null;
  decision_expires_at: string | null;
  consumed_at: string | null;
}

/** A portal session or a sign-in under way (migration 0012_citizen_portal). */
export interface PortalSessionTable {
  /** SHA-256 (base64url) of the cookie's value. */
  id: string;
  /** `login` (a sign-in under way) or `session`. */
  kind: string;
  /** The register id of the person signed in; null for a sign-in under way. */
  person: string | null;
  /** JSON: a login's state, nonce and PKCE verifier; a session's issuer, subject and display name. */
  data: string;
  created_at: string;
  last_seen_at: string;
  /** The absolute end: after it the row is refused whatever its idle time. */
  expires_at: string;
}

/** An identity-match decision (migration 0012_citizen_portal). */
export interface PortalMatchTable {
  id: string;
  issuer: string;
  /** The issuer's (pairwise) subject identifier. */
  subject: string;
  /** The register id matched; null when none or ambiguous. */
  person: string | null;
  /** `matched`, `none` or `ambiguous`. */
  outcome: string;
  score: number | null;
  /** JSON: per field compared, whether it agreed and at which level. */
  fields: string;
  decided_at: string;
}
