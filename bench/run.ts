/**
 * @module bench/run
 * `npm run bench [-- --quick]`: runs every benchmark and prints each figure with its same-run
 * baseline and the ratio. `--quick` shrinks sizes for a smoke run; `--json` prints one JSON line.
 */
import { runFoundation, type BenchResult } from './foundation.ts';
import { runExchange } from './exchange.ts';
import { runLinkage } from './linkage.ts';
import { runTransparency } from './transparency.ts';
import { runEvents } from './events.ts';
import { runPortal } from './portal.ts';

const quick = process.argv.includes('--quick');
const json = process.argv.includes('--json');
// `npm run bench -- --only exchange` runs one group.
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;

const results: BenchResult[] = [];
if (!only || only === 'foundation') {
  results.push(...(await runFoundation({ people: quick ? 20_000 : 1_000_000, readPeople: quick ? 2_000 : 100_000, seconds: quick ? 2 : 8 })));
}
if (!only || only === 'exchange') {
  results.push(...(await runExchange({ seconds: quick ? 3 : 10 })));
}

if (!only || only === 'linkage') {
  results.push(...(await runLinkage(quick ? { people: 100_000, rows: 10_000 } : { people: 1_000_000, rows: 100_000 })));
}

if (!only || only === 'transparency') {
  results.push(...(await runTransparency({ entries: quick ? 20_000 : 1_000_000, seconds: quick ? 2 : 4 })));
}

if (!only || only === 'events') {
  results.push(...(await runEvents({ rate: 100, seconds: quick ? 3 : 10, burst: quick ? 200 : 1000 })));
}

if (!only || only === 'portal') {
  results.push(...(await runPortal({ people: quick ? 1_000 : 10_000, seconds: quick ? 3 : 10 })));
}

if (json) {
  process.stdout.write(`${JSON.stringify(results)}\n`);
} else {
  const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en-GB') : n >= 1 ? n.toFixed(2) : n.toFixed(4));
  for (const r of results) {
    process.stdout.write(`\n${r.name}\n  ${fmt(r.value)} ${r.unit}   baseline (${r.baselineName}): ${fmt(r.baseline)} ${r.unit}   ratio ${r.ratio.toFixed(3)}\n`);
    if (r.extra) process.stdout.write(`  ${Object.entries(r.extra).map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v) : v}`).join('  ')}\n`);
  }
}
