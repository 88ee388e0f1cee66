/**
 * @module gateway/server
 * The two HTTP faces of a gateway. The client side is HTTP (or HTTPS, for information systems that
 * authenticate with a certificate) for the organisation's own systems (`/r1/…`, `/listClients`,
 * `/health`, `/metrics`); the provider side is HTTPS with client certificates for other gateways
 * (`/oo1/…`).
 *
 * The data paths are served by plain Node handlers placed in front of Fastify: the gateway
 * forwards and digests raw bytes and answers every refusal itself, so a framework's routing, body
 * parsing and serialisation would only add cost to every exchange. Everything else goes to the
 * Fastify app as usual. A request the HTTP parser itself refuses (bad framing, NUL in a header,
 * Content-Length with Transfer-Encoding) still gets X-Road's typed answer (PR-REST §4.6, category 3).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createApp, type App } from '../core/http.ts';
import { OnceOnlyError } from '../core/errors.ts';
import type { Gateway, InboundRequest, OutboundResponse } from './gateway.ts';
import type { ConfClient } from './confclient.ts';
import type { GatewayMetrics } from './metrics.ts';
import { renderError, toXRoadError, type Side } from './xroad.ts';
import { MAX_ADD_CHECKPOINT_BYTES, type Witness, type WitnessAnswer } from '../transparency/witness.ts';
import { WITNESS_PREFIX } from './witnessing.ts';
import type { FastifyReply } from 'fastify';

type Handler = (req: InboundRequest) => Promise<OutboundResponse>;

/** Reads a body up to `limit` bytes; resolves undefined (and stops reading) when it is larger. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function writeResponse(res: ServerResponse, out: OutboundResponse): void {
  res.writeHead(out.status, { ...out.headers, 'content-length': String(out.body.length) });
  res.end(out.body);
}

/**
 * Wraps Fastify's request handler: requests `isData` picks go to `handle`, the rest to Fastify. A
 * body over the limit is not read; the gateway still answers it (typed, and signed on the provider
 * side) from a request marked `oversized`.
 */
function dataPath(isData: (url: string) => boolean, limit: number, handle: Handler, fastify: (req: IncomingMessage, res: ServerResponse) => void, side: Side, admit?: (socket: TLSSocket) => Promise<OutboundResponse | undefined>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = req.url ?? '';
    if (!isData(url)) {
      fastify(req, res);
      return;
    }
    const tls = 'encrypted' in req.socket && (req.socket as TLSSocket).encrypted ? (req.socket as TLSSocket) : undefined;
    (admit && tls ? admit(tls) : Promise.resolve(undefined))
      .then(async (refusal) => {
        if (refusal) {
          // Refused before the body is read; the connection closes after this answer.
          req.resume();
          writeResponse(res, refusal);
          return undefined;
        }
        return readBody(req, limit);
      })
      .then(async (body) => {
        if (res.headersSent) return;
        // An oversized body was not read: close the connection after this answer.
        if (body === undefined) res.setHeader('connection', 'close');
        const inbound: InboundRequest = { method: req.method ?? 'GET', rawUrl: url, rawHeaders: req.rawHeaders, headers: req.headers, body: body ?? Buffer.alloc(0), socket: tls, ...(body === undefined ? { oversized: true } : {}) };
        writeResponse(res, await handle(inbound));
      })
      .catch(() => {
        if (!res.headersSent) {
          const r = renderError(toXRoadError(new OnceOnlyError('internal_error', 'internal error'), side), undefined);
          writeResponse(res, r);
        } else res.destroy();
      });
  };
}

/**
 * Answers what the HTTP parser refused with X-Road's typed error instead of Node's bare 400
 * (RFC 9112 §6.3: a message whose framing cannot be trusted is answered and the connection closed).
 */
function typedParserErrors(server: Server, side: Side): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const e = new OnceOnlyError(tooLarge ? 'payload_too_large' : 'invalid_request', tooLarge ? 'the request headers are too large' : 'the request is not valid HTTP/1.1', { field: 'request', expected: tooLarge ? 'headers of at most the server\'s limit' : 'an HTTP/1.1 request (RFC 9112)', parser: err.code ?? 'unknown' });
    const r = renderError(toXRoadError(e, side), undefined);
    const head = [`HTTP/1.1 ${r.status} ${r.status === 400 ? 'Bad Request' : 'Internal Server Error'}`, ...Object.entries(r.headers).map(([k, v]) => `${k}: ${String(v)}`), `content-length: ${r.body.length}`, 'connection: close', '', ''].join('\r\n');
    socket.end(Buffer.concat([Buffer.from(head), r.body]));
  });
}

const isClientData = (url: string): boolean => url.startsWith('/r1/') || url === '/listClients' || url.startsWith('/listClients?');

/** The client-side server; HTTPS (client certificates asked for, checked per client) when `tls` is given. */
export async function createClientServer(gw: Gateway, conf: ConfClient, metrics: GatewayMetrics, opts: { maxBodyBytes: number; tls?: { key: string; cert: string } | undefined }): Promise<App> {
  const limit = opts.maxBodyBytes;
  const tls = opts.tls;
  const app = await createApp({
    title: `onceonly gateway ${gw.id} (client side)`,
    serverFactory: (fastify) => {
      const handler = dataPath(isClientData, limit, (r) => gw.handleClient(r), fastify, 'client');
      // X-Road's SSLAUTH: the certificate is asked for but checked per client (gateway/isauth), so a
      // system without one still gets a typed refusal rather than a failed handshake.
      const server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handler) : createHttpServer(handler);
      typedParserErrors(server, 'client');
      return server;
    },
  });
  app.get('/health', { schema: { hide: true } }, (_req, reply) => {
    const held = conf.held();
    let valid = false;
    try {
      conf.current();
      valid = true;
    } catch {
      valid = false;
    }
    return reply.status(valid ? 200 : 503).send({ status: valid ? 'ok' : 'global configuration expired', gateway: gw.id, configuration: held ? { serial: held.serial, expiresAt: held.expiresAt } : null, lastFetchAt: conf.lastFetchAt ?? null, lastFetchError: conf.lastError ?? null });
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8').send(await metrics.text()));
  return app;
}

/** The provider-side server: HTTPS, client certificates requested and checked per request; and the gateway's witness. */
export async function createProviderServer(gw: Gateway, tls: { key: string; cert: string; ca: string }, opts: { maxBodyBytes: number; witness?: Witness }): Promise<App> {
  const limit = opts.maxBodyBytes;
  const app = await createApp({
    title: `onceonly gateway ${gw.id} (provider side)`,
    // rejectUnauthorized is off so that a bad certificate gets a typed, signed refusal instead of
    // a bare handshake failure; the handler refuses every request whose socket is not authorized.
    // The passed headers travel packed in one header, so the header limit is above Node's 16 KiB.
    serverFactory: (fastify) => {
      const server = createHttpsServer(
        { key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', maxHeaderSize: 80 * 1024 },
        dataPath((url) => url.startsWith('/oo1/'), limit, (r) => gw.handleProvider(r), fastify, 'provider', (socket) => gw.admit(socket)),
      );
      typedParserErrors(server, 'provider');
      return server;
    },
  });
  const witness = opts.witness;
  if (witness) await app.register((scope, _o, done) => witnessRoutes(scope, witness, done), { prefix: WITNESS_PREFIX });
  return app;
}

/**
 * c2sp.org/tlog-witness on the provider side. Requests need no gateway certificate: the spec
 * authenticates nothing but the checkpoint's signature, which must be a configured gateway's.
 * Its request has no specified media type, so any is read as bytes.
 */
function witnessRoutes(scope: App, witness: Witness, done: (err?: Error) => void): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_ADD_CHECKPOINT_BYTES }, (_req, body, next) => next(null, body));
  const send = (reply: FastifyReply, a: WitnessAnswer): FastifyReply => reply.status(a.status).header('content-type', a.contentType).header('cache-control', 'no-store').send(a.body);
  scope.post('/add-checkpoint', { schema: { hide: true }, bodyLimit: MAX_ADD_CHECKPOINT_BYTES }, async (req, reply) => send(reply, await witness.addCheckpoint(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0))));
  scope.get('/:origin/checkpoint', { schema: { hide: true } }, async (req, reply) => send(reply, await witness.latest((req.params as { origin: string }).origin)));
  done();
}
