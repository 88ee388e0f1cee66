/**
 * @module demo/demo
 * `onceonly demo`: the catalogue, the register of agreements and three registries with a
 * generated population, all on loopback, from one command. The population is generated on the
 * first start and reused after; an interrupted first load is detected and redone.
 */
import { loadCatalogue, type Catalogue } from '../catalogue/catalogue.ts';
import { loadAgreements } from '../catalogue/agreements.ts';
import { createCatalogueServer } from '../catalogue/routes.ts';
import { createRegistries, REGISTRY_IDS } from '../registry/registries.ts';
import { createRegistryServer } from '../registry/routes.ts';
import { clearRegistries, populationStatus } from '../registry/populate.ts';
import { openStore, type Store } from '../store/db.ts';
import type { App } from '../core/http.ts';
import type { LoadResult } from '../registry/load.ts';
import { packagePath } from '../cli/common.ts';

export interface DemoOptions {
  dataDir: string;
  /** First port; the services take consecutive ports from it. 0 = any free ports. */
  basePort: number;
  /** People to generate on first start. */
  people: number;
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
  subsystem?: string;
  url: string;
  openapi: string;
}

export interface RunningDemo {
  endpoints: Endpoint[];
  examples: ExampleRequest[];
  store: Store;
  stop(): Promise<void>;
}

async function firstId(store: Store, registry: string): Promise<string> {
  const row = await store.db.selectFrom('subject').select('id').where('registry', '=', registry).orderBy('id').limit(1).executeTakeFirst();
  if (!row) throw new Error(`the ${registry} register is empty`);
  return row.id;
}

function examplesFor(endpoints: Record<string, string>, ids: { person: string; address: string; company: string }, catalogue: Catalogue): ExampleRequest[] {
  const headers = { accept: 'application/json' };
  const owned = (s: string): number => catalogue.ownedBy(s).length;
  return [
    { description: `Five items of one person from the population register (${owned(REGISTRY_IDS.population)} items mastered there)`, method: 'GET', headers, url: `${endpoints['population']}/people/${ids.person}?items=person.givenName,person.familyName,person.birthDate,person.address,person.status` },
    { description: 'Where the same person lived on 1 January 2015', method: 'GET', headers, url: `${endpoints['population']}/people/${ids.person}?items=person.address&asAt=2015-01-01` },
    { description: 'An address from the address register', method: 'GET', headers, url: `${endpoints['addresses']}/addresses/${ids.address}?items=address.lines,address.town,address.postcode` },
    { description: 'A company from the business register', method: 'GET', headers, url: `${endpoints['companies']}/companies/${ids.company}?items=business.name,business.status,business.registeredAddress,business.incorporationDate` },
    { description: 'Does this person exist? (releases nothing else)', method: 'GET', headers, url: `${endpoints['population']}/people/${ids.person}/exists` },
    { description: 'The public register of data-sharing agreements', method: 'GET', headers, url: `${endpoints['catalogue']}/agreements` },
  ];
}

/** Starts the demo and returns once every service answers. */
export async function startDemo(opts: DemoOptions): Promise<RunningDemo> {
  const say = opts.say ?? (() => undefined);
  const catalogue = loadCatalogue(packagePath('config/catalogue.yaml'));
  const agreements = loadAgreements(packagePath('config/agreements.yaml'), catalogue);
  const store = await openStore({ databaseUrl: opts.databaseUrl, dataDir: opts.dataDir });
  const apps: App[] = [];
  const stop = async (): Promise<void> => {
    await Promise.allSettled(apps.map((a) => a.close()));
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
    const regs = createRegistries(store.db, catalogue);
    const services: [string, App, string | undefined][] = [
      ['catalogue', await createCatalogueServer({ catalogue, agreements }), undefined],
      ['population', await createRegistryServer(regs.population), REGISTRY_IDS.population],
      ['addresses', await createRegistryServer(regs.addresses), REGISTRY_IDS.addresses],
      ['companies', await createRegistryServer(regs.companies), REGISTRY_IDS.companies],
    ];
    const endpoints: Endpoint[] = [];
    const byName: Record<string, string> = {};
    for (const [i, [name, app, subsystem]] of services.entries()) {
      apps.push(app);
      const url = await app.listen({ host: '127.0.0.1', port: opts.basePort === 0 ? 0 : opts.basePort + i });
      byName[name] = url;
      endpoints.push({ name, ...(subsystem ? { subsystem } : {}), url, openapi: `${url}/openapi.json` });
    }
    const ids = {
      person: await firstId(store, REGISTRY_IDS.population),
      address: await firstId(store, REGISTRY_IDS.addresses),
      company: await firstId(store, REGISTRY_IDS.companies),
    };
    const examples = examplesFor(byName, ids, catalogue);
    // "Ready" means the examples really answer, not merely that the sockets are open.
    for (const ex of examples) {
      const res = await fetch(ex.url, { method: ex.method, headers: ex.headers });
      if (res.status !== 200) throw new Error(`demo self-check failed: ${ex.description} answered ${res.status}`);
      await res.arrayBuffer();
    }
    return { endpoints, examples, store, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
