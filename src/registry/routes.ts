/**
 * @module registry/routes
 * HTTP for one registry. The shape of the URLs is the same for every register, only the
 * collection changes (`/people`, `/addresses`, `/companies`):
 *
 * - `GET  /{collection}/{id}?items=a,b&asAt=YYYY-MM-DD&knownAt=INSTANT`: read, enveloped
 * - `GET  /{collection}/{id}/exists`: existence, nothing else released
 * - `GET  /{collection}/{id}/history?item=`: every belief about one item, for auditors
 * - `POST /{collection}`: register a record
 * - `POST /{collection}/{id}/changes`: a change in the world
 * - `POST /{collection}/{id}/corrections`: a correction of a recorded value
 * - `GET  /events?after=SEQ&limit=&wait=&values=1`: the change events (Tell Us Once), for the gateway
 */
import { Type } from 'typebox';
import { createApp, ErrorBody, type App } from '../core/http.ts';
import type { RegistryService } from './service.ts';
import { MAX_EVENTS_PAGE, MAX_WAIT_SECONDS } from './outbox.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { safeEqual } from '../core/crypto.ts';
import { EnvelopeSchema } from './envelope.ts';

const ReadResultSchema = Type.Object({
  id: Type.String(),
  asAt: Type.String(),
  knownAt: Type.Union([Type.String(), Type.Null()]),
  items: Type.Record(Type.String(), EnvelopeSchema),
});

const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
const errors = { 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody };

/** Adds a registry's routes to `app`. */
export function registryRoutes(app: App, service: RegistryService): void {
  const c = service.kind.collection;
  const tags = [service.kind.name];

  app.get(`/${c}/:id`, {
    schema: {
      tags,
      summary: `Read items of a record, each in a {value, source, lastUpdated, classification} envelope`,
      params: IdParams,
      querystring: Type.Object({
        items: Type.String({ description: 'Comma-separated catalogue item ids; only these are released', maxLength: 4096 }),
        asAt: Type.Optional(Type.String({ description: 'Valid-time date YYYY-MM-DD (default today)' })),
        knownAt: Type.Optional(Type.String({ description: 'Transaction-time instant: what the registry believed then (default now)' })),
      }),
      response: { 200: ReadResultSchema, ...errors },
    },
  }, (req) => service.read(req.params.id, req.query.items, { asAt: req.query.asAt, knownAt: req.query.knownAt }));

  app.get(`/${c}/:id/exists`, {
    schema: { tags, summary: 'Whether the record exists; releases nothing else', params: IdParams, response: { 200: Type.Object({ exists: Type.Boolean() }), 400: ErrorBody } },
  }, (req) => service.exists(req.params.id));

  app.get(`/${c}/:id/history`, {
    schema: {
      tags,
      summary: 'Every recorded belief about one item, superseded ones included',
      params: IdParams,
      querystring: Type.Object({ item: Type.String({ maxLength: 200 }) }),
      response: { 200: Type.Object({ id: Type.String(), item: Type.String(), facts: Type.Array(Type.Object({}, { additionalProperties: true })) }), ...errors },
    },
  }, (req) => service.history(req.params.id, req.query.item));

  app.post(`/${c}`, {
    schema: { tags, summary: `Register a new record`, body: Type.Object({}, { additionalProperties: true }), response: { 201: Type.Object({ id: Type.String(), changeId: Type.String() }), ...errors } },
  }, async (req, reply) => reply.status(201).send(await service.register(req.body)));

  app.post(`/${c}/:id/changes`, {
    schema: {
      tags,
      summary: 'Record a change',
      description: Object.entries(service.kind.changes).map(([k, r]) => `- ${k}: ${r.description}`).join('\n'),
      params: IdParams,
      body: Type.Object({ type: Type.String() }, { additionalProperties: true }),
      response: { 201: Type.Object({ id: Type.String(), changeId: Type.String(), effectiveDate: Type.String(), items: Type.Array(Type.String()), eventId: Type.String() }), ...errors },
    },
  }, async (req, reply) => reply.status(201).send(await service.change(req.params.id, req.body)));

  app.post(`/${c}/:id/corrections`, {
    schema: {
      tags,
      summary: 'Correct a wrongly recorded value (kept apart from changes)',
      params: IdParams,
      body: Type.Object({ item: Type.String(), value: Type.Unknown(), reason: Type.String(), effectiveDate: Type.Optional(Type.String()) }),
      response: { 201: Type.Object({ id: Type.String(), changeId: Type.String(), item: Type.String(), eventId: Type.String() }), ...errors },
    },
  }, async (req, reply) => reply.status(201).send(await service.correct(req.params.id, req.body)));

  // Tell Us Once: the register's change events, for its gateway only (registry/outbox).
  const EventSchema = Type.Object({
    seq: Type.Integer(), id: Type.String(), registry: Type.String(), subject: Type.String(), changeId: Type.String(), type: Type.String(),
    effectiveDate: Type.String(), recordedAt: Type.String(), items: Type.Array(Type.String()), notify: Type.Optional(Type.Array(Type.String())),
    values: Type.Optional(Type.Record(Type.String(), EnvelopeSchema)),
  });
  // Long polls end when the server closes, before the store they read is closed under them.
  const closing = new AbortController();
  app.addHook('preClose', (done) => {
    closing.abort();
    done();
  });
  app.get('/events', {
    schema: {
      tags: ['events'],
      summary: 'Change events after a sequence number, oldest first (the transactional outbox)',
      querystring: Type.Object({
        after: Type.Optional(Type.String({ description: 'Sequence number of the last event already read (default 0)', maxLength: 20 })),
        limit: Type.Optional(Type.String({ description: `At most this many (default 100, at most ${MAX_EVENTS_PAGE})`, maxLength: 6 })),
        wait: Type.Optional(Type.String({ description: `Seconds to wait for the first new event when there is none (at most ${MAX_WAIT_SECONDS})`, maxLength: 3 })),
        values: Type.Optional(Type.String({ description: '1: each event carries its items\' envelopes as the change recorded them (default 0)', maxLength: 1 })),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ registry: Type.String(), events: Type.Array(EventSchema) }), 400: ErrorBody },
    },
  }, async (req) => ({ registry: service.subsystem, events: await service.events(req.query.after, req.query.limit, req.query.wait, closing.signal, req.query.values) }));
  app.get('/events/types', {
    schema: { tags: ['events'], summary: 'The kinds of change announced, and the items each can carry', response: { 200: Type.Object({ registry: Type.String(), latest: Type.Integer({ description: 'The latest event\'s sequence number (0 before the first)' }), types: Type.Record(Type.String(), Type.Object({ description: Type.String(), items: Type.Array(Type.String()) })) }) } },
  }, async () => ({ registry: service.subsystem, latest: await service.latestEvent(), types: service.eventTypes() }));

  app.get('/health', { schema: { hide: true } }, () => ({ status: 'ok', registry: service.subsystem }));
}

/** A ready HTTP server for one registry. */
export async function createRegistryServer(service: RegistryService, opts: { logLevel?: string; token?: string } = {}): Promise<App> {
  const app = await createApp({
    title: `onceonly ${service.kind.name} register (${service.subsystem})`,
    description: 'An authoritative registry. Reads return only the items asked for, each in an envelope.',
    ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
  });
  const token = opts.token;
  if (token !== undefined) {
    // Behind a gateway the registry answers only its gateway: everyone else must go through the
    // exchange, where agreements are enforced and every release is logged.
    const expected = `Bearer ${token}`;
    app.addHook('onRequest', (req, _reply, done) => {
      if (req.url === '/health') return done();
      const got = req.headers.authorization;
      if (typeof got !== 'string' || !safeEqual(got, expected)) {
        return done(new OnceOnlyError('unauthorized', 'this registry is reached through its gateway', { field: 'headers.authorization', expected: 'the gateway\'s service credential' }));
      }
      done();
    });
  }
  registryRoutes(app, service);
  return app;
}
