/**
 * @module central/ids
 * The identifiers the central handles, checked against the one instance it serves: members
 * (`INSTANCE/CLASS/MEMBER`), subsystems and gateways (`INSTANCE/CLASS/MEMBER/GATEWAYCODE`, X-Road's
 * security server id). The part rules are core/ids'.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { formatSubsystemId, memberOfId, parseSubsystemId, splitId } from '../core/ids.ts';

function checkInstance(actual: string, field: string, instance: string | undefined): void {
  // One central serves one X-Road instance; ids of another instance belong to another central.
  if (instance !== undefined && actual !== instance) {
    throw new OnceOnlyError('invalid_identifier', `${field} belongs to instance ${actual}, not ${instance}`, { field, expected: `an id of instance ${instance}` });
  }
}

function split(text: unknown, count: number, field: string, shape: string, instance?: string): string[] {
  const parts = splitId(text, [count], field, shape);
  checkInstance(parts[0]!, field, instance);
  return parts;
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
export const memberOf = memberOfId;
