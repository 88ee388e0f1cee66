/**
 * @module central/ids
 * The identifiers the central handles beyond subsystems: members (`INSTANCE/CLASS/MEMBER`) and
 * gateways (`INSTANCE/CLASS/MEMBER/GATEWAYCODE`). Same part rules as core/ids (X-Road
 * "Identifiers", restricted to a URL-safe set) so that `..`, encoded slashes and control
 * characters can never form one.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { ID_PART, formatSubsystemId, parseSubsystemId } from '../core/ids.ts';

const PART_EXPECTED = '1-64 characters: letters, digits, ".", "_" or "-", starting with a letter or digit';

function split(text: unknown, count: number, field: string, shape: string, instance?: string): string[] {
  if (typeof text !== 'string') {
    throw new OnceOnlyError('invalid_identifier', `${field} must be a string of the form ${shape}`, { field, expected: shape });
  }
  const parts = text.split('/');
  if (parts.length !== count) {
    throw new OnceOnlyError('invalid_identifier', `${field} must have ${count} parts: ${shape}`, { field, expected: shape });
  }
  parts.forEach((p, i) => {
    if (!ID_PART.test(p)) {
      throw new OnceOnlyError('invalid_identifier', `${field}: part ${i + 1} of ${shape} is not valid`, { field, expected: PART_EXPECTED });
    }
  });
  checkInstance(parts[0]!, field, instance);
  return parts;
}

function checkInstance(actual: string, field: string, instance: string | undefined): void {
  // One central serves one X-Road instance; ids of another instance belong to another central.
  if (instance !== undefined && actual !== instance) {
    throw new OnceOnlyError('invalid_identifier', `${field} belongs to instance ${actual}, not ${instance}`, { field, expected: `an id of instance ${instance}` });
  }
}

/** Checks `INSTANCE/CLASS/MEMBER` (of `instance` when given) and returns it. */
export function parseMemberId(text: unknown, field = 'member', instance?: string): string {
  return split(text, 3, field, 'INSTANCE/CLASS/MEMBER', instance).join('/');
}

/** Checks `INSTANCE/CLASS/MEMBER/GATEWAYCODE` (of `instance` when given) and returns it. */
export function parseGatewayId(text: unknown, field = 'gateway', instance?: string): string {
  return split(text, 4, field, 'INSTANCE/CLASS/MEMBER/GATEWAYCODE', instance).join('/');
}

/** Checks `INSTANCE/CLASS/MEMBER/SUBSYSTEM` (of `instance` when given) and returns it canonically. */
export function parseSubsystem(text: unknown, field = 'subsystem', instance?: string): string {
  const id = parseSubsystemId(text, field);
  checkInstance(id.instance, field, instance);
  return formatSubsystemId(id);
}

/** The member part (`INSTANCE/CLASS/MEMBER`) of a checked subsystem or gateway id. */
export function memberOf(id: string): string {
  return id.split('/').slice(0, 3).join('/');
}
