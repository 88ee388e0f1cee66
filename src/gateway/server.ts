/**
 * @module gateway/server
 * The two HTTP faces of a gateway. The client side is plain HTTP on loopback for the
 * organisation's own systems (`/r1/…`, `/health`, `/metrics`); the provider side is HTTPS with
 * client certificates for other gateways (`/oo1/…`).
 *
 * The data paths (`/r1/`, `/oo1/`) are served by plain Node handlers placed in front of Fastify:
 * the gateway forwards and digests raw bytes and answers every refusal itself, so a framework's
 * routing, body parsing and serialisation would only add cost to every exchange. Everything else
 * (`/health`, `/metrics`, unknown routes) goes to the Fastify app as usual.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { createApp, type App } from '../core/http.ts';
import { OnceOnlyError } from '../core/errors.ts';
import type { Gateway, InboundRequest, OutboundResponse } from './gateway.ts';
import type { ConfClient } from './confclient.ts';
import type { GatewayMetrics } from './metrics.ts';

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
 * Wraps Fastify's request handler: requests under `prefix` go to `handle`, the rest to Fastify. A
 * body over the limit is not read; the gateway still answers it (typed, and signed on the provider
 * side) from a request marked `oversized`.
 */
function dataPath(prefix: string, limit: number, handle: Handler, fastify: (req: IncomingMessage, res: ServerResponse) => void, admit?: (socket: TLSSocket) => Promise<OutboundResponse | undefined>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = req.url ?? '';
    if (!url.startsWith(prefix)) {
      fastify(req, res);
      return;
    }
    (admit ? admit(req.socket as TLSSocket) : Promise.resolve(undefined))
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
        const inbound: InboundRequest = { method: req.method ?? 'GET', rawUrl: url, headers: req.headers, body: body ?? Buffer.alloc(0), socket: req.socket as TLSSocket, ...(body === undefined ? { oversized: true } : {}) };
        writeResponse(res, await handle(inbound));
      })
      .catch(() => {
        if (!res.headersSent) writeResponse(res, { status: 500, headers: { 'content-type': 'application/json; charset=utf-8' }, body: Buffer.from(JSON.stringify(new OnceOnlyError('internal_error', 'internal error').toJSON())) });
        else res.destroy();
      });
  };
}

/** The client-side server. */
export async function createClientServer(gw: Gateway, conf: ConfClient, metrics: GatewayMetrics, opts: { maxBodyBytes: number }): Promise<App> {
  const limit = opts.maxBodyBytes;
  const app = await createApp({
    title: `onceonly gateway ${gw.id} (client side)`,
    serverFactory: (fastify) => createHttpServer(dataPath('/r1/', limit, (r) => gw.handleClient(r), fastify)),
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

/** The provider-side server: HTTPS, client certificates requested and checked per request. */
export async function createProviderServer(gw: Gateway, tls: { key: string; cert: string; ca: string }, opts: { maxBodyBytes: number }): Promise<App> {
  const limit = opts.maxBodyBytes;
  return createApp({
    title: `onceonly gateway ${gw.id} (provider side)`,
    // rejectUnauthorized is off so that a bad certificate gets a typed, signed refusal instead of
    // a bare handshake failure; the handler refuses every request whose socket is not authorized.
    serverFactory: (fastify) =>
      createHttpsServer(
        { key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
        dataPath('/oo1/', limit, (r) => gw.handleProvider(r), fastify, (socket) => gw.admit(socket)),
      ),
  });
}
