/**
 * @module central/server
 * The central authority over HTTP. Public: `GET /global-conf` (the signed configuration, the
 * only thing gateways fetch, and which they trust only after verifying it against their anchor),
 * `GET /anchor` (a convenience copy; an anchor fetched over the network proves nothing, which is
 * why gateways are given theirs out of band) and `GET /health`. Under `/manage/`, the management
 * API: bearer tokens (RFC 6750 §2.1), every change audited in its own transaction.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ErrorBody, createApp, type App } from '../core/http.ts';
import { OnceOnlyError, isOnceOnlyError } from '../core/errors.ts';
import type { Central } from './central.ts';
import { GLOBAL_CONF_MEDIA_TYPE } from './conf.ts';
import { memberOf, parseGatewayId } from './ids.ts';

/** Options of {@link createCentralServer}. */
export interface CentralServerOptions {
  logLevel?: string;
}

const Id = (description: string) => Type.String({ minLength: 1, maxLength: 300, description });
const Status = Type.Union([Type.Literal('active'), Type.Literal('suspended')]);
const Jwk = Type.Object({ kty: Type.Literal('OKP'), crv: Type.Literal('Ed25519'), x: Type.String() }, { description: 'Ed25519 public JWK (RFC 8037)' });
const Ok = Type.Object({ ok: Type.Boolean(), id: Type.String() });
const IdParams = Type.Object({ id: Id('URL-encoded id, e.g. UK%2FGOV%2FGRO') });
const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody };

const AuditEntryBody = Type.Object({
  seq: Type.Integer(),
  at: Type.String(),
  actor: Type.String(),
  action: Type.String(),
  target: Type.String(),
  detail: Type.Object({}, { additionalProperties: true }),
  prevHash: Type.String(),
  hash: Type.String(),
});

/**
 * Re-labels a domain error's field with where it came from in the request (`params.id`,
 * `body.member`), so API callers see the same field names as schema validation gives them.
 */
async function labelled<T>(where: 'params' | 'body', fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!isOnceOnlyError(e) || typeof e.detail.field !== 'string') throw e;
    // Errors about a body arrive as invalid_file (the agreements parser's type); for a request
    // body the right type is invalid_value, still 422, naming the field.
    const type = e.type === 'invalid_file' ? 'invalid_value' : e.type;
    const { file: _file, ...rest } = e.detail;
    throw new OnceOnlyError(type, e.message, { ...rest, field: `${where}.${e.detail.field}` });
  }
}

/** Builds the central's HTTP server (not listening; call `listen`). */
export async function createCentralServer(central: Central, opts: CentralServerOptions = {}): Promise<App> {
  const app = await createApp({
    title: 'onceonly central authority',
    description: 'Signed global configuration and the management API of the member registry, CA and agreements. Routes under /manage/ need `Authorization: Bearer <token>` (RFC 6750).',
    ...(opts.logLevel !== undefined ? { logLevel: opts.logLevel } : {}),
  });
  const actors = new WeakMap<FastifyRequest, string>();
  const scopes = new WeakMap<FastifyRequest, { id: string; member: string }>();

  // The token is never logged: request logging is off (core/http) and `authorization` is in the redaction list.
  const authenticate = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer ([^\s]+)$/i.exec(header) : null;
    try {
      const t = await central.authenticateScoped(m?.[1]);
      // A registration token reaches one route only: registering a gateway of its member.
      if (t.scope !== null) {
        if (!(req.method === 'POST' && req.routeOptions.url === '/manage/gateways') || t.member === null) {
          throw new OnceOnlyError('forbidden', 'this token may only register a gateway of its member', { field: 'authorization', expected: 'a full management token' });
        }
        scopes.set(req, { id: t.id, member: t.member });
      }
      actors.set(req, `api:${t.id}`);
    } catch (e) {
      if (isOnceOnlyError(e) && e.type === 'forbidden') throw e;
      // RFC 6750 §3: a 401 names the scheme, and says invalid_token when one was presented.
      void reply.header('www-authenticate', header ? 'Bearer realm="onceonly-central", error="invalid_token"' : 'Bearer realm="onceonly-central"');
      throw e;
    }
  };
  const actor = (req: FastifyRequest): string => {
    const a = actors.get(req);
    if (!a) throw new OnceOnlyError('unauthorized', 'not authenticated');
    return a;
  };
  const manage = { onRequest: authenticate };

  app.get('/global-conf', {
    schema: {
      summary: 'The signed global configuration (JWS compact, EdDSA); verify it with the anchor',
      tags: ['public'],
      response: { 200: { description: 'JWS compact serialization, application/jose', type: 'string' } },
    },
  }, async (_req, reply) => {
    const { jws, conf } = await central.currentConfiguration();
    return reply
      .header('content-type', GLOBAL_CONF_MEDIA_TYPE)
      // Gateways must see a suspension at their next fetch, so no shared cache may hold it.
      .header('cache-control', 'no-cache')
      .header('x-onceonly-conf-serial', String(conf.serial))
      .header('x-onceonly-conf-expires', conf.expiresAt)
      .send(jws);
  });

  app.get('/anchor', {
    schema: { summary: 'The anchor (convenience copy only: gateways must be given theirs out of band)', tags: ['public'] },
  }, () => central.anchor);

  app.get('/health', {
    schema: {
      summary: 'Liveness, and the serial of the configuration being served',
      tags: ['public'],
      response: { 200: Type.Object({ status: Type.Literal('ok'), instance: Type.String(), serial: Type.Integer(), expiresAt: Type.String() }) },
    },
  }, async () => {
    const { conf } = await central.currentConfiguration();
    return { status: 'ok' as const, instance: central.instance, serial: conf.serial, expiresAt: conf.expiresAt };
  });

  app.post('/manage/members', {
    ...manage,
    schema: {
      summary: 'Add a member (organisation)', tags: ['manage'],
      body: Type.Object({ id: Id('INSTANCE/CLASS/MEMBER'), name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
      response: { 201: Type.Object({ id: Type.String(), name: Type.String(), status: Status }), ...errors },
    },
  }, async (req, reply) => {
    const m = await labelled('body', () => central.addMember(req.body, actor(req)));
    return reply.status(201).send(m);
  });

  app.post('/manage/subsystems', {
    ...manage,
    schema: {
      summary: 'Add a subsystem to a member', tags: ['manage'],
      body: Type.Object({ id: Id('INSTANCE/CLASS/MEMBER/SUBSYSTEM') }, { additionalProperties: false }),
      response: { 201: Type.Object({ id: Type.String(), member: Type.String(), status: Status }), ...errors },
    },
  }, async (req, reply) => {
    const s = await labelled('body', () => central.addSubsystem(req.body, actor(req)));
    return reply.status(201).send(s);
  });

  app.post('/manage/gateways', {
    ...manage,
    schema: {
      summary: 'Register a gateway of an active member; the CA issues its TLS certificate', tags: ['manage'],
      body: Type.Object({
        id: Id('INSTANCE/CLASS/MEMBER/GATEWAYCODE'),
        member: Type.Optional(Id('INSTANCE/CLASS/MEMBER; must be the member part of id')),
        address: Type.String({ minLength: 1, maxLength: 500, description: 'https base URL of its provider side' }),
        tlsPublicKey: Type.String({ minLength: 1, maxLength: 4000, description: 'ECDSA P-256 public key, SPKI PEM' }),
        signingKey: Jwk,
        subsystems: Type.Optional(Type.Array(Id('INSTANCE/CLASS/MEMBER/SUBSYSTEM of the same member'), { maxItems: 1000, description: 'the subsystems it is to serve' })),
      }, { additionalProperties: false }),
      response: {
        201: Type.Object({
          tlsCertificate: Type.String(),
          caCertificate: Type.String(),
          fingerprint: Type.String(),
          status: Type.Union([Type.Literal('pending'), Type.Literal('active')], { description: 'pending when registered with a registration token: it receives no traffic until the operator approves it' }),
        }),
        ...errors,
      },
    },
  }, async (req, reply) => {
    const scoped = scopes.get(req);
    if (scoped && memberOf(parseGatewayId(req.body.id, 'body.id', central.instance)) !== scoped.member) {
      throw new OnceOnlyError('forbidden', `this registration token is for a gateway of ${scoped.member}`, { field: 'body.id', expected: `a gateway id of ${scoped.member}` });
    }
    const r = await labelled('body', () => central.registerGateway(req.body, actor(req), scoped ? { registrationToken: scoped.id } : {}));
    return reply.status(201).send(r);
  });

  const Listing = Type.Object({
    id: Type.String(), member: Type.String(), address: Type.String(), fingerprint: Type.String(), createdAt: Type.String(),
    status: Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('suspended')]),
    subsystems: Type.Array(Type.Object({ id: Type.String(), status: Type.Union([Type.Literal('pending'), Type.Literal('active')]) })),
  });
  app.get('/manage/gateways', {
    ...manage,
    schema: { summary: 'Every registered gateway, pending ones included, with the subsystems it serves', tags: ['manage'], response: { 200: Type.Object({ gateways: Type.Array(Listing) }), ...errors } },
  }, async () => ({ gateways: await central.listGateways() }));

  app.post('/manage/gateways/:id/approve', {
    ...manage,
    schema: { summary: 'Approve a pending gateway: it enters the next configuration with the subsystems it asked for', tags: ['manage'], params: IdParams, response: { 200: Ok, ...errors } },
  }, async (req) => {
    await labelled('params', () => central.approveGateway(req.params.id, actor(req)));
    return { ok: true, id: req.params.id };
  });

  app.post('/manage/gateways/:id/subsystems', {
    ...manage,
    schema: {
      summary: 'Assign a subsystem of its member to a gateway', tags: ['manage'], params: IdParams,
      body: Type.Object({ subsystem: Id('INSTANCE/CLASS/MEMBER/SUBSYSTEM') }, { additionalProperties: false }),
      response: { 200: Ok, ...errors },
    },
  }, async (req) => {
    await labelled('body', () => central.assignSubsystem(req.params.id, req.body.subsystem, actor(req)));
    return { ok: true, id: req.params.id };
  });

  app.delete('/manage/gateways/:id/subsystems/:subsystem', {
    ...manage,
    schema: { summary: 'Take a subsystem away from a gateway', tags: ['manage'], params: Type.Object({ id: Id('URL-encoded gateway id'), subsystem: Id('URL-encoded subsystem id') }), response: { 200: Ok, ...errors } },
  }, async (req) => {
    await labelled('params', () => central.unassignSubsystem(req.params.id, req.params.subsystem, actor(req)));
    return { ok: true, id: req.params.id };
  });

  const statusRoutes = [
    ['members', 'member', (id: string, a: string) => central.suspendMember(id, a), (id: string, a: string) => central.activateMember(id, a)],
    ['subsystems', 'subsystem', (id: string, a: string) => central.suspendSubsystem(id, a), (id: string, a: string) => central.activateSubsystem(id, a)],
    ['gateways', 'gateway', (id: string, a: string) => central.suspendGateway(id, a), (id: string, a: string) => central.activateGateway(id, a)],
  ] as const;
  for (const [path, kind, suspend, activate] of statusRoutes) {
    for (const [verb, fn] of [['suspend', suspend], ['activate', activate]] as const) {
      app.post(`/manage/${path}/:id/${verb}`, {
        ...manage,
        schema: { summary: `${verb === 'suspend' ? 'Suspend' : 'Activate'} a ${kind}`, tags: ['manage'], params: IdParams, response: { 200: Ok, ...errors } },
      }, async (req) => {
        // The router has already percent-decoded the parameter; core/ids then refuses anything
        // that is not a well-formed id, so a decoded '../' can never reach the store.
        await labelled('params', () => fn(req.params.id, actor(req)));
        return { ok: true, id: req.params.id };
      });
    }
  }

  app.put('/manage/agreements', {
    ...manage,
    schema: {
      summary: 'Publish a new agreements document; checked against the catalogue first', tags: ['manage'],
      body: Type.Object({ agreements: Type.Array(Type.Object({}, { additionalProperties: true })) }, { additionalProperties: true, description: 'as config/agreements.yaml, in JSON' }),
      response: { 200: Type.Object({ version: Type.Integer(), agreements: Type.Integer() }), ...errors },
    },
    // The agreements parser checks the body and names every problem (422); schema validation
    // would stop at the first with a 400.
    validatorCompiler: () => (data: unknown) => ({ value: data }),
  }, async (req) => labelled('body', () => central.publishAgreements(req.body, { actor: actor(req), source: 'body' })));

  app.get('/manage/audit', {
    ...manage,
    schema: {
      summary: 'The admin audit log, oldest first, with the result of verifying its hash chain', tags: ['manage'],
      querystring: Type.Object({
        after: Type.Optional(Type.Integer({ minimum: 0, description: 'only entries after this seq' })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1000 })),
      }),
      response: {
        200: Type.Object({
          entries: Type.Array(AuditEntryBody),
          verification: Type.Object({ ok: Type.Boolean(), entries: Type.Integer(), head: Type.Optional(Type.String()), seq: Type.Optional(Type.Integer()), problem: Type.Optional(Type.String()) }),
        }),
        ...errors,
      },
    },
  }, async (req) => {
    const entries = await central.auditLog({ ...(req.query.after !== undefined ? { after: req.query.after } : {}), limit: req.query.limit ?? 1000 });
    return { entries, verification: await central.verifyAdminLog() };
  });

  return app;
}
