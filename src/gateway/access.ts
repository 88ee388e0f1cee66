/**
 * @module gateway/access
 * The provider gateway's access decision: deny by default. A request passes only if an agreement
 * in force names this client, this provider and this purpose (or is the agreement the request
 * names), and grants every item asked for, and, when the request reads the past, that item's
 * history back to the time asked for; or, for a plain REST service, names that service. Each way of
 * failing has its own error type, so a client learns what to fix without learning what others may
 * read.
 */
import { OnceOnlyError } from '../core/errors.ts';
import { memberOfId } from '../core/ids.ts';
import type { Agreement } from '../catalogue/agreements.ts';
import type { ConfView } from './confclient.ts';

/** Which time a registry read asks for, when not the present (issue 10, hole 1). */
export interface ReadTime {
  /** Valid-time date `YYYY-MM-DD`, when asked for and not today. */
  asAt?: string;
  /** Transaction-time instant, when asked for. */
  knownAt?: string;
}

export interface AccessRequest {
  client: string;
  provider: string;
  purpose: string;
  /** Agreement id the client named, or '' for "any agreement for this purpose". */
  agreement: string;
  items: readonly string[];
  /** Today's date, YYYY-MM-DD. */
  date: string;
  /** The past the request reads, if any. */
  time?: ReadTime;
  /** For plain REST services: the service code called (instead of items). */
  service?: string;
}

/** Checks the client (subsystem or member) and its member are known and active. */
export function requireActiveClient(v: ConfView, client: string): void {
  const memberId = memberOfId(client);
  const member = v.members.get(memberId);
  if (client !== memberId) {
    const sub = v.subsystems.get(client);
    if (!sub) throw new OnceOnlyError('unknown_client', 'the client subsystem is not registered in the global configuration', { field: 'client', expected: 'a registered subsystem' });
    if (!member) throw new OnceOnlyError('unknown_client', 'the client\'s member is not registered', { field: 'client' });
    if (member.status !== 'active') throw new OnceOnlyError('member_suspended', 'the client\'s member organisation is suspended', { field: 'client', member: member.id });
    if (sub.status !== 'active') throw new OnceOnlyError('subsystem_suspended', 'the client subsystem is suspended', { field: 'client' });
    return;
  }
  if (!member) throw new OnceOnlyError('unknown_client', 'the client member is not registered in the global configuration', { field: 'client', expected: 'a registered member' });
  if (member.status !== 'active') throw new OnceOnlyError('member_suspended', 'the client member organisation is suspended', { field: 'client', member: member.id });
}

/** Checks the provider subsystem and its member are known and active (`unknown_service`, `service_disabled`). */
export function requireActiveProvider(v: ConfView, provider: string): void {
  const sub = v.subsystems.get(provider);
  if (!sub) throw new OnceOnlyError('unknown_service', 'the provider subsystem is not registered in the global configuration', { field: 'path.service', expected: 'a registered subsystem' });
  const member = v.members.get(sub.member);
  if (!member || member.status !== 'active') throw new OnceOnlyError('service_disabled', 'the provider\'s member organisation is suspended', { field: 'path.service' });
  if (sub.status !== 'active') throw new OnceOnlyError('service_disabled', 'the provider subsystem is suspended', { field: 'path.service' });
}

function inForce(a: Agreement, date: string): boolean {
  return a.validFrom <= date && date <= a.validUntil;
}

/** The earliest date (`YYYY-MM-DD`) `years` before `date`. */
function yearsBefore(date: string, years: number): string {
  const y = Number(date.slice(0, 4)) - years;
  const md = date.slice(5);
  // 29 February, `years` back, may not exist: the day after (1 March) is the earliest day granted.
  const candidate = `${String(y).padStart(4, '0')}-${md}`;
  return md === '02-29' && !(y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)) ? `${String(y).padStart(4, '0')}-03-01` : candidate;
}

/** The items of `items` whose history `a` does not grant back to `time`; [] when it grants all. */
export function historyNotGranted(a: Agreement, items: readonly string[], time: ReadTime, date: string): string[] {
  const earliest = [time.asAt, time.knownAt?.slice(0, 10)].filter((d): d is string => d !== undefined).sort()[0];
  if (earliest === undefined) return [];
  return items.filter((item) => {
    const g = a.history.find((h) => h.item === item);
    if (!g) return true;
    return g.years !== undefined && earliest < yearsBefore(date, g.years);
  });
}

/** The candidate agreements for a request, or the most specific refusal when there are none in force. */
function inForceCandidates(v: ConfView, r: AccessRequest): Agreement[] {
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
  return current;
}

/** Returns the agreement that allows the request, or throws the most specific refusal. */
export function decideAccess(v: ConfView, r: AccessRequest): Agreement {
  const current = inForceCandidates(v, r);
  if (r.service !== undefined) {
    const a = current.find((x) => x.services.includes(r.service!));
    if (a) return a;
    throw new OnceOnlyError('no_agreement', `no agreement in force for this purpose grants the service ${r.service}`, { field: 'path.service', expected: 'a service named in the agreement\'s services' });
  }
  let best: { a: Agreement; missing: string[] } | undefined;
  let history: { a: Agreement; missing: string[] } | undefined;
  for (const a of current) {
    const granted = new Set(a.items);
    const missing = r.items.filter((i) => !granted.has(i));
    // Consent and preview, when the agreement asks for them, are checked by the provider gateway
    // after this decision (they need the person and the store): see gateway/provider.
    if (missing.length === 0) {
      const notGranted = r.time ? historyNotGranted(a, r.items, r.time, r.date) : [];
      if (notGranted.length === 0) return a;
      if (!history || notGranted.length < history.missing.length) history = { a, missing: notGranted };
      continue;
    }
    if (!best || missing.length < best.missing.length) best = { a, missing };
  }
  if (history) {
    // The present is granted, the past asked for is not: nothing is released, not even today's value.
    throw new OnceOnlyError('history_not_granted', `the agreement does not grant reading ${history.missing.join(', ')} as it was at the time asked for`, {
      field: r.time?.knownAt !== undefined ? 'query.knownAt' : 'query.asAt',
      agreement: history.a.id,
      notGranted: history.missing,
      expected: history.a.history.length ? `history granted by ${history.a.id}: ${history.a.history.map((h) => (h.years ? `${h.item} (${h.years} years)` : h.item)).join(', ')}` : `no asAt or knownAt: ${history.a.id} grants no history`,
    });
  }
  // Refuse the whole request rather than narrow it: a silently narrowed answer looks complete.
  throw new OnceOnlyError('item_not_covered', `the agreement does not cover ${best!.missing.join(', ')}`, {
    field: 'query.items',
    agreement: best!.a.id,
    notCovered: best!.missing,
    expected: `items granted by ${best!.a.id}: ${best!.a.items.join(', ')}`,
  });
}

/** True when some agreement in force lets `client` use anything of `provider` (for allowedMethods). */
export function agreementsInForce(v: ConfView, client: string, provider: string, date: string): Agreement[] {
  return v.conf.agreements.filter((a) => a.client === client && a.provider === provider && inForce(a, date));
}
