/**
 * @module bench/processes/tls-pair-proxy
 * The structural floor of the secured path: the same two hops as client gateway -> provider
 * gateway -> service, on the same stack (Fastify, undici with keep-alive), with mutual TLS between
 * the two hops, but no signatures, no checks, no replay guard and no log. What the secured path
 * costs beyond this is what onceonly's security work costs; what this costs beyond the bare proxy
 * is the price of a second hop and of TLS alone.
 *
 * Usage: node --import tsx bench/processes/tls-pair-proxy.ts front PORT BACK_URL CERT KEY
 *        node --import tsx bench/processes/tls-pair-proxy.ts back PORT TARGET_BASE_URL CERT KEY
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { Agent, request } from 'undici';
import { createApp } from '../../src/core/http.ts';

const [mode, port, upstream, certFile, keyFile] = process.argv.slice(2);
const cert = readFileSync(certFile ?? '', 'utf8');
const key = readFileSync(keyFile ?? '', 'utf8');
// Certificates are presented and checked for shape, not chained to a CA: verification runs once per
// connection and connections are kept alive, so it is not part of the steady-state cost measured.
const agent = new Agent({ keepAliveTimeout: 30_000, connections: 64, connect: mode === 'front' ? { cert, key, rejectUnauthorized: false } : {} });
const app = await createApp({
  title: `tls pair proxy, ${mode} (benchmark floor)`,
  maxParamLength: 4096,
  ...(mode === 'back' ? { serverFactory: (h) => createServer({ cert, key, requestCert: true, rejectUnauthorized: false }, h) } : {}),
});
app.get('/*', async (req, reply) => {
  const raw = req.raw.url ?? '';
  // The front forwards the r1 path unchanged; the back maps it to the service as a gateway does.
  const path = mode === 'front' ? raw : '/' + raw.split('/').slice(6).join('/');
  const up = await request(`${upstream}${path}`, { method: 'GET', headers: { accept: 'application/json' }, dispatcher: agent });
  const body = Buffer.from(await up.body.arrayBuffer());
  const ct = up.headers['content-type'];
  return reply.status(up.statusCode).header('content-type', typeof ct === 'string' ? ct : 'application/json').send(body);
});
const url = await app.listen({ host: '127.0.0.1', port: Number(port ?? 0) });
process.stdout.write(`listening ${url}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
