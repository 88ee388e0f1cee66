/**
 * @module demo/demo
 * `onceonly demo`: a whole small country on loopback from one command. A central authority; a
 * gateway for each registry's organisation (population, addresses, companies) and for two
 * consuming organisations (Leeds City Council, the benefits agency), with mutual TLS between
 * gateways; the registries themselves answer only their own gateway. The catalogue and the
 * public register of agreements are served beside them.
 *
 * Everything lives under the data directory and is reused on restart: `demo.json` (the ports
 * chosen on first start), `central/` (keys, anchor, its store), `gateways/NAME/` (keys, settings,
 * store) and `onceonly.sqlite` (the registries). An interrupted first start is detected (no
 * `demo.json`) and started again from scratch.
 */
import { RegistryRepository } from '../registry/repository.ts';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCatalogue, type Catalogue } from '../catalogue/catalogue.ts';
import { loadAgreements } from '../catalogue/agreements.ts';
import { createCatalogueServer } from '../catalogue/routes.ts';
import { createRegistries, REGISTRY_IDS } from '../registry/registries.ts';
import { createRegistryServer } from '../registry/routes.ts';
import { clearRegistries, populationStatus } from '../registry/populate.ts';
import { openStore, type Store } from '../store/db.ts';
import { initCentral, Central } from '../central/central.ts';
import { createCentralServer } from '../central/server.ts';
import { addService, initGateway, readSettings, setWebhook, setWitnesses, startGateway, type RunningGateway } from '../gateway/node.ts';
import { newWebhookSecret } from '../events/format.ts';
import { startReceiver, type Receiver } from '../events/receiver.ts';
import { issuePersonCredential } from '../consent/credentials.ts';
import type { App } from '../core/http.ts';
import type { LoadResult } from '../registry/load.ts';
import { packagePath } from '../core/files.ts';
import { freePort } from './ports.ts';
import { registerFromStore } from '../audit/register.ts';
import { IdentityMatcher } from '../identity/match.ts';
import { identityRoutes } from '../identity/routes.ts';
import { addressSearchRoutes, officerSearchRoutes } from '../registry/search.ts';
import { startPortal, type RunningPortal } from './portal.ts';
import { AGENCIES, TRUTH_FILE, writeExtracts } from '../audit/extracts.ts';

export interface DemoOptions {
  dataDir: string;
  /** First port of the block the demo uses on first start (0: any free ports). */
  basePort: number;
  /** People to generate on first start. */
  people: number;
  /** PostgreSQL for the registries' store (gateways and central keep SQLite files in the demo). */
  databaseUrl?: string | undefined;
  /** Generates the population (the CLI passes one with a progress bar). */
  generate: (store: Store, people: number) => Promise<LoadResult>;
  /** Progress messages for a person (never personal data). */
  say?: (line: string) => void;
}

/** An example request that succeeds against the running demo. */
export interface ExampleRequest {
  description: string;
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  headers: Record<string, string>;
  body?: unknown;
  /**
   * Set when the request reads or changes a person's data (what the person would see as a real use
   * of it): the demo's own readiness check asks this, which releases nothing, instead; with
   * `service`, the answer (allowedMethods) must list it.
   */
  check?: { url: string; headers: Record<string, string>; service?: string };
}

export interface Endpoint {
  name: string;
  /** What it is, in a few words. */
  role: string;
  /** The subsystem or gateway id it stands for. */
  id?: string;
  url: string;
  openapi?: string;
}

/** The agencies' extracts written for the duplication audit, and the command that audits them. */
export interface DemoExtracts {
  dir: string;
  files: string[];
  /** What the generator did to each row (for checking the audit, not for it). */
  truth: string;
  command: string;
}

export interface RunningDemo {
  endpoints: Endpoint[];
  /** Tell Us Once: the demo subscribers' systems and their subscriptions. */
  tellUsOnce: { receivers: { name: string; subsystem: string; url: string; subscription: string }[] };
  examples: ExampleRequest[];
  extracts: DemoExtracts;
  /** The citizen portal, its demo identity provider and the synthetic people who can sign in. */
  portal: RunningPortal['info'];
  stop(): Promise<void>;
}

/** The organisations of the demo. */
const ORGS = [
  { key: 'gro', member: 'UK/GOV/GRO', name: 'General Register Office (synthetic)', subsystems: ['population'], registry: 'population' as const, service: 'people' },
  { key: 'geoplace', member: 'UK/GOV/GEOPLACE', name: 'GeoPlace address register (synthetic)', subsystems: ['addresses'], registry: 'addresses' as const, service: 'addresses' },
  { key: 'ch', member: 'UK/GOV/CH', name: 'Companies House (synthetic)', subsystems: ['companies'], registry: 'companies' as const, service: 'companies' },
  { key: 'leeds', member: 'UK/MUN/LEEDS', name: 'Leeds City Council (synthetic)', subsystems: ['parking'] },
  { key: 'dwp', member: 'UK/GOV/DWP', name: 'Department for Work and Pensions (synthetic)', subsystems: ['benefits'] },
  // The citizen portal: reads each register's access records for the person signed in (the tracker).
  { key: 'gds', member: 'UK/GOV/GDS', name: 'Government Digital Service citizen portal (synthetic)', subsystems: ['citizen-portal'] },
] as const;

type OrgKey = (typeof ORGS)[number]['key'];

/** `demo.json`: what the first start chose. */
interface DemoLayout {
  version: 1;
  ports: { central: number; catalogue: number; registries: Record<string, number>; gatewayClient: Record<string, number>; gatewayProvider: Record<string, number> };
}

async function choosePorts(base: number): Promise<DemoLayout['ports']> {
  const pick = async (offset: number): Promise<number> => (base === 0 ? freePort() : base + offset);
  const ports: DemoLayout['ports'] = { central: await pick(0), catalogue: await pick(1), registries: {}, gatewayClient: {}, gatewayProvider: {} };
  for (const [i, o] of ORGS.entries()) {
    ports.gatewayClient[o.key] = await pick(10 + i);
    ports.gatewayProvider[o.key] = await pick(20 + i);
    if ('registry' in o) ports.registries[o.registry] = await pick(30 + i);
  }
  return ports;
}

/** First start: central, members, gateways with certificates, service registrations. */
async function setUp(dir: string, base: number, say: (l: string) => void): Promise<DemoLayout> {
  const ports = await choosePorts(base);
  const centralDir = join(dir, 'central');
  const init = await initCentral({ dir: centralDir, instance: 'UK', url: `http://127.0.0.1:${ports.central}`, agreementsFile: packagePath('config/agreements.yaml'), catalogueFile: packagePath('config/catalogue.yaml') });
  const central = await Central.open({ dir: centralDir });
  const app = await createCentralServer(central);
  try {
    await app.listen({ host: '127.0.0.1', port: ports.central });
    for (const o of ORGS) {
      await central.addMember({ id: o.member, name: o.name });
      for (const s of o.subsystems) await central.addSubsystem({ id: `${o.member}/${s}` });
    }
    for (const o of ORGS) {
      const gwDir = join(dir, 'gateways', o.key);
      say(`issuing certificates for the ${o.key} gateway`);
      await initGateway({
        dir: gwDir,
        anchorFile: join(centralDir, 'anchor.json'),
        id: `${o.member}/gw1`,
        address: `https://127.0.0.1:${ports.gatewayProvider[o.key]}`,
        clientPort: ports.gatewayClient[o.key]!,
        providerPort: ports.gatewayProvider[o.key]!,
        token: init.token,
        // Registered by the operator itself, so active at once, serving the organisation's subsystems.
        subsystems: o.subsystems.map((x) => `${o.member}/${x}`),
      });
      if ('registry' in o) {
        // Each registry gets a credential only its own gateway holds.
        const token = randomBytes(24).toString('base64url');
        addService(gwDir, `${o.member}/${o.subsystems[0]}`, o.service, { url: `http://127.0.0.1:${ports.registries[o.registry]}/${o.service}`, timeoutMs: 10_000, headers: { authorization: `Bearer ${token}` }, kind: 'registry', description: `The ${o.registry} register` });
        writeFileSync(join(dir, `registry-${o.registry}.token`), token, { mode: 0o600 });
      }
    }
  } finally {
    await app.close();
    await central.close();
  }
  const layout: DemoLayout = { version: 1, ports };
  // Written last: its presence marks a completed first start.
  writeFileSync(join(dir, 'demo.json'), JSON.stringify(layout, null, 2));
  return layout;
}

async function firstId(registers: RegistryRepository, registry: string): Promise<string> {
  const id = await registers.firstSubject(registry);
  if (!id) throw new Error(`the ${registry} register is empty`);
  return id;
}

/** A person the examples can read: alive, so every item asked for has a value. */
async function livingPerson(registers: RegistryRepository): Promise<string> {
  return (await registers.firstLivingPerson(REGISTRY_IDS.population)) ?? firstId(registers, REGISTRY_IDS.population);
}

function examplesFor(gw: Record<OrgKey, string>, catalogueUrl: string, ids: { person: string; address: string; company: string; newAddress: string }, catalogue: Catalogue, subs: { leeds: string; dwp: string }): ExampleRequest[] {
  const leeds = { accept: 'application/json', 'x-road-client': 'UK/MUN/LEEDS/parking', 'x-onceonly-purpose': 'resident-parking-permit' };
  const dwp = { accept: 'application/json', 'x-road-client': 'UK/GOV/DWP/benefits', 'x-onceonly-purpose': 'benefit-entitlement' };
  const n = catalogue.ownedBy(REGISTRY_IDS.population).length;
  // A read about someone, checked at start-up by allowedMethods on the same path instead.
  const person = (o: { description: string; headers: Record<string, string>; url: string }): ExampleRequest => {
    const u = new URL(o.url);
    const parts = u.pathname.split('/');
    const provider = parts.slice(2, 6).join('/');
    return { ...o, method: 'GET', check: { url: `${u.origin}/r1/${provider}/allowedMethods`, headers: { accept: 'application/json', 'x-road-client': o.headers['x-road-client']! }, service: parts[6]! } };
  };
  return [
    ...[{ description: `Leeds City Council reads an applicant's name and address from the population register (which masters ${n} items), through its own gateway`, method: 'GET', headers: leeds, url: `${gw.leeds}/r1/UK/GOV/GRO/population/people/${ids.person}?items=person.givenName,person.familyName,person.address` },
    { description: 'The benefits agency reads five items of the same person under its own agreement', method: 'GET', headers: dwp, url: `${gw.dwp}/r1/UK/GOV/GRO/population/people/${ids.person}?items=person.givenName,person.familyName,person.birthDate,person.address,person.status` },
    { description: 'Leeds City Council reads an address from the address register', method: 'GET', headers: leeds, url: `${gw.leeds}/r1/UK/GOV/GEOPLACE/addresses/addresses/${ids.address}?items=address.lines,address.postcode` },
    { description: 'The benefits agency checks an employer in the business register', method: 'GET', headers: { ...dwp, 'x-onceonly-purpose': 'employer-verification' }, url: `${gw.dwp}/r1/UK/GOV/CH/companies/companies/${ids.company}?items=business.name,business.status,business.registeredAddress` }].map(person),
    { description: 'Who is on the exchange (X-Road metaservice listClients; XML without the Accept header)', method: 'GET', headers: { accept: 'application/json' }, url: `${gw.leeds}/listClients` },
    { description: 'Which services Leeds may use at the population register (allowedMethods)', method: 'GET', headers: { accept: 'application/json', 'x-road-client': 'UK/MUN/LEEDS/parking' }, url: `${gw.leeds}/r1/UK/GOV/GRO/population/allowedMethods` },
    { description: 'The public register of data-sharing agreements', method: 'GET', headers: { accept: 'application/json' }, url: `${catalogueUrl}/agreements` },
    // Tell Us Once (docs/events.md): each organisation says whom it serves, then one change is
    // reported once and both are told within a second. Each of these is a use the person sees.
    ...[
      { description: 'Tell Us Once, 1: Leeds City Council puts the person on its parking subscription\'s interest list (checked like a read)', org: 'leeds' as const, client: 'UK/MUN/LEEDS/parking', sub: subs.leeds },
      { description: 'Tell Us Once, 2: the benefits agency does the same for its subscription', org: 'dwp' as const, client: 'UK/GOV/DWP/benefits', sub: subs.dwp },
    ].map((x): ExampleRequest => {
      const h = { accept: 'application/json', 'x-road-client': x.client, 'x-onceonly-purpose': 'change-notification' };
      return { description: x.description, method: 'PUT', headers: h, url: `${gw[x.org]}/r1/UK/GOV/GRO/population/subscriptions/${x.sub}/interests/${ids.person}`, check: { url: `${gw[x.org]}/r1/UK/GOV/GRO/population/subscriptions/${x.sub}`, headers: h } };
    }),
    {
      description: 'Tell Us Once, 3: the person reports a move once, through the citizen portal, to the population register that masters their address; the council\'s and the benefits agency\'s systems are told within a second (the demo prints it), and nobody without an agreement is. Run once: to move again, use another addressId',
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/json', 'x-road-client': 'UK/GOV/GDS/citizen-portal', 'x-onceonly-purpose': 'report-a-change' },
      url: `${gw.gds}/r1/UK/GOV/GRO/population/changes/${ids.person}/changes`,
      body: { type: 'move', addressId: ids.newAddress, effectiveDate: new Date().toISOString().slice(0, 10) },
      check: { url: `${gw.gds}/r1/UK/GOV/GRO/population/allowedMethods`, headers: { accept: 'application/json', 'x-road-client': 'UK/GOV/GDS/citizen-portal' }, service: 'changes' },
    },
    person({
      description: 'The citizen portal reads who used the same person\'s population-register data (the data-usage service; each record with a transparency-log inclusion proof). `onceonly tracker PERSON --dir DATA/gateways/gds` does the same for every register and verifies the proofs',
      headers: { accept: 'application/json', 'x-road-client': 'UK/GOV/GDS/citizen-portal', 'x-onceonly-purpose': 'citizen-data-tracker' },
      url: `${gw.gds}/r1/UK/GOV/GRO/population/data-usage/${ids.person}?items=person.usageRecords`,
    }),
  ];
}

/** The subscriber's active push subscription to the population register, made if it has none. */
async function ensureSubscription(gateway: string, client: string, events: string[]): Promise<string> {
  const url = `${gateway}/r1/UK/GOV/GRO/population/subscriptions`;
  const headers = { accept: 'application/json', 'content-type': 'application/json', 'x-road-client': client, 'x-onceonly-purpose': 'change-notification' };
  const list = await fetch(url, { headers });
  if (list.status !== 200) throw new Error(`demo self-check failed: ${client} cannot list its subscriptions: ${list.status} ${(await list.text()).slice(0, 300)}`);
  const found = ((await list.json()) as { subscriptions: { id: string; status: string; mode: string }[] }).subscriptions.find((x) => x.status === 'active' && x.mode === 'push');
  if (found) return found.id;
  const made = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ events, mode: 'push' }) });
  if (made.status !== 201) throw new Error(`demo self-check failed: ${client} cannot subscribe: ${made.status} ${(await made.text()).slice(0, 300)}`);
  return ((await made.json()) as { id: string }).id;
}

/** Starts the demo and returns once every example request answers. */
export async function startDemo(opts: DemoOptions): Promise<RunningDemo> {
  const say = opts.say ?? (() => undefined);
  const dir = opts.dataDir;
  const catalogue = loadCatalogue(packagePath('config/catalogue.yaml'));
  const agreements = loadAgreements(packagePath('config/agreements.yaml'), catalogue);

  let layout: DemoLayout;
  const layoutFile = join(dir, 'demo.json');
  if (existsSync(layoutFile)) {
    layout = JSON.parse(readFileSync(layoutFile, 'utf8')) as DemoLayout;
    if (opts.basePort !== 0 && layout.ports.central !== opts.basePort) say(`reusing the ports chosen on first start (central on ${layout.ports.central}); delete ${dir} to start afresh`);
  } else {
    // No layout: a first start, or one that was interrupted. Exchange state is rebuilt whole.
    rmSync(join(dir, 'central'), { recursive: true, force: true });
    rmSync(join(dir, 'gateways'), { recursive: true, force: true });
    say('first start: creating the central authority and the gateways');
    layout = await setUp(dir, opts.basePort, say);
  }

  const store = await openStore({ databaseUrl: opts.databaseUrl, dataDir: dir });
  const apps: App[] = [];
  const gateways: RunningGateway[] = [];
  let central: Central | undefined;
  const closers: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    await Promise.allSettled(gateways.map((g) => g.stop()));
    await Promise.allSettled(closers.map((c) => c()));
    await Promise.allSettled(apps.map((a) => a.close()));
    await central?.close();
    await store.close();
  };
  try {
    const status = await populationStatus(store);
    if (status.partial) {
      say('the previous first start was interrupted while loading; loading again');
      await clearRegistries(store);
    }
    if (!status.loaded) {
      say(`first start: generating ${opts.people} people into ${store.location}`);
      await opts.generate(store, opts.people);
    } else {
      say(`using the ${status.people} people already in ${store.location}`);
    }

    // Written once, from whatever population the store holds; the truth file is written last, so
    // its absence means the extracts are missing or were interrupted.
    const extractDir = join(dir, 'extracts');
    if (!existsSync(join(extractDir, TRUTH_FILE))) {
      say(`writing three agencies' extracts for the duplication audit into ${extractDir}`);
      writeExtracts(extractDir, await registerFromStore(new RegistryRepository(store.db)), { seed: 1 });
    }
    const extractFiles = AGENCIES.map((a) => join(extractDir, `${a.key}.csv`));
    const extracts: DemoExtracts = {
      dir: extractDir,
      files: extractFiles,
      truth: join(extractDir, TRUTH_FILE),
      command: `npx onceonly audit ${extractFiles.join(' ')} --data ${dir} --out-html ${join(dir, 'audit-report.html')} --out-json ${join(dir, 'audit-report.json')}`,
    };

    central = await Central.open({ dir: join(dir, 'central') });
    const centralApp = await createCentralServer(central);
    apps.push(centralApp);
    await centralApp.listen({ host: '127.0.0.1', port: layout.ports.central });
    const catalogueApp = await createCatalogueServer({ catalogue, agreements });
    apps.push(catalogueApp);
    const catalogueUrl = await catalogueApp.listen({ host: '127.0.0.1', port: layout.ports.catalogue });

    const regs = createRegistries(store.db, catalogue);
    const endpoints: Endpoint[] = [
      { name: 'central', role: 'central authority: signed global configuration, management API', url: `http://127.0.0.1:${layout.ports.central}`, openapi: `http://127.0.0.1:${layout.ports.central}/openapi.json` },
      { name: 'catalogue', role: 'catalogue of data items and the public register of agreements', url: catalogueUrl, openapi: `${catalogueUrl}/openapi.json` },
    ];
    for (const o of ORGS) {
      if ('registry' in o) {
        const token = readFileSync(join(dir, `registry-${o.registry}.token`), 'utf8');
        const app = await createRegistryServer(regs[o.registry], { token });
        // The population register also matches signed-in identities (src/identity), behind the same credential.
        if (o.registry === 'population') identityRoutes(app, new IdentityMatcher(new RegistryRepository(store.db)));
        // The address register also finds the addresses at a postcode (reporting a move starts there).
        if (o.registry === 'addresses') addressSearchRoutes(app, regs.addresses, new RegistryRepository(store.db));
        // The business register answers which companies a person is an officer of (their own data, for the portal).
        if (o.registry === 'companies') officerSearchRoutes(app, regs.companies, new RegistryRepository(store.db));
        apps.push(app);
        await app.listen({ host: '127.0.0.1', port: layout.ports.registries[o.registry] ?? 0 });
      }
    }
    const registers = new RegistryRepository(store.db);
    const person = await livingPerson(registers);
    // Where the example move goes: any address other than the person's own (the register's own read, not a release).
    const home = ((await regs.population.read(person, 'person.address')).items['person.address']?.value as { addressId?: string } | undefined)?.addressId ?? '';
    const ids = { person, address: await firstId(registers, REGISTRY_IDS.addresses), company: await firstId(registers, REGISTRY_IDS.companies), newAddress: (await registers.subjectOtherThan(REGISTRY_IDS.addresses, home)) ?? '' };
    // The example person's credential at the population register's gateway, for their consents and
    // previews (a stand-in for citizen sign-in): made once, kept for whoever plays the person.
    const credentialFile = join(dir, 'person-credential.json');
    if (!existsSync(credentialFile)) {
      const token = issuePersonCredential(join(dir, 'gateways', 'gro'), ids.person);
      writeFileSync(credentialFile, `${JSON.stringify({ person: ids.person, credential: token, gateway: 'UK/GOV/GRO/gw1' }, null, 2)}\n`, { mode: 0o600 });
    }
    const gwUrls = {} as Record<OrgKey, string>;
    const warnings: string[] = [];
    // Every gateway's log is witnessed by all the others (set on each start, so that a demo made
    // before witnessing existed gets it too).
    for (const o of ORGS) setWitnesses(join(dir, 'gateways', o.key), ORGS.filter((x) => x !== o).map((x) => `${x.member}/gw1`));
    // Tell Us Once, set on each start too: the population register announces its changes, the
    // portal may pass a person's reported change to it, and the council's and the benefits
    // agency's systems (small receivers here) take pushed events at their gateways' webhooks.
    const groDir = join(dir, 'gateways', 'gro');
    const people = readSettings(groDir).services['UK/GOV/GRO/population']!['people']!;
    const registryBase = `http://127.0.0.1:${layout.ports.registries['population']}`;
    addService(groDir, 'UK/GOV/GRO/population', 'people', { ...people, events: `${registryBase}/events` });
    const geoDir = join(dir, 'gateways', 'geoplace');
    const addressesService = readSettings(geoDir).services['UK/GOV/GEOPLACE/addresses']!['addresses']!;
    addService(geoDir, 'UK/GOV/GEOPLACE/addresses', 'address-search', { url: `http://127.0.0.1:${layout.ports.registries['addresses']}/address-search`, timeoutMs: 10_000, headers: addressesService.headers ?? {}, kind: 'rest', description: 'The addresses at a postcode (public data)', endpoints: [{ method: 'GET', path: '/' }] });
    const chDir = join(dir, 'gateways', 'ch');
    const companiesService = readSettings(chDir).services['UK/GOV/CH/companies']!['companies']!;
    addService(chDir, 'UK/GOV/CH/companies', 'officer-search', { url: `http://127.0.0.1:${layout.ports.registries['companies']}/officer-appointments`, timeoutMs: 10_000, headers: companiesService.headers ?? {}, kind: 'rest', description: 'The companies a person is a current officer of', endpoints: [{ method: 'GET', path: '/' }] });
    addService(groDir, 'UK/GOV/GRO/population', 'identity-match', { url: `${registryBase}/identity`, timeoutMs: 20_000, headers: people.headers ?? {}, kind: 'rest', description: 'Match a verified identity to one person of the register (citizen portal sign-in)', endpoints: [{ method: 'POST', path: '/match' }] });
    addService(groDir, 'UK/GOV/GRO/population', 'changes', { url: `${registryBase}/people`, timeoutMs: 10_000, headers: people.headers ?? {}, kind: 'rest', description: 'Report a change to the population register', endpoints: [{ method: 'POST', path: '/*/changes' }] });
    const receivers: { name: string; org: 'leeds' | 'dwp'; subsystem: string; events: string[]; rx: Receiver }[] = [];
    for (const r of [{ name: 'Leeds City Council parking system', org: 'leeds' as const, subsystem: 'UK/MUN/LEEDS/parking', events: ['move', 'name'] }, { name: 'benefits agency system', org: 'dwp' as const, subsystem: 'UK/GOV/DWP/benefits', events: ['move', 'name', 'death'] }]) {
      const secret = newWebhookSecret();
      // What a system was told, without the person or the values (personal data stays out of logs).
      const rx = await startReceiver({ secret, onEvent: (e) => say(`Tell Us Once: the ${r.name} was told of a ${e.type} change (event ${e.id}; ${Object.keys(e.data.items).join(', ')})`) });
      closers.push(() => rx.close());
      setWebhook(join(dir, 'gateways', r.org), r.subsystem, rx.url, { secret });
      receivers.push({ ...r, rx });
    }
    for (const o of ORGS) {
      const g = await startGateway(join(dir, 'gateways', o.key));
      warnings.push(...g.warnings);
      gateways.push(g);
      gwUrls[o.key] = g.clientUrl;
      endpoints.push({ name: `gateway-${o.key}`, role: `${o.name}: gateway client side (X-Road REST r1); provider side ${g.providerUrl} (mutual TLS)`, id: g.gateway.id, url: g.clientUrl });
    }
    // The demo runs on loopback with no information-system authentication (gateway/isauth): say so once.
    if (warnings.length) say(`every gateway's client side is on loopback and does not authenticate information systems: any local process may call it (set clients in gateway.json, docs/exchange.md)`);
    // One push subscription per receiving system, made once (subscribing releases nothing about anyone).
    const subs = {} as Record<'leeds' | 'dwp', string>;
    for (const r of receivers) subs[r.org] = await ensureSubscription(gwUrls[r.org], r.subsystem, r.events);
    const examples = examplesFor(gwUrls, catalogueUrl, ids, catalogue, subs);
    // "Ready" means every example's path answers, through the gateways, not merely that sockets are
    // open; but the demo itself reads nobody's data: for a read about a person it asks the same
    // provider, from the same client, through the same two gateways, which services the client may
    // use (allowedMethods), which releases nothing and leaves no access record.
    for (const ex of examples) {
      const c = ex.check;
      const res = await fetch(c?.url ?? ex.url, { method: c ? 'GET' : ex.method, headers: c?.headers ?? ex.headers });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`demo self-check failed: ${ex.description} answered ${res.status}: ${text.slice(0, 300)}`);
      if (c?.service !== undefined && !(JSON.parse(text) as { service: { service_code: string }[] }).service.some((x) => x.service_code === c.service)) {
        throw new Error(`demo self-check failed: ${ex.description}: the agreements do not let the client use ${c.service}`);
      }
    }
    // The citizen portal and its demo identity provider, whose accounts are people of the register.
    const portal = await startPortal({ dir, gatewayUrl: gwUrls.gds, registers, say });
    closers.push(() => portal.close());
    endpoints.push({ name: 'portal', role: 'the citizen portal: sign in, see what the registers hold about you (GOV.UK Design System)', id: 'UK/GOV/GDS/citizen-portal', url: portal.info.url });
    endpoints.push({ name: 'identity-provider', role: 'the demo OpenID provider (stands in for GOV.UK One Login)', url: portal.info.issuer });
    for (const r of receivers) endpoints.push({ name: `receiver-${r.org}`, role: `the ${r.name}: takes Tell Us Once events pushed by its gateway (Standard Webhooks signatures checked)`, id: r.subsystem, url: r.rx.url });
    return { endpoints, examples, extracts, portal: portal.info, tellUsOnce: { receivers: receivers.map((r) => ({ name: r.name, subsystem: r.subsystem, url: r.rx.url, subscription: subs[r.org] })) }, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
