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
import { addService, initGateway, startGateway, type RunningGateway } from '../gateway/node.ts';
import { issuePersonCredential } from '../consent/credentials.ts';
import type { App } from '../core/http.ts';
import type { LoadResult } from '../registry/load.ts';
import { packagePath } from '../cli/common.ts';
import { freePort } from './ports.ts';
import { registerFromStore } from '../audit/register.ts';
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
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: unknown;
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
  examples: ExampleRequest[];
  extracts: DemoExtracts;
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

async function firstId(store: Store, registry: string): Promise<string> {
  const row = await store.db.selectFrom('subject').select('id').where('registry', '=', registry).orderBy('id').limit(1).executeTakeFirst();
  if (!row) throw new Error(`the ${registry} register is empty`);
  return row.id;
}

/** A person the examples can read: alive, so every item asked for has a value. */
async function livingPerson(store: Store): Promise<string> {
  const row = await store.db
    .selectFrom('fact')
    .select('subject')
    .where('registry', '=', REGISTRY_IDS.population)
    .where('item', '=', 'person.status')
    .where('superseded_at', 'is', null)
    .where('valid_to', 'is', null)
    .where('value', '=', '"alive"')
    .orderBy('subject')
    .limit(1)
    .executeTakeFirst();
  return row?.subject ?? firstId(store, REGISTRY_IDS.population);
}

function examplesFor(gw: Record<OrgKey, string>, catalogueUrl: string, ids: { person: string; address: string; company: string }, catalogue: Catalogue): ExampleRequest[] {
  const leeds = { accept: 'application/json', 'x-road-client': 'UK/MUN/LEEDS/parking', 'x-onceonly-purpose': 'resident-parking-permit' };
  const dwp = { accept: 'application/json', 'x-road-client': 'UK/GOV/DWP/benefits', 'x-onceonly-purpose': 'benefit-entitlement' };
  const n = catalogue.ownedBy(REGISTRY_IDS.population).length;
  return [
    { description: `Leeds City Council reads an applicant's name and address from the population register (which masters ${n} items), through its own gateway`, method: 'GET', headers: leeds, url: `${gw.leeds}/r1/UK/GOV/GRO/population/people/${ids.person}?items=person.givenName,person.familyName,person.address` },
    { description: 'The benefits agency reads five items of the same person under its own agreement', method: 'GET', headers: dwp, url: `${gw.dwp}/r1/UK/GOV/GRO/population/people/${ids.person}?items=person.givenName,person.familyName,person.birthDate,person.address,person.status` },
    { description: 'Leeds City Council reads an address from the address register', method: 'GET', headers: leeds, url: `${gw.leeds}/r1/UK/GOV/GEOPLACE/addresses/addresses/${ids.address}?items=address.lines,address.postcode` },
    { description: 'The benefits agency checks an employer in the business register', method: 'GET', headers: { ...dwp, 'x-onceonly-purpose': 'employer-verification' }, url: `${gw.dwp}/r1/UK/GOV/CH/companies/companies/${ids.company}?items=business.name,business.status,business.registeredAddress` },
    { description: 'Who is on the exchange (X-Road metaservice listClients; XML without the Accept header)', method: 'GET', headers: { accept: 'application/json' }, url: `${gw.leeds}/listClients` },
    { description: 'Which services Leeds may use at the population register (allowedMethods)', method: 'GET', headers: { accept: 'application/json', 'x-road-client': 'UK/MUN/LEEDS/parking' }, url: `${gw.leeds}/r1/UK/GOV/GRO/population/allowedMethods` },
    { description: 'The public register of data-sharing agreements', method: 'GET', headers: { accept: 'application/json' }, url: `${catalogueUrl}/agreements` },
    {
      description: 'The citizen portal reads who used the same person\'s population-register data (the data-usage service; each record with a transparency-log inclusion proof). `onceonly tracker PERSON --dir DATA/gateways/gds` does the same for every register and verifies the proofs',
      method: 'GET',
      headers: { accept: 'application/json', 'x-road-client': 'UK/GOV/GDS/citizen-portal', 'x-onceonly-purpose': 'citizen-data-tracker' },
      url: `${gw.gds}/r1/UK/GOV/GRO/population/data-usage/${ids.person}?items=person.usageRecords`,
    },
  ];
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
  const stop = async (): Promise<void> => {
    await Promise.allSettled(gateways.map((g) => g.stop()));
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
      writeExtracts(extractDir, await registerFromStore(store.db), { seed: 1 });
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
        apps.push(app);
        await app.listen({ host: '127.0.0.1', port: layout.ports.registries[o.registry] ?? 0 });
      }
    }
    const ids = { person: await livingPerson(store), address: await firstId(store, REGISTRY_IDS.addresses), company: await firstId(store, REGISTRY_IDS.companies) };
    // The example person's credential at the population register's gateway, for their consents and
    // previews (a stand-in for citizen sign-in): made once, kept for whoever plays the person.
    const credentialFile = join(dir, 'person-credential.json');
    if (!existsSync(credentialFile)) {
      const token = issuePersonCredential(join(dir, 'gateways', 'gro'), ids.person);
      writeFileSync(credentialFile, `${JSON.stringify({ person: ids.person, credential: token, gateway: 'UK/GOV/GRO/gw1' }, null, 2)}\n`, { mode: 0o600 });
    }
    const gwUrls = {} as Record<OrgKey, string>;
    const warnings: string[] = [];
    for (const o of ORGS) {
      const g = await startGateway(join(dir, 'gateways', o.key));
      warnings.push(...g.warnings);
      gateways.push(g);
      gwUrls[o.key] = g.clientUrl;
      endpoints.push({ name: `gateway-${o.key}`, role: `${o.name}: gateway client side (X-Road REST r1); provider side ${g.providerUrl} (mutual TLS)`, id: g.gateway.id, url: g.clientUrl });
    }
    // The demo runs on loopback with no information-system authentication (gateway/isauth): say so once.
    if (warnings.length) say(`every gateway's client side is on loopback and does not authenticate information systems: any local process may call it (set clients in gateway.json, docs/exchange.md)`);
    const examples = examplesFor(gwUrls, catalogueUrl, ids, catalogue);
    // "Ready" means the examples really answer, through the gateways, not merely that sockets are open.
    for (const ex of examples) {
      const res = await fetch(ex.url, { method: ex.method, headers: ex.headers });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`demo self-check failed: ${ex.description} answered ${res.status}: ${text.slice(0, 300)}`);
    }
    return { endpoints, examples, extracts, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
