/**
 * @module gateway/person-consents
 * The `person-consents` built-in service of a provider gateway that keeps consents: a person's
 * consent records at this register, managed on their behalf by the citizen portal through the
 * exchange (docs/portal.md, "Your permissions").
 *
 * Who the person is comes from `X-Road-UserId`, X-Road's header for the end user on whose behalf
 * a client system calls (carried inside the client gateway's signed request, so in both message
 * logs). The provider accepts it as the person only from a client an agreement in force grants
 * this service (in the demo, the citizen portal alone, which signed the person in and matched
 * them to the register): the client vouches for the sign-in and is accountable for it in the
 * logs, as the portal of an X-Road country is for its users. Any other client is refused before
 * the header is read.
 *
 *   GET    ''                      the person's consent records here, newest first, with history
 *   POST   ''   {agreement, items?, expiresAt}   give consent under an agreement of this subsystem
 *   POST   '/{id}/withdraw'        withdraw one of them
 *   GET    '/{id}/receipt'         its signed receipt
 *
 * A consent id that is not the person's answers `consent_not_found`, as one that does not exist.
 */
import type { KeyObject } from 'node:crypto';
import { OnceOnlyError } from '../core/errors.ts';
import { parseId } from '../core/subjects.ts';
import { DPV_STATE, type Consent, type ConsentStore } from '../consent/consent.ts';
import { decideAccess } from './access.ts';
import type { ConfView } from './confclient.ts';

export const PERSON_CONSENTS_SERVICE = 'person-consents';

/** A request to one of the services a client calls on a person's behalf (also gateway/person-previews). */
export interface PersonServiceRequest {
  v: ConfView;
  method: string;
  servicePath: string;
  query: string;
  body: Buffer | null;
  client: string;
  provider: string;
  purpose: string;
  agreement: string;
  userId: string;
  date: string;
}

export interface PersonServiceAnswer {
  status: number;
  body: unknown;
  agreement: string;
}

const ID = /^[A-Za-z0-9-]{1,64}$/;

function jsonBody(body: Buffer | null): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(body?.toString('utf8') ?? '');
  } catch {
    throw new OnceOnlyError('invalid_request', 'the body must be JSON', { field: 'body', expected: '{agreement, items?, expiresAt}' });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new OnceOnlyError('invalid_request', 'the body must be a JSON object', { field: 'body', expected: '{agreement, items?, expiresAt}' });
  return v as Record<string, unknown>;
}

/** Handles one request of the service; throws typed errors for refusals. */
export async function personConsents(consents: ConsentStore, receiptKey: KeyObject, gatewayId: string, r: PersonServiceRequest): Promise<PersonServiceAnswer> {
  // The client first: only one granted this service may speak for a person.
  const agreement = decideAccess(r.v, { client: r.client, provider: r.provider, purpose: r.purpose, agreement: r.agreement, items: [], date: r.date, service: PERSON_CONSENTS_SERVICE });
  if (r.query !== '') throw new OnceOnlyError('invalid_request', 'this service takes no query parameters', { field: 'query' });
  const person = parseId('person', r.userId, 'headers.X-Road-UserId');
  const view = (c: Consent): Record<string, unknown> => ({ ...c, dpvState: DPV_STATE[c.state], inForce: consents.isInForce(c) });
  const mine = async (id: string): Promise<Consent> => {
    if (!ID.test(id)) throw new OnceOnlyError('consent_not_found', 'no such consent', { field: 'path.id' });
    const c = await consents.get(id);
    // Another person's record, or one kept for another subsystem, is not there for this person.
    if (c.person !== person || c.provider !== r.provider) throw new OnceOnlyError('consent_not_found', 'no such consent', { field: 'path.id', expected: 'the id of one of your consent records' });
    return c;
  };
  const m = /^(?:\/([^/]+)\/(withdraw|receipt))?$/.exec(r.servicePath);
  if (!m) throw new OnceOnlyError('not_found', 'no such path in this service', { field: 'path', expected: "'', '/{id}/withdraw' or '/{id}/receipt'" });
  const [, id, action] = m;
  if (id === undefined) {
    if (r.method === 'GET') {
      const list = (await consents.list(person)).filter((c) => c.provider === r.provider);
      return { status: 200, body: { person, consents: list.map(view) }, agreement: agreement.id };
    }
    if (r.method === 'POST') {
      const b = jsonBody(r.body);
      for (const k of Object.keys(b)) if (!['agreement', 'items', 'expiresAt'].includes(k)) throw new OnceOnlyError('invalid_request', `unknown field ${JSON.stringify(k.slice(0, 40))}`, { field: `body.${k.slice(0, 40)}`, expected: 'agreement, items, expiresAt' });
      if (typeof b['agreement'] !== 'string') throw new OnceOnlyError('invalid_request', 'body.agreement is required', { field: 'body.agreement', expected: 'the id of an agreement that requires consent' });
      const target = r.v.conf.agreements.find((a) => a.id === b['agreement']);
      // Consents are kept where they are checked: at the provider of the agreement.
      if (!target || target.provider !== r.provider) throw new OnceOnlyError('unknown_agreement', 'no agreement of this register has that id', { field: 'body.agreement', expected: `an agreement whose provider is ${r.provider}` });
      if (typeof b['expiresAt'] !== 'string') throw new OnceOnlyError('invalid_expiry', 'consent is given until a stated time', { field: 'body.expiresAt', expected: 'an ISO 8601 instant in the future' });
      const items = b['items'];
      if (items !== undefined && (!Array.isArray(items) || !items.every((i) => typeof i === 'string'))) throw new OnceOnlyError('invalid_request', 'body.items must be a list of item ids', { field: 'body.items' });
      const c = await consents.give({ person, agreement: target.id, ...(items ? { items: items } : {}), expiresAt: b['expiresAt'], actor: 'person' });
      return { status: 201, body: view(c), agreement: agreement.id };
    }
    throw new OnceOnlyError('method_not_allowed', `${r.method.slice(0, 10)} is not allowed here`, { field: 'method', expected: 'GET or POST' });
  }
  if (action === 'withdraw') {
    if (r.method !== 'POST') throw new OnceOnlyError('method_not_allowed', 'withdraw with POST', { field: 'method', expected: 'POST' });
    await mine(id);
    return { status: 200, body: view(await consents.withdraw(id, { person, actor: 'person' })), agreement: agreement.id };
  }
  if (r.method !== 'GET') throw new OnceOnlyError('method_not_allowed', 'read a receipt with GET', { field: 'method', expected: 'GET' });
  await mine(id);
  return { status: 200, body: await consents.receipt(id, receiptKey, { person, issuer: gatewayId }), agreement: agreement.id };
}
