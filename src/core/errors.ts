/**
 * @module core/errors
 * The one error class of onceonly. Every refusal, from a malformed catalogue file to a bad check
 * digit in an HTTP path, is an {@link OnceOnlyError} with a stable machine-readable `type`, so
 * callers branch on the type and never on message text. Its JSON form `{type, message, detail}`
 * is the X-Road REST error body (X-Road message protocol for REST, §4.5), which later lets the
 * gateway pass registry errors on unchanged.
 */

/** Details that say exactly what was wrong: which field, what was expected, what came instead. */
export interface ErrorDetail {
  /** Where the problem is: a request field (`query.asAt`), a JSON path (`items[3].owner`), a CSV column. */
  field?: string;
  /** What would have been accepted, in words a developer can act on. */
  expected?: string;
  /** The file the problem was found in, for configuration and input files. */
  file?: string;
  /** 1-based line in `file`, when known. */
  line?: number;
  /** Any further structured facts (e.g. the list of all problems found in a file). */
  [key: string]: unknown;
}

/** Machine-readable error types and the HTTP status each maps to. */
export const ERROR_STATUS = {
  invalid_request: 400,
  invalid_identifier: 400,
  invalid_date: 400,
  unknown_item: 400,
  invalid_value: 422,
  invalid_change: 422,
  invalid_file: 422,
  conflict: 409,
  not_found: 404,
  unknown_subject: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  // The exchange (gateways): each refusal its own type, see docs/exchange.md.
  invalid_service_path: 400,
  unknown_client: 403,
  unknown_service: 404,
  method_not_allowed: 405,
  member_suspended: 403,
  subsystem_suspended: 403,
  gateway_suspended: 403,
  unknown_gateway: 403,
  untrusted_certificate: 403,
  no_agreement: 403,
  agreement_not_in_force: 403,
  item_not_covered: 403,
  consent_required: 403,
  preview_required: 403,
  unsigned_request: 401,
  invalid_signature: 401,
  message_expired: 401,
  replayed_request: 409,
  wrong_audience: 421,
  history_not_granted: 403,
  unknown_provider: 404,
  provider_not_served: 404,
  service_disabled: 503,
  client_not_authenticated: 401,
  invalid_security_server: 400,
  inconsistent_response: 502,
  logging_failed: 500,
  service_unreachable: 502,
  invalid_response_signature: 502,
  response_not_allowed: 502,
  provider_unreachable: 502,
  service_failed: 502,
  service_timeout: 504,
  internal_error: 500,
  service_unavailable: 503,
  unauthorized: 401,
  forbidden: 403,
  invalid_global_conf: 502,
  global_conf_expired: 503,
  // Citizen consent and explicit request with preview: see docs/consent.md.
  consent_not_found: 404,
  invalid_consent_transition: 409,
  consent_not_applicable: 422,
  unknown_agreement: 400,
  item_not_in_agreement: 422,
  invalid_expiry: 422,
  preview_declined: 403,
  invalid_preview_link: 403,
  preview_link_expired: 410,
  preview_already_decided: 409,
} as const;

export type ErrorType = keyof typeof ERROR_STATUS;

/** A typed, expected failure. Anything else thrown is a bug and surfaces as `internal_error`. */
export class OnceOnlyError extends Error {
  readonly type: ErrorType;
  readonly detail: ErrorDetail;

  constructor(type: ErrorType, message: string, detail: ErrorDetail = {}) {
    super(message);
    this.name = 'OnceOnlyError';
    this.type = type;
    this.detail = detail;
  }

  /** HTTP status for this error's type. */
  get status(): number {
    return ERROR_STATUS[this.type];
  }

  /** The wire form: X-Road's `{type, message, detail}`. */
  toJSON(): { type: ErrorType; message: string; detail: ErrorDetail } {
    return { type: this.type, message: this.message, detail: this.detail };
  }
}

/** True for errors this code base raised on purpose. */
export function isOnceOnlyError(e: unknown): e is OnceOnlyError {
  return e instanceof OnceOnlyError;
}
