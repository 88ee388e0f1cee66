/**
 * @module core/ids
 * X-Road style identifiers (X-Road architecture, "Identifiers"): a subsystem is
 * `INSTANCE/CLASS/MEMBER/SUBSYSTEM` and a service is `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`.
 * Each part comes from a restricted character set so that an identifier can be embedded in a URL
 * path, a header and a log line without escaping, and so that path tricks (`..`, encoded
 * slashes, control characters) can never form a valid part.
 */
import { OnceOnlyError } from './errors.ts';

/**
 * One identifier part: starts with a letter or digit, then letters, digits, `.`, `_` or `-`,
 * 1 to 64 characters. X-Road itself forbids only a few characters; we are stricter because every
 * part ends up in URLs and file names.
 */
export const ID_PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const PART_EXPECTED = '1-64 characters: letters, digits, ".", "_" or "-", starting with a letter or digit';

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

function splitParts(text: unknown, count: number, field: string, shape: string): string[] {
  if (typeof text !== 'string') {
    throw new OnceOnlyError('invalid_identifier', `${field} must be a string of the form ${shape}`, {
      field,
      expected: shape,
    });
  }
  const parts = text.split('/');
  if (parts.length !== count) {
    throw new OnceOnlyError('invalid_identifier', `${field} must have ${count} parts: ${shape}`, {
      field,
      expected: shape,
    });
  }
  parts.forEach((p, i) => {
    // '..' cannot match ID_PART (it must start with a letter or digit), so no path traversal.
    if (!ID_PART.test(p)) {
      throw new OnceOnlyError('invalid_identifier', `${field}: part ${i + 1} of ${shape} is not valid`, {
        field,
        expected: PART_EXPECTED,
      });
    }
  });
  return parts;
}

/** Parses `INSTANCE/CLASS/MEMBER/SUBSYSTEM`, naming `field` in the error when it is not one. */
export function parseSubsystemId(text: unknown, field = 'subsystem'): SubsystemId {
  const [instance, memberClass, memberCode, subsystemCode] = splitParts(
    text,
    4,
    field,
    'INSTANCE/CLASS/MEMBER/SUBSYSTEM',
  ) as [string, string, string, string];
  return { instance, memberClass, memberCode, subsystemCode };
}

/** Parses `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`. */
export function parseServiceId(text: unknown, field = 'service'): ServiceId {
  const [instance, memberClass, memberCode, subsystemCode, serviceCode] = splitParts(
    text,
    5,
    field,
    'INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE',
  ) as [string, string, string, string, string];
  return { instance, memberClass, memberCode, subsystemCode, serviceCode };
}

/** The canonical text form of a subsystem id. */
export function formatSubsystemId(id: SubsystemId): string {
  return `${id.instance}/${id.memberClass}/${id.memberCode}/${id.subsystemCode}`;
}

/** The canonical text form of a service id. */
export function formatServiceId(id: ServiceId): string {
  return `${formatSubsystemId(id)}/${id.serviceCode}`;
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
