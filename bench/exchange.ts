/**
 * @module bench/exchange
 * Issue "The exchange" benchmark: requests per second and p50/p99 latency, with 2 KB answers, for
 *
 * (a) the registry called directly,
 * (b) the same call through a bare forwarding proxy on the same stack (no TLS, signing or log),
 * (c) the full secured path: client gateway -> provider gateway (mutual TLS, signatures, replay
 *     guard, agreement check, message log on both ends) -> registry,
 *
 * (d) the structural floor of (c): the same two hops with mutual TLS between them on the same
 *     stack, but no signatures, checks or log,
 *
 * each part in its own process, as deployed, and the ratios (c)/(b) and (d)/(b). The load generator runs in
 * this process; the central authority too (it only serves a configuration fetch a minute).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { initCentral, Central } from '../src/central/central.ts';
import { createCentralServer } from '../src/central/server.ts';
import { addService, initGateway } from '../src/gateway/node.ts';
import { freePort } from '../test/support/exchange.ts';
import type { BenchResult } from './foundation.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function startProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env, DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ child, line: out.slice(0, nl) });
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${err}`)));
  });
}

let connections = 64;

/**
 * CPU time a process has used, ms (Linux /proc/PID/stat utime + stime, proc(5), in clock ticks of
 * 1/100 s on Linux); undefined elsewhere. CPU per request is far less sensitive to a busy shared
 * machine than requests per second, so the bench reports it beside the throughput.
 */
export function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  /** Requests completed. */
  total: number;
}

async function load(url: string, paths: string[], headers: Record<string, string>, seconds: number): Promise<Load> {
  let i = 0;
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    headers,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length]! }) }],
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx + r.errors + r.timeouts, total: r.requests.total };
}

/** Runs (a), (b) and (c) and returns the figures. */
export async function runExchange(opts: { seconds: number }): Promise<BenchResult[]> {
  const root = mkdtempSync(join(tmpdir(), 'onceonly-bench-exchange-'));
  const children: ChildProcess[] = [];
  let central: Central | undefined;
  let centralApp: Awaited<ReturnType<typeof createCentralServer>> | undefined;
  try {
    const centralPort = await freePort();
    const init = await initCentral({ dir: join(root, 'central'), instance: 'UK', url: `http://127.0.0.1:${centralPort}` });
    central = await Central.open({ dir: join(root, 'central') });
    centralApp = await createCentralServer(central);
    await centralApp.listen({ host: '127.0.0.1', port: centralPort });
    await central.addMember({ id: 'UK/GOV/GRO', name: 'General Register Office (synthetic)' });
    await central.addMember({ id: 'UK/MUN/LEEDS', name: 'Leeds City Council (synthetic)' });
    await central.addSubsystem({ id: 'UK/GOV/GRO/population' });
    await central.addSubsystem({ id: 'UK/MUN/LEEDS/parking' });
    await central.publishAgreements({
      agreements: [{ id: 'bench', client: 'UK/MUN/LEEDS/parking', provider: 'UK/GOV/GRO/population', items: ['person.givenName', 'person.familyName', 'person.address'], purpose: { id: 'bench', description: 'Benchmark' }, legalBasis: 'Synthetic agreement for benchmarks', validFrom: '2020-01-01', validUntil: '2099-12-31' }],
    });

    const registry = await startProcess(['--import', 'tsx', 'bench/processes/registry-2kb.ts', '0']);
    children.push(registry.child);
    const registryUrl = registry.line.replace('listening ', '');

    const [groPort, groClient, leedsPort, leedsClient, proxyPort, floorFront, floorBack] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    const anchorFile = join(root, 'central', 'anchor.json');
    const groDir = join(root, 'gw-gro');
    const leedsDir = join(root, 'gw-leeds');
    await initGateway({ dir: groDir, anchorFile, id: 'UK/GOV/GRO/gw1', address: `https://127.0.0.1:${groPort}`, clientPort: groClient, providerPort: groPort, token: init.token, subsystems: ['UK/GOV/GRO/population'] });
    addService(groDir, 'UK/GOV/GRO/population', 'people', { url: `${registryUrl}/people`, timeoutMs: 10_000, kind: 'registry' });
    await initGateway({ dir: leedsDir, anchorFile, id: 'UK/MUN/LEEDS/gw1', address: `https://127.0.0.1:${leedsPort}`, clientPort: leedsClient, providerPort: leedsPort, token: init.token, subsystems: ['UK/MUN/LEEDS/parking'] });
    const gatewayPids: (number | undefined)[] = [];
    for (const dir of [groDir, leedsDir]) {
      const g = await startProcess([...(process.env['BENCH_PROFILE'] ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []), 'bin/onceonly.js', 'gateway', 'serve', '--dir', dir]);
      children.push(g.child);
      gatewayPids.push(g.child.pid);
    }
    const gatewaysCpu = (): number | undefined => {
      const t = gatewayPids.map(cpuMs);
      return t.every((x) => x !== undefined) ? t.reduce((a, b) => a + b, 0) : undefined;
    };
    const proxy = await startProcess(['--import', 'tsx', 'bench/processes/bare-proxy.ts', String(proxyPort), registryUrl]);
    children.push(proxy.child);
    const back = await startProcess(['--import', 'tsx', 'bench/processes/tls-pair-proxy.ts', 'back', String(floorBack), registryUrl, join(groDir, 'tls.cert.pem'), join(groDir, 'tls.key.pem')]);
    children.push(back.child);
    const front = await startProcess(['--import', 'tsx', 'bench/processes/tls-pair-proxy.ts', 'front', String(floorFront), `https://127.0.0.1:${floorBack}`, join(leedsDir, 'tls.cert.pem'), join(leedsDir, 'tls.key.pem')]);
    children.push(front.child);

    const ids = Array.from({ length: 1000 }, (_, i) => `P-${String(i + 1).padStart(9, '0')}-0`);
    const q = '?items=person.givenName,person.familyName,person.address';
    const direct = ids.map((id) => `/people/${id}${q}`);
    const viaR1 = ids.map((id) => `/r1/UK/GOV/GRO/population/people/${id}${q}`);
    const headers = { 'x-road-client': 'UK/MUN/LEEDS/parking', 'x-onceonly-purpose': 'bench' };

    // Warm every path (connections, JIT) before measuring.
    await load(registryUrl, direct, {}, 1);
    await load(`http://127.0.0.1:${proxyPort}`, viaR1, {}, 1);
    await load(`http://127.0.0.1:${floorFront}`, viaR1, {}, 1);
    const warm = await load(`http://127.0.0.1:${leedsClient}`, viaR1, headers, 2);
    if (warm.non2xx > 0) throw new Error(`secured path answered ${warm.non2xx} errors while warming`);

    if (process.env['BENCH_CONNECTIONS_SWEEP']) {
      for (const c of [1, 4, 16, 64, 128]) {
        connections = c;
        const r = await load(`http://127.0.0.1:${leedsClient}`, viaR1, headers, 3);
        process.stderr.write(`secured, ${c} connections: ${Math.round(r.rps)} req/s p50 ${r.p50} ms\n`);
      }
      connections = 64;
    }
    // Both gateways' CPU per secured request, ms: what the security work costs, whatever else runs.
    const securedLoad = async (): Promise<Load & { cpuPerRequest: number | undefined }> => {
      const before = gatewaysCpu();
      const r = await load(`http://127.0.0.1:${leedsClient}`, viaR1, headers, opts.seconds);
      const after_ = gatewaysCpu();
      return { ...r, cpuPerRequest: before !== undefined && after_ !== undefined && r.total > 0 ? (after_ - before) / r.total : undefined };
    };
    if (process.env['BENCH_ONLY_SECURED']) {
      const c = await securedLoad();
      process.stderr.write(`secured only: ${Math.round(c.rps)} req/s p50 ${c.p50} ms p99 ${c.p99} ms, gateways' CPU ${c.cpuPerRequest?.toFixed(3) ?? '?'} ms per request\n`);
      return [];
    }
    const a = await load(registryUrl, direct, {}, opts.seconds);
    const b = await load(`http://127.0.0.1:${proxyPort}`, viaR1, {}, opts.seconds);
    const c = await securedLoad();
    const d = await load(`http://127.0.0.1:${floorFront}`, viaR1, {}, opts.seconds);
    for (const [name, r] of [['direct', a], ['proxy', b], ['secured', c], ['floor', d]] as const) if (r.non2xx > 0) throw new Error(`${name}: ${r.non2xx} failed requests`);
    const lat = (r: Load): Record<string, number> => ({ p50_ms: r.p50, p99_ms: r.p99 });
    return [
      { name: '(a) registry called directly, 2 KB answers', value: a.rps, unit: 'req/s', baseline: b.rps, baselineName: '(b) bare forwarding proxy', ratio: a.rps / b.rps, extra: lat(a) },
      { name: '(b) bare forwarding proxy (no TLS, signing or log)', value: b.rps, unit: 'req/s', baseline: a.rps, baselineName: '(a) registry directly', ratio: b.rps / a.rps, extra: lat(b) },
      { name: '(c) secured: client gateway -> provider gateway (mTLS, signed, logged) -> registry', value: c.rps, unit: 'req/s', baseline: b.rps, baselineName: '(b) bare forwarding proxy', ratio: c.rps / b.rps, extra: { ...lat(c), target_ratio: 0.5, target_rps: 2000, ...(c.cpuPerRequest !== undefined ? { gateways_cpu_ms_per_request: c.cpuPerRequest } : {}) } },
      { name: '(d) floor of (c): the same two hops with mutual TLS, no signing, checks or log', value: d.rps, unit: 'req/s', baseline: b.rps, baselineName: '(b) bare forwarding proxy', ratio: d.rps / b.rps, extra: { ...lat(d), secured_over_floor: c.rps / d.rps } },
    ];
  } finally {
    for (const ch of children) ch.kill('SIGTERM');
    await Promise.all(children.map((ch) => (ch.exitCode === null ? new Promise((r) => ch.once('exit', r)) : Promise.resolve())));
    await centralApp?.close();
    await central?.close();
    rmSync(root, { recursive: true, force: true });
  }
}
