/**
 * @module gateway/access
 * The provider gateway's access decision: deny by default. A request passes only if an
 * agreement in force names this client subsystem, this provider subsystem and this purpose (or
 * is the agreement the request names), and grants every item asked for. Each way of failing has
 * its own error type, so a client learns what to fix without learning what others may read.
 */
import { OnceOnlyError } from '../core/errors.ts';
import type { Agreement } from '../catalogue/agreements.ts';
import type { ConfView } from './confclient.ts';

export interface AccessRequest {
  client: string;
  provider: string;
  purpose: string;
  /** Agreement id the client named, or '' for "any agreement for this purpose". */
  agreement: string;
  items: readonly string[];
  /** Today's date, YYYY-MM-DD. */
  date: string;
}

/** Checks the client subsystem and its member are known and active. */
export function requireActiveClient(v: ConfView, client: string): void {
  const sub = v.subsystems.get(client);
  if (!sub) throw new OnceOnlyError('unknown_client', 'the client subsystem is not registered in the global configuration', { field: 'client', expected: 'a registered subsystem' });
  const member = v.members.get(sub.member);
  if (!member) throw new OnceOnlyError('unknown_client', 'the client\'s member is not registered', { field: 'client' });
  if (member.status !== 'active') throw new OnceOnlyError('member_suspended', 'the client\'s member organisation is suspended', { field: 'client', member: member.id });
  if (sub.status !== 'active') throw new OnceOnlyError('subsystem_suspended', 'the client subsystem is suspended', { field: 'client' });
}

/** Checks the provider subsystem and its member are known and active. */
export function requireActiveProvider(v: ConfView, provider: string): void {
  const sub = v.subsystems.get(provider);
  if (!sub) throw new OnceOnlyError('unknown_service', 'the provider subsystem is not registered in the global configuration', { field: 'path.service', expected: 'a registered subsystem' });
  const member = v.members.get(sub.member);
  if (!member || member.status !== 'active') throw new OnceOnlyError('member_suspended', 'the provider\'s member organisation is suspended', { field: 'path.service' });
  if (sub.status !== 'active') throw new OnceOnlyError('subsystem_suspended', 'the provider subsystem is suspended', { field: 'path.service' });
}

function inForce(a: Agreement, date: string): boolean {
  return a.validFrom <= date && date <= a.validUntil;
}

/** Returns the agreement that allows the request, or throws the most specific refusal. */
export function decideAccess(v: ConfView, r: AccessRequest): Agreement {
  requireActiveClient(v, r.client);
  requireActiveProvider(v, r.provider);
  // A request names its purpose, its agreement, or both (then they must belong together).
  if (r.purpose === '' && r.agreement === '') {
    throw new OnceOnlyError('no_agreement', 'the request names neither a purpose nor an agreement', { field: 'headers.x-onceonly-purpose', expected: 'the purpose id (or the id) of an agreement in the public register' });
  }
  const candidates = v.conf.agreements.filter(
    (a) => a.client === r.client && a.provider === r.provider && (r.purpose === '' || a.purpose.id === r.purpose) && (r.agreement === '' || a.id === r.agreement),
  );
  if (candidates.length === 0) {
    throw new OnceOnlyError('no_agreement', 'no data-sharing agreement lets this client read from this provider for this purpose', {
      field: 'headers.x-onceonly-purpose',
      expected: 'the purpose (and optionally the id) of an agreement in the public register',
    });
  }
  const current = candidates.filter((a) => inForce(a, r.date));
  if (current.length === 0) {
    const a = candidates[0]!;
    throw new OnceOnlyError('agreement_not_in_force', `agreement ${a.id} is not in force today`, { agreement: a.id, validFrom: a.validFrom, validUntil: a.validUntil });
  }
  let best: { a: Agreement; missing: string[] } | undefined;
  for (const a of current) {
    const granted = new Set(a.items);
    const missing = r.items.filter((i) => !granted.has(i));
    // Consent and preview, when the agreement asks for them, are checked by the provider gateway
    // after this decision (they need the person and the store): see Gateway.providerInner.
    if (missing.length === 0) return a;
    if (!best || missing.length < best.missing.length) best = { a, missing };
  }
  // Refuse the whole request rather than narrow it: a silently narrowed answer looks complete.
  throw new OnceOnlyError('item_not_covered', `the agreement does not cover ${best!.missing.join(', ')}`, {
    field: 'query.items',
    agreement: best!.a.id,
    notCovered: best!.missing,
    expected: `items granted by ${best!.a.id}: ${best!.a.items.join(', ')}`,
  });
}
