/**
 * @module test/support/exchange
 * A whole exchange on loopback for end-to-end tests: a central authority, a population register
 * behind its provider gateway (with an optional tampering TLS proxy in front of it), and a
 * consumer gateway, all with real keys, real certificates and real mutual TLS. Time is a shared
 * clock with an adjustable offset, so a test can move everyone ten minutes ahead.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { initCentral, Central } from '../../src/central/central.ts';
import { createCentralServer } from '../../src/central/server.ts';
import { loadCatalogue } from '../../src/catalogue/catalogue.ts';
import { openStore, type Store } from '../../src/store/db.ts';
import { createRegistries, type Registries } from '../../src/registry/registries.ts';
import { createRegistryServer } from '../../src/registry/routes.ts';
import { addService, initGateway, startGateway, type RunningGateway } from '../../src/gateway/node.ts';
import type { App } from '../../src/core/http.ts';
import { freePort } from '../../src/demo/ports.ts';

export { freePort };

export const IDS = {
  gro: 'UK/GOV/GRO',
  population: 'UK/GOV/GRO/population',
  groGw: 'UK/GOV/GRO/gw1',
  leeds: 'UK/MUN/LEEDS',
  parking: 'UK/MUN/LEEDS/parking',
  leedsGw: 'UK/MUN/LEEDS/gw1',
  dwp: 'UK/GOV/DWP',
  benefits: 'UK/GOV/DWP/benefits',
} as const;

/** The agreements the tests run under (one current, one expired). */
export const TEST_AGREEMENTS = {
  agreements: [
    {
      id: 'leeds-parking-population',
      client: IDS.parking,
      provider: IDS.population,
      items: ['person.givenName', 'person.familyName', 'person.address'],
      purpose: { id: 'resident-parking-permit', description: 'Check a permit applicant lives in the zone.' },
      legalBasis: 'Synthetic agreement for tests',
      validFrom: '2020-01-01',
      validUntil: '2099-12-31',
    },
    {
      id: 'leeds-old-survey',
      client: IDS.parking,
      provider: IDS.population,
      items: ['person.givenName'],
      purpose: { id: 'parking-survey-2019', description: 'A survey that ended.' },
      legalBasis: 'Synthetic agreement for tests',
      validFrom: '2019-01-01',
      validUntil: '2019-12-31',
    },
  ],
};

export interface Exchange {
  root: string;
  central: Central;
  centralUrl: string;
  token: string;
  registries: Registries;
  /** The population register's URL (its routes need `registryToken`). */
  registryUrl: string;
  registryToken: string;
  /** The population register's own store (for tests that write history with a clock of their own). */
  registryStore: Store;
  people: { alice: string; bob: string };
  gro: RunningGateway;
  leeds: RunningGateway;
  dirs: { central: string; gro: string; leeds: string };
  /** Moves every clock of the exchange (central, gateways) by `ms`. */
  advance(ms: number): void;
  /** The exchange's clock (real time plus every advance). */
  now: () => Date;
  /** Turns the tampering proxy in front of the provider gateway on or off. */
  tamper(on: boolean): void;
  /** Makes the proxy at the provider's address present another member's valid gateway certificate. */
  impersonate(on: boolean): void;
  stopCentral(): Promise<void>;
  startCentral(): Promise<void>;
  /** Stops one gateway (its ports stay reserved for a restart). */
  stopGateway(which: 'gro' | 'leeds'): Promise<void>;
  /** Stops (if running) and starts one gateway from its directory again, e.g. after a settings change. */
  restartGateway(which: 'gro' | 'leeds', opts?: { onWarning?: (message: string) => void }): Promise<void>;
  /** Calls the consumer gateway's client side. */
  call(path: string, headers?: Record<string, string>, init?: { method?: string; body?: string | Buffer }): Promise<{ status: number; headers: Record<string, string>; body: string }>;
  stop(): Promise<void>;
}

/** Starts a complete exchange under a temporary directory. */
export async function startExchange(opts: { validitySeconds?: number; confIntervalMs?: number; natsUrl?: string } = {}): Promise<Exchange> {
  const root = mkdtempSync(join(tmpdir(), 'onceonly-exchange-'));
  let offset = 0;
  const now = (): Date => new Date(Date.now() + offset);
  const dirs = { central: join(root, 'central'), gro: join(root, 'gw-gro'), leeds: join(root, 'gw-leeds') };
  const cleanups: (() => Promise<unknown>)[] = [];

  // Central authority.
  const centralPort = await freePort();
  const centralUrl = `http://127.0.0.1:${centralPort}`;
  const init = await initCentral({ dir: dirs.central, instance: 'UK', url: centralUrl });
  const central = await Central.open({ dir: dirs.central, validitySeconds: opts.validitySeconds ?? 600, clock: now });
  let centralApp: App | undefined;
  const startCentral = async (): Promise<void> => {
    centralApp = await createCentralServer(central);
    await centralApp.listen({ host: '127.0.0.1', port: centralPort });
  };
  const stopCentral = async (): Promise<void> => {
    await centralApp?.close();
    centralApp = undefined;
  };
  await startCentral();
  for (const [id, name] of [[IDS.gro, 'General Register Office (synthetic)'], [IDS.leeds, 'Leeds City Council (synthetic)'], [IDS.dwp, 'Department for Work and Pensions (synthetic)']] as const) await central.addMember({ id, name });
  for (const id of [IDS.population, IDS.parking, IDS.benefits]) await central.addSubsystem({ id });
  await central.publishAgreements(TEST_AGREEMENTS);

  // The population register, reachable only with its gateway's credential.
  const store: Store = await openStore({ sqliteFile: join(root, 'registry.sqlite') });
  const catalogue = loadCatalogue(new URL('../../config/catalogue.yaml', import.meta.url).pathname);
  const registries = createRegistries(store.db, catalogue);
  const home = (await registries.addresses.register({ lines: ['12 Briggate'], town: 'Leeds', postcode: 'LS1 6HD' })).id;
  const alice = (await registries.population.register({ givenName: 'Alice', familyName: 'Ashworth', birthDate: '1990-04-12', addressId: home })).id;
  const bob = (await registries.population.register({ givenName: 'Bob', familyName: 'Booth', birthDate: '1980-01-30', addressId: home })).id;
  const registryToken = 'registry-secret-for-tests';
  const registryApp = await createRegistryServer(registries.population, { token: registryToken });
  const registryUrl = await registryApp.listen({ host: '127.0.0.1', port: 0 });

  // Provider gateway, published at the address of a TLS proxy that forwards to it.
  const [groProxyPort, groPort, groClientPort, leedsPort, leedsClientPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const anchorFile = join(dirs.central, 'anchor.json');
  await initGateway({ dir: dirs.gro, anchorFile, id: IDS.groGw, address: `https://127.0.0.1:${groProxyPort}`, clientPort: groClientPort, providerPort: groPort, token: init.token, subsystems: [IDS.population] });
  addService(dirs.gro, IDS.population, 'people', { url: `${registryUrl}/people`, timeoutMs: 5000, headers: { authorization: `Bearer ${registryToken}` }, kind: 'registry' });
  // A service that accepts the connection and never answers, to show the timeout.
  const hanging = createHttpServer(() => undefined);
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  const hangingPort = (hanging.address() as { port: number }).port;
  addService(dirs.gro, IDS.population, 'slow', { url: `http://127.0.0.1:${hangingPort}/people`, timeoutMs: 300, kind: 'registry' });
  cleanups.push(async () => {
    hanging.closeAllConnections();
    await new Promise<void>((resolve) => hanging.close(() => resolve()));
  });
  await initGateway({ dir: dirs.leeds, anchorFile, id: IDS.leedsGw, address: `https://127.0.0.1:${leedsPort}`, clientPort: leedsClientPort, providerPort: leedsPort, token: init.token, subsystems: [IDS.parking] });
  const gwSettings = { confIntervalMs: opts.confIntervalMs ?? 60_000 };
  const running: { gro: RunningGateway | undefined; leeds: RunningGateway | undefined } = {
    gro: await startGateway(dirs.gro, { settings: gwSettings, now, natsUrl: opts.natsUrl }),
    leeds: await startGateway(dirs.leeds, { settings: gwSettings, now, natsUrl: opts.natsUrl }),
  };

  let tampering = false;
  const proxy = await startTamperingProxy({
    port: groProxyPort,
    key: readFileSync(join(dirs.gro, 'tls.key.pem'), 'utf8'),
    cert: readFileSync(join(dirs.gro, 'tls.cert.pem'), 'utf8'),
    upstream: `https://127.0.0.1:${groPort}`,
    clientKey: readFileSync(join(dirs.leeds, 'tls.key.pem'), 'utf8'),
    clientCert: readFileSync(join(dirs.leeds, 'tls.cert.pem'), 'utf8'),
    ca: central.caCertificate,
    tampering: () => tampering,
  });
  const stopGateway = async (which: 'gro' | 'leeds'): Promise<void> => {
    await running[which]?.stop();
    running[which] = undefined;
  };
  cleanups.push(() => proxy.close(), () => stopGateway('leeds'), () => stopGateway('gro'), () => registryApp.close(), () => store.close(), () => stopCentral(), () => central.close());

  const clientBase = running.leeds!.clientUrl;
  const ex: Exchange = {
    root,
    central,
    centralUrl,
    token: init.token,
    registries,
    registryUrl,
    registryToken,
    registryStore: store,
    people: { alice, bob },
    get gro() {
      if (!running.gro) throw new Error('the GRO gateway is stopped');
      return running.gro;
    },
    get leeds() {
      if (!running.leeds) throw new Error('the Leeds gateway is stopped');
      return running.leeds;
    },
    dirs,
    advance: (ms) => {
      offset += ms;
    },
    now,
    tamper: (on) => {
      tampering = on;
    },
    impersonate: (on) => {
      const d = on ? dirs.leeds : dirs.gro;
      proxy.useCertificate(readFileSync(join(d, 'tls.key.pem'), 'utf8'), readFileSync(join(d, 'tls.cert.pem'), 'utf8'));
    },
    stopCentral,
    startCentral,
    stopGateway,
    async restartGateway(which, o = {}) {
      await stopGateway(which);
      running[which] = await startGateway(dirs[which], { settings: gwSettings, now, natsUrl: opts.natsUrl, ...o });
    },
    async call(path, headers = {}, init2 = {}) {
      const res = await request(`${clientBase}${path}`, { method: (init2.method ?? 'GET') as 'GET', headers, body: init2.body ?? null });
      const body = await res.body.text();
      const h: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h[k] = v;
      return { status: res.statusCode, headers: h, body };
    },
    async stop() {
      for (const c of cleanups) await c().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
  return ex;
}

/**
 * A man in the middle holding the provider gateway's own certificate and key (the worst case: a
 * stolen TLS key). It forwards faithfully, or flips one byte of each response body when told to;
 * the response signature must still expose it.
 */
async function startTamperingProxy(o: { port: number; key: string; cert: string; upstream: string; clientKey: string; clientCert: string; ca: string; tampering: () => boolean }): Promise<{ close(): Promise<void>; useCertificate(key: string, cert: string): void }> {
  const agent = new Agent({ connect: { key: o.clientKey, cert: o.clientCert, ca: o.ca } });
  const server: HttpsServer = createHttpsServer({ key: o.key, cert: o.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
      request(`${o.upstream}${req.url ?? '/'}`, { method: (req.method ?? 'GET') as 'GET', headers, body: chunks.length ? Buffer.concat(chunks) : null, dispatcher: agent })
        .then(async (up) => {
          const body = Buffer.from(await up.body.arrayBuffer());
          if (o.tampering() && body.length > 0) body[body.length - 2] = (body[body.length - 2]! + 1) % 256;
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(up.headers)) if (typeof v === 'string' && k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding') out[k] = v;
          out['content-length'] = String(body.length);
          res.writeHead(up.statusCode, out).end(body);
        })
        // The provider gateway behind is down: look like it, a connection that breaks, not an answer.
        .catch(() => res.socket?.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(o.port, '127.0.0.1', resolve));
  return {
    useCertificate: (key, cert) => {
      server.setSecureContext({ key, cert });
      // Existing connections were verified with the old certificate: make clients connect anew.
      server.closeAllConnections();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await agent.close();
    },
  };
}
