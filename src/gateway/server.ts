/**
 * @module gateway/server
 * The two HTTP faces of a gateway. The client side is plain HTTP on loopback for the
 * organisation's own systems (`/r1/…`, `/health`, `/metrics`); the provider side is HTTPS with
 * client certificates for other gateways (`/oo1/…`). Bodies are taken raw, whatever their type:
 * the gateway forwards and digests bytes, it does not reinterpret them.
 */
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createApp, type App } from '../core/http.ts';
import { MAX_TARGET } from './paths.ts';
import type { Gateway, InboundRequest, OutboundResponse } from './gateway.ts';
import type { ConfClient } from './confclient.ts';
import type { GatewayMetrics } from './metrics.ts';

function rawBodies(app: App, limit: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limit }, (_req, body, done) => {
    done(null, body);
  });
}

function inbound(req: FastifyRequest, socket?: TLSSocket): InboundRequest {
  return { method: req.method, rawUrl: req.raw.url ?? '', headers: req.headers, body: Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), ...(socket ? { socket } : {}) };
}

function send(reply: FastifyReply, res: OutboundResponse): FastifyReply {
  return reply.status(res.status).headers(res.headers).send(res.body);
}

/** The client-side server. */
export async function createClientServer(gw: Gateway, conf: ConfClient, metrics: GatewayMetrics, opts: { maxBodyBytes: number }): Promise<App> {
  const app = await createApp({ title: `onceonly gateway ${gw.id} (client side)`, bodyLimit: opts.maxBodyBytes, maxParamLength: MAX_TARGET });
  rawBodies(app, opts.maxBodyBytes);
  // Refusals raised by the HTTP layer itself (body too large, bad framing) carry the X-Road error
  // header too, so client systems handle every refusal the same way.
  app.addHook('onSend', (_req, reply, payload) => {
    if (reply.statusCode >= 400 && !reply.hasHeader('x-road-error') && typeof payload === 'string') {
      try {
        const type = (JSON.parse(payload) as { type?: unknown }).type;
        if (typeof type === 'string') void reply.header('x-road-error', `Server.ClientProxy.${type}`);
      } catch {
        // Not one of our error bodies: leave it as it is.
      }
    }
    return Promise.resolve(payload);
  });
  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], url: '/r1/*', schema: { hide: true }, handler: async (req, reply) => send(reply, await gw.handleClient(inbound(req))) });
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
  const app = await createApp({
    title: `onceonly gateway ${gw.id} (provider side)`,
    bodyLimit: opts.maxBodyBytes,
    maxParamLength: MAX_TARGET,
    // rejectUnauthorized is off so that a bad certificate gets a typed, signed refusal instead of
    // a bare handshake failure; the handler refuses every request whose socket is not authorized.
    serverFactory: (handler) => createHttpsServer({ key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handler),
  });
  rawBodies(app, opts.maxBodyBytes);
  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], url: '/oo1/*', schema: { hide: true }, handler: async (req, reply) => send(reply, await gw.handleProvider(inbound(req, req.raw.socket as TLSSocket))) });
  return app;
}
