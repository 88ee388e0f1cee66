/**
 * @module gateway/person-previews
 * The `person-previews` built-in service of a provider gateway that holds previews (OOTS explicit
 * request): the requests waiting for a person's decision at this register, and the decision,
 * made on their behalf by the citizen portal ("Requests waiting for you", docs/portal.md). The
 * person is the one in `X-Road-UserId`, accepted only from a client an agreement in force grants
 * this service, as for `person-consents` (gateway/person-consents).
 *
 *   GET  ''                         the pending requests: who asks, why, which items (no values:
 *                                   the portal shows them by reading them itself, an access record)
 *   POST '/{id}/approve' | '/{id}/decline'   the decision; the client's next retry gets it
 */
import { OnceOnlyError } from '../core/errors.ts';
import { parseId } from '../core/subjects.ts';
import type { PreviewStore } from '../preview/preview.ts';
import { decideAccess } from './access.ts';
import type { PersonServiceAnswer, PersonServiceRequest } from './person-consents.ts';

export const PERSON_PREVIEWS_SERVICE = 'person-previews';

export async function personPreviews(previews: PreviewStore, r: PersonServiceRequest): Promise<PersonServiceAnswer> {
  const agreement = decideAccess(r.v, { client: r.client, provider: r.provider, purpose: r.purpose, agreement: r.agreement, items: [], date: r.date, service: PERSON_PREVIEWS_SERVICE });
  if (r.query !== '') throw new OnceOnlyError('invalid_request', 'this service takes no query parameters', { field: 'query' });
  const person = parseId('person', r.userId, 'headers.X-Road-UserId');
  if (r.servicePath === '') {
    if (r.method !== 'GET') throw new OnceOnlyError('method_not_allowed', 'list with GET', { field: 'method', expected: 'GET' });
    return { status: 200, body: { person, previews: await previews.pendingFor(person, r.provider) }, agreement: agreement.id };
  }
  const m = /^\/([^/]+)\/(approve|decline)$/.exec(r.servicePath);
  if (!m) throw new OnceOnlyError('not_found', 'no such path in this service', { field: 'path', expected: "'' or '/{id}/approve' or '/{id}/decline'" });
  if (r.method !== 'POST') throw new OnceOnlyError('method_not_allowed', 'decide with POST', { field: 'method', expected: 'POST' });
  const decision = await previews.decideFor(m[1]!, m[2] === 'approve' ? 'approved' : 'declined', person, r.provider);
  return { status: 200, body: decision, agreement: agreement.id };
}
