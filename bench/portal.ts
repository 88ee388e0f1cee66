/**
 * @module bench/portal
 * Signed-in page views of *Your data* (each one three reads through the exchange: the population
 * register, the address register and the business register, each through the portal's gateway
 * and the register's; the population register's with its access record) against a static page of the same app (the accessibility statement) with the
 * same session, middleware and templates, in the same run. The whole demo runs in this process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startDemo } from '../src/demo/demo.ts';
import { populate } from '../src/registry/populate.ts';
import { Browser, signIn } from '../test/support/portal.ts';
import type { BenchResult } from './foundation.ts';

function cannon(url: string, cookie: string, seconds: number): Promise<autocannon.Result> {
  return autocannon({ url, connections: 8, duration: seconds, headers: { cookie } });
}

export async function runPortal(o: { people: number; seconds: number }): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'onceonly-bench-portal-'));
  const demo = await startDemo({ dataDir: dir, basePort: 0, people: o.people, generate: (store, people) => populate(store, { people, seed: 1 }) });
  try {
    const b = new Browser();
    await signIn(demo.portal, b);
    const cookie = [...b.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    // Warm both paths (connections, templates, the identity model) before measuring.
    await cannon(`${demo.portal.url}/your-data`, cookie, 1);
    const base = await cannon(`${demo.portal.url}/accessibility`, cookie, o.seconds);
    const real = await cannon(`${demo.portal.url}/your-data`, cookie, o.seconds);
    if (real.non2xx > 0 || real.errors > 0 || base.non2xx > 0) throw new Error(`portal bench: ${real.non2xx} non-2xx, ${real.errors} errors (static: ${base.non2xx} non-2xx)`);
    return [{
      name: 'Citizen portal: signed-in views of Your data (three registers read through the exchange per view)',
      value: real.requests.average,
      unit: 'views/s',
      baseline: base.requests.average,
      baselineName: 'a static page of the same app, same session',
      ratio: real.requests.average / base.requests.average,
      extra: { p50_ms: real.latency.p50, p99_ms: real.latency.p99, static_p50_ms: base.latency.p50, static_p99_ms: base.latency.p99, registers_per_view: 3 },
    }];
  } finally {
    await demo.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
