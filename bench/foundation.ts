/**
 * @module bench/foundation
 * Issue "Foundation" benchmarks. Every figure comes with a baseline measured in the same run, on
 * the same machine, so the ratio means something on a shared, noisy host:
 *
 * 1. HTTP: single-person reads of 5 items per second, against a route on the same Fastify stack
 *    that returns a constant.
 * 2. Store: RegistryService reads per second, against a raw prepared better-sqlite3 statement
 *    selecting the same rows of the same table.
 * 3. Load: generating and loading N people (default 1,000,000), against generating alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { openStore, type Store } from '../src/store/db.ts';
import { loadCatalogue } from '../src/catalogue/catalogue.ts';
import { createRegistries, REGISTRY_IDS } from '../src/registry/registries.ts';
import { createRegistryServer } from '../src/registry/routes.ts';
import { populate } from '../src/registry/populate.ts';
import { generate } from '../src/registry/generate.ts';
import { packagePath } from '../src/core/files.ts';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  baselineName: string;
  /** value / baseline (higher is better for rates). */
  ratio: number;
  extra?: Record<string, number | string>;
}

const ITEMS = ['person.givenName', 'person.familyName', 'person.birthDate', 'person.address', 'person.status'];

async function samplePeople(store: Store, n: number): Promise<string[]> {
  const rows = await store.db.selectFrom('subject').select('id').where('registry', '=', REGISTRY_IDS.population).orderBy('id').limit(n).execute();
  return rows.map((r) => r.id);
}

function cannon(url: string, paths: string[], seconds: number): Promise<autocannon.Result> {
  let i = 0;
  return autocannon({
    url,
    connections: 16,
    duration: seconds,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length]! }) }],
  });
}

/** HTTP reads versus a constant route, on one store of `people` people. */
export async function benchHttp(store: Store, seconds: number): Promise<BenchResult> {
  const catalogue = loadCatalogue(packagePath('config/catalogue.yaml'));
  const regs = createRegistries(store.db, catalogue);
  const app = await createRegistryServer(regs.population);
  const constant = { id: 'P-000000001-X', asAt: '2026-01-01', knownAt: null, items: { 'person.givenName': { value: 'x', source: REGISTRY_IDS.population, lastUpdated: '2026-01-01T00:00:00.000Z', classification: 'personal' } } };
  app.get('/constant', () => constant);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const ids = await samplePeople(store, 5000);
    const q = `?items=${ITEMS.join(',')}`;
    const base = await cannon(url, ['/constant'], seconds);
    const real = await cannon(url, ids.map((id) => `/people/${id}${q}`), seconds);
    if (real.non2xx > 0 || real.errors > 0) throw new Error(`HTTP bench: ${real.non2xx} non-2xx, ${real.errors} errors`);
    return {
      name: 'HTTP single-person reads of 5 items',
      value: real.requests.average,
      unit: 'req/s',
      baseline: base.requests.average,
      baselineName: 'constant route, same stack',
      ratio: real.requests.average / base.requests.average,
      extra: { p50_ms: real.latency.p50, p99_ms: real.latency.p99, baseline_p50_ms: base.latency.p50 },
    };
  } finally {
    await app.close();
  }
}

/** Store reads through RegistryService versus a raw prepared statement on the same table. */
export async function benchStore(store: Store, seconds: number): Promise<BenchResult> {
  if (!store.sqlite) throw new Error('store bench needs the embedded SQLite store');
  const catalogue = loadCatalogue(packagePath('config/catalogue.yaml'));
  const regs = createRegistries(store.db, catalogue);
  const ids = await samplePeople(store, 5000);
  const raw = store.sqlite.prepare(
    `SELECT item, value, recorded_at FROM fact WHERE registry = ? AND subject = ? AND item IN (?, ?, ?, ?, ?)
     AND superseded_at IS NULL AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)`,
  );
  const asAt = new Date().toISOString().slice(0, 10);
  const deadline = (): number => performance.now() + seconds * 1000;
  let n = 0;
  let end = deadline();
  let t0 = performance.now();
  while (performance.now() < end) {
    for (let k = 0; k < 100; k++) {
      const rows = raw.all(REGISTRY_IDS.population, ids[n++ % ids.length], ...ITEMS, asAt, asAt) as { value: string }[];
      for (const r of rows) JSON.parse(r.value);
    }
  }
  const rawRate = n / ((performance.now() - t0) / 1000);
  n = 0;
  end = deadline();
  t0 = performance.now();
  while (performance.now() < end) {
    for (let k = 0; k < 20; k++) await regs.population.read(ids[n++ % ids.length], ITEMS);
  }
  const rate = n / ((performance.now() - t0) / 1000);
  return {
    name: 'store reads of 5 items (RegistryService, incl. validation and address resolution)',
    value: rate,
    unit: 'reads/s',
    baseline: rawRate,
    baselineName: 'raw prepared better-sqlite3 statement, same rows',
    ratio: rate / rawRate,
  };
}

/** Generating and loading `people` people, versus generating alone. */
export async function benchLoad(people: number): Promise<BenchResult> {
  let t0 = performance.now();
  let count = 0;
  for (const r of generate({ people })) if (r.kind === 'person') count++;
  const genSeconds = (performance.now() - t0) / 1000;
  const dir = mkdtempSync(join(tmpdir(), 'onceonly-bench-'));
  try {
    const store = await openStore({ dataDir: dir });
    t0 = performance.now();
    const r = await populate(store, { people });
    const loadSeconds = (performance.now() - t0) / 1000;
    await store.close();
    if (r.people !== people || count !== people) throw new Error('load bench: wrong number of people');
    return {
      name: `generate and load ${people.toLocaleString('en-GB')} people into SQLite`,
      value: loadSeconds,
      unit: 's',
      baseline: genSeconds,
      baselineName: 'generate only, no store',
      ratio: loadSeconds / genSeconds,
      extra: { facts: r.facts, addresses: r.addresses, companies: r.companies, people_per_s: Math.round(people / loadSeconds), rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the Foundation benchmarks. */
export async function runFoundation(opts: { people: number; readPeople: number; seconds: number }): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'onceonly-bench-'));
  const out: BenchResult[] = [];
  try {
    const store = await openStore({ dataDir: dir });
    await populate(store, { people: opts.readPeople });
    out.push(await benchHttp(store, opts.seconds));
    out.push(await benchStore(store, opts.seconds));
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  out.push(await benchLoad(opts.people));
  return out;
}
