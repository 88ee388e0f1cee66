/**
 * @module core/ids
 * X-Road identifiers (X-Road message protocol for REST, PR-REST 1.0.4 §4.1 and §4.8): a member is
 * `INSTANCE/CLASS/MEMBER`, a subsystem `INSTANCE/CLASS/MEMBER/SUBSYSTEM`, a service
 * `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE` and a gateway (X-Road's security server)
 * `INSTANCE/CLASS/MEMBER/SERVERCODE`. A client is a member or one of its subsystems.
 *
 * Each part uses the characters PR-REST §4.8 allows (letters, digits and `'()+,-.=?`) and `_`
 * (which X-Road's own registration accepts and earlier onceonly identifiers used), starts with a
 * letter or digit (so `.`, `..` and other path tricks can never be a part), and is at most 255
 * characters (X-Road stores identifiers in VARCHAR(255) columns). In URLs each part is
 * percent-encoded on its own ({@link encodeIdPath}) and decoded exactly once before it is
 * validated; see gateway/r1.
 */
import { OnceOnlyError } from './errors.ts';

/** One identifier part. */
export const ID_PART = /^[A-Za-z0-9][A-Za-z0-9._'()+,=?-]{0,254}$/;

/** What a part may be, in words, for error details. */
export const PART_EXPECTED = "1-255 characters: letters, digits and . _ ' ( ) + , = ? -, starting with a letter or digit";

/** A member (organisation): instance, member class and member code. */
export interface MemberId {
  instance: string;
  memberClass: string;
  memberCode: string;
}

/** A subsystem of a member: the unit that serves or consumes data. */
export interface SubsystemId extends MemberId {
  subsystemCode: string;
}

/** A service of a subsystem. */
export interface ServiceId extends SubsystemId {
  serviceCode: string;
}

/** A client of the exchange: a member, or a subsystem of one (PR-REST §4.3, X-Road-Client). */
export interface ClientId extends MemberId {
  /** Absent for a member-level client. */
  subsystemCode?: string;
}

function invalidShape(field: string, shape: string, message: string): OnceOnlyError {
  return new OnceOnlyError('invalid_identifier', message, { field, expected: shape });
}

/** Checks that every part is a valid identifier part; `parts` already decoded. */
export function checkParts(parts: readonly string[], field: string, shape: string): void {
  parts.forEach((p, i) => {
    if (!ID_PART.test(p)) {
      throw new OnceOnlyError('invalid_identifier', `${field}: part ${i + 1} of ${shape} is not valid`, { field, expected: PART_EXPECTED });
    }
  });
}

/** Splits `text` into exactly one of `counts` parts and checks each; names `field` when it cannot. */
export function splitId(text: unknown, counts: readonly number[], field: string, shape: string): string[] {
  if (typeof text !== 'string') throw invalidShape(field, shape, `${field} must be a string of the form ${shape}`);
  const parts = text.split('/');
  if (!counts.includes(parts.length)) throw invalidShape(field, shape, `${field} must have ${counts.join(' or ')} parts: ${shape}`);
  checkParts(parts, field, shape);
  return parts;
}

/** Parses `INSTANCE/CLASS/MEMBER`. */
export function parseMemberIdParts(text: unknown, field = 'member'): MemberId {
  const [instance, memberClass, memberCode] = splitId(text, [3], field, 'INSTANCE/CLASS/MEMBER') as [string, string, string];
  return { instance, memberClass, memberCode };
}

/** Parses `INSTANCE/CLASS/MEMBER/SUBSYSTEM`, naming `field` in the error when it is not one. */
export function parseSubsystemId(text: unknown, field = 'subsystem'): SubsystemId {
  const [instance, memberClass, memberCode, subsystemCode] = splitId(text, [4], field, 'INSTANCE/CLASS/MEMBER/SUBSYSTEM') as [string, string, string, string];
  return { instance, memberClass, memberCode, subsystemCode };
}

/** Parses a client id: `INSTANCE/CLASS/MEMBER` or `INSTANCE/CLASS/MEMBER/SUBSYSTEM`. */
export function parseClientId(text: unknown, field = 'client'): ClientId {
  const parts = splitId(text, [3, 4], field, 'INSTANCE/CLASS/MEMBER[/SUBSYSTEM]');
  const [instance, memberClass, memberCode, subsystemCode] = parts as [string, string, string, string | undefined];
  return subsystemCode === undefined ? { instance, memberClass, memberCode } : { instance, memberClass, memberCode, subsystemCode };
}

/** Parses `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`. */
export function parseServiceId(text: unknown, field = 'service'): ServiceId {
  const [instance, memberClass, memberCode, subsystemCode, serviceCode] = splitId(text, [5], field, 'INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE') as [string, string, string, string, string];
  return { instance, memberClass, memberCode, subsystemCode, serviceCode };
}

/** The canonical text form of a member id. */
export function formatMemberId(id: MemberId): string {
  return `${id.instance}/${id.memberClass}/${id.memberCode}`;
}

/** The canonical text form of a subsystem id. */
export function formatSubsystemId(id: SubsystemId): string {
  return `${formatMemberId(id)}/${id.subsystemCode}`;
}

/** The canonical text form of a client id (member or subsystem). */
export function formatClientId(id: ClientId): string {
  return id.subsystemCode === undefined ? formatMemberId(id) : `${formatMemberId(id)}/${id.subsystemCode}`;
}

/** The canonical text form of a service id. */
export function formatServiceId(id: ServiceId): string {
  return `${formatSubsystemId(id)}/${id.serviceCode}`;
}

/** The member (`INSTANCE/CLASS/MEMBER`) of a checked client, subsystem, service or gateway id. */
export function memberOfId(id: string): string {
  return id.split('/').slice(0, 3).join('/');
}

/** True when `text` is a well-formed subsystem id. */
export function isSubsystemId(text: string): boolean {
  try {
    parseSubsystemId(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Percent-encodes one path segment (RFC 3986 §3.3): everything but unreserved characters,
 * sub-delims, `:` and `@` (the set X-Road's security server leaves as it is when it writes
 * identifiers into X-Road-Client and X-Road-Service).
 */
export function encodePathSegment(part: string): string {
  return encodeURIComponent(part).replace(/%(2[146BC]|3[ABD]|40)/g, (e) => String.fromCharCode(parseInt(e.slice(1), 16)));
}

/**
 * A checked identifier as URL path segments: each part percent-encoded on its own, the separators
 * left as they are (PR-REST §4.2), so that a `?` in a member code cannot start a query.
 */
export function encodeIdPath(id: string): string {
  return id.split('/').map(encodePathSegment).join('/');
}
