/**
 * @module bench/processes/bare-proxy
 * The baseline for the exchange: a bare forwarding proxy on the same stack (Fastify, undici with
 * keep-alive), with no TLS, no signatures, no checks and no log. It maps
 * `/r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE/rest` to `TARGET/SERVICE/rest` like a gateway does.
 *
 * Usage: node --import tsx bench/processes/bare-proxy.ts PORT TARGET_BASE_URL
 */
import { Agent, request } from 'undici';
import { createApp } from '../../src/core/http.ts';

const target = process.argv[3] ?? '';
const agent = new Agent({ keepAliveTimeout: 30_000, connections: 64 });
const app = await createApp({ title: 'bare forwarding proxy (benchmark baseline)', maxParamLength: 4096 });
app.get('/r1/*', async (req, reply) => {
  const raw = req.raw.url ?? '';
  const parts = raw.split('/');
  const rest = parts.slice(6).join('/');
  const up = await request(`${target}/${rest}`, { method: 'GET', headers: { accept: 'application/json' }, dispatcher: agent });
  const body = Buffer.from(await up.body.arrayBuffer());
  const ct = up.headers['content-type'];
  return reply.status(up.statusCode).header('content-type', typeof ct === 'string' ? ct : 'application/json').send(body);
});
const url = await app.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0) });
process.stdout.write(`listening ${url}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
