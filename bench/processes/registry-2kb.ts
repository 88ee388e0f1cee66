/**
 * @module bench/processes/registry-2kb
 * A registry-shaped service on the project's HTTP stack that answers every read with a fixed
 * 2 KB body holding exactly the items asked for. The exchange benchmark measures what the
 * gateways add, so the service behind them must cost the same on every path and nothing else;
 * the real registries' own speed is measured by the Foundation benchmark.
 *
 * Usage: node --import tsx bench/processes/registry-2kb.ts  (prints `listening URL` on stdout)
 */
import { createApp } from '../../src/core/http.ts';

const app = await createApp({ title: 'benchmark registry (2 KB answers)' });
const SIZE = 2048;

app.get('/people/:id', (req, reply) => {
  const { id } = req.params as { id: string };
  const items = String((req.query as { items?: string }).items ?? '').split(',').filter((s) => s !== '');
  // The registry contract: the answer names the date it answers for (today, as a registry would).
  const doc = { id, asAt: new Date().toISOString().slice(0, 10), knownAt: null, items: {} as Record<string, unknown> };
  for (const it of items) doc.items[it] = { value: '', source: 'UK/GOV/GRO/population', lastUpdated: '2026-01-01T00:00:00.000Z', classification: 'personal' };
  const base = JSON.stringify(doc).length;
  const first = items[0];
  // Pad the first value so that every answer is exactly SIZE bytes.
  if (first) (doc.items[first] as { value: string }).value = 'x'.repeat(Math.max(0, SIZE - base));
  return reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(doc));
});

const url = await app.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0) });
process.stdout.write(`listening ${url}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
