/**
 * @module consent/routes
 * The person's consent API: give or request a consent, list, read, withdraw, refuse, and get a
 * signed receipt. The citizen portal will call it; until citizen sign-in exists, the person is
 * identified by a bearer credential (RFC 6750 §2.1) that the operator issues to them, one per
 * person. That credential is a stand-in for sign-in (OpenID Connect at the portal), not a design
 * to keep: it proves possession of a string, not who someone is.
 *
 * A person sees and changes only their own records: another person's record answers
 * `consent_not_found`, exactly as a record that does not exist, so ids cannot be probed.
 */
import type { KeyObject } from 'node:crypto';
import { Type, type TSchema } from 'typebox';
import type { FastifyRequest } from 'fastify';
import { ErrorBody, type App } from '../core/http.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { parseId } from '../core/subjects.ts';
import { DPV_STATE, type Consent, type ConsentStore } from './consent.ts';
import { PersonCredentials, type PersonCredential } from './credentials.ts';

export type { PersonCredential } from './credentials.ts';

/** Options of {@link consentRoutes}. */
export interface ConsentRoutesOptions {
  consents: ConsentStore;
  /** The people's bearer credentials (stand-in for citizen sign-in): a list, or the gateway's loaded set. */
  credentials: readonly PersonCredential[] | PersonCredentials;
  /** Signs receipts: on a gateway, its Ed25519 signing key. */
  receiptKey: KeyObject;
  /** Named in receipts as their issuer (the gateway id). */
  issuer?: string;
}

const List = <T extends TSchema>(t: T) => Type.Array(t);
const ConsentStateText = Type.Union([Type.Literal('requested'), Type.Literal('given'), Type.Literal('refused'), Type.Literal('withdrawn'), Type.Literal('expired')]);

const HistoryEntryBody = Type.Object({
  seq: Type.Integer(),
  from: Type.Union([ConsentStateText, Type.Null()]),
  to: ConsentStateText,
  at: Type.String(),
  actor: Type.String(),
});

const ConsentBody = Type.Object({
  id: Type.String(),
  person: Type.String(),
  controller: Type.String({ description: 'the client subsystem that receives the data' }),
  provider: Type.String(),
  agreement: Type.String(),
  purpose: Type.Object({ id: Type.String(), description: Type.String() }),
  legalBasis: Type.String(),
  items: List(Type.String()),
  state: ConsentStateText,
  dpvState: Type.String({ description: 'the state as a W3C DPV concept, e.g. dpv:ConsentGiven' }),
  inForce: Type.Boolean({ description: 'given and not yet expired' }),
  createdAt: Type.String(),
  givenAt: Type.Union([Type.String(), Type.Null()]),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
  updatedAt: Type.String(),
  history: List(HistoryEntryBody),
});

const NewConsentBody = Type.Object(
  {
    person: Type.String({ description: 'your person id, e.g. P-000001234-7' }),
    agreement: Type.String({ description: 'the id of an agreement flagged consentRequired' }),
    items: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 100 })),
    state: Type.Optional(Type.Union([Type.Literal('given'), Type.Literal('requested')], { description: 'default given' })),
    expiresAt: Type.Optional(Type.String({ description: 'required to give: ISO 8601 instant, in the future, no later than the end of the agreement' })),
  },
  { additionalProperties: false },
);

const GiveBody = Type.Object({ expiresAt: Type.String() }, { additionalProperties: false });

const ReceiptBody = Type.Object({
  receipt: Type.Object({}, { additionalProperties: true, description: 'the consent receipt (docs/consent.md)' }),
  jws: Type.String({ description: 'compact JWS (EdDSA) over the canonical JSON of the receipt' }),
  keyId: Type.String(),
  publicKey: Type.Object({ kty: Type.String(), crv: Type.String(), x: Type.String() }),
});

const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody };

/** Fastify plugin serving the consent API. Register with `app.register(consentRoutes, opts)` or call it on an app. */
export function consentRoutes(app: App, opts: ConsentRoutesOptions): Promise<void> {
  const { consents } = opts;
  // Only digests are held, compared in constant time: the list never leaks through timing.
  const credentials = opts.credentials instanceof PersonCredentials ? opts.credentials : new PersonCredentials(opts.credentials);

  const personOf = (req: FastifyRequest): string => {
    const header = req.headers.authorization;
    const person = credentials.personForHeader(header);
    if (person === undefined) {
      throw new OnceOnlyError('unauthorized', header ? 'the credential is not valid' : 'a credential is required', {
        field: 'headers.authorization',
        expected: 'Authorization: Bearer <your credential>',
      });
    }
    return person;
  };

  const view = (c: Consent): Consent & { dpvState: string; inForce: boolean } => ({
    ...c,
    dpvState: DPV_STATE[c.state],
    inForce: consents.isInForce(c),
  });

  /** The body's person must be the signed-in one: a person cannot consent for someone else. */
  const samePerson = (me: string, claimed: string, field: string): void => {
    parseId('person', claimed, field);
    if (claimed !== me) throw new OnceOnlyError('forbidden', 'you can only see and change your own consents', { field, expected: me });
  };

  app.post(
    '/consents',
    {
      schema: {
        summary: 'Give consent (or record a request for it) under an agreement that requires consent',
        tags: ['consent'],
        body: NewConsentBody,
        response: { 201: ConsentBody, ...errors },
      },
    },
    async (req, reply) => {
      const me = personOf(req);
      const b = req.body;
      samePerson(me, b.person, 'body.person');
      const base = { person: b.person, agreement: b.agreement, ...(b.items ? { items: b.items } : {}), actor: 'person' };
      let c: Consent;
      if (b.state === 'requested') {
        if (b.expiresAt !== undefined) throw new OnceOnlyError('invalid_request', 'a request for consent has no expiry; give it with one', { field: 'body.expiresAt' });
        c = await consents.request(base);
      } else {
        if (b.expiresAt === undefined) throw new OnceOnlyError('invalid_expiry', 'consent is given until a stated time', { field: 'body.expiresAt', expected: 'an ISO 8601 instant in the future' });
        c = await consents.give({ ...base, expiresAt: b.expiresAt });
      }
      return reply.status(201).send(view(c));
    },
  );

  app.get(
    '/consents',
    {
      schema: {
        summary: 'Your consent records, newest first',
        tags: ['consent'],
        querystring: Type.Object({ person: Type.String() }, { additionalProperties: false }),
        response: { 200: List(ConsentBody), ...errors },
      },
    },
    async (req) => {
      const me = personOf(req);
      samePerson(me, req.query.person, 'query.person');
      return (await consents.list(me)).map(view);
    },
  );

  app.get(
    '/consents/:id',
    { schema: { summary: 'One of your consent records with its history', tags: ['consent'], params: IdParams, response: { 200: ConsentBody, ...errors } } },
    async (req) => {
      const me = personOf(req);
      const c = await consents.get(req.params.id);
      if (c.person !== me) throw new OnceOnlyError('consent_not_found', 'no such consent', { field: 'id', expected: 'the id of one of your consent records' });
      return view(c);
    },
  );

  app.post(
    '/consents/:id/give',
    { schema: { summary: 'Give a consent that was requested', tags: ['consent'], params: IdParams, body: GiveBody, response: { 200: ConsentBody, ...errors } } },
    async (req) => view(await consents.give({ id: req.params.id, expiresAt: req.body.expiresAt, person: personOf(req), actor: 'person' })),
  );

  for (const action of ['withdraw', 'refuse'] as const) {
    app.post(
      `/consents/:id/${action}`,
      {
        schema: {
          summary: action === 'withdraw' ? 'Withdraw a given consent: the next request is refused' : 'Refuse a requested consent',
          tags: ['consent'],
            params: IdParams,
          response: { 200: ConsentBody, ...errors },
        },
      },
      async (req) => {
        const person = personOf(req);
        return view(action === 'withdraw' ? await consents.withdraw(req.params.id, { person, actor: 'person' }) : await consents.refuse(req.params.id, { person, actor: 'person' }));
      },
    );
  }

  app.get(
    '/consents/:id/receipt',
    { schema: { summary: 'A signed consent receipt (JSON and compact JWS)', tags: ['consent'], params: IdParams, response: { 200: ReceiptBody, ...errors } } },
    async (req) => consents.receipt(req.params.id, opts.receiptKey, { person: personOf(req), ...(opts.issuer !== undefined ? { issuer: opts.issuer } : {}) }),
  );
  return Promise.resolve();
}
