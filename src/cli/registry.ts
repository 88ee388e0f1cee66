/**
 * @module cli/registry
 * `onceonly registry generate` and `onceonly registry serve`.
 */
import { RegistryRepository } from '../registry/repository.ts';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { OnceOnlyError } from '../core/errors.ts';
import { loadCatalogue } from '../catalogue/catalogue.ts';
import { createRegistries, type Registries } from '../registry/registries.ts';
import { createRegistryServer } from '../registry/routes.ts';
import { clearRegistries, populate, populationStatus } from '../registry/populate.ts';
import type { Store } from '../store/db.ts';
import type { LoadResult } from '../registry/load.ts';
import { action, intOption, openCliStore } from './common.ts';
import { packagePath } from '../core/files.ts';
import { registerFromStore } from '../audit/register.ts';
import { writeExtracts } from '../audit/extracts.ts';
import { auditRoutes } from '../audit/routes.ts';
import { linkageRoutes } from '../linkage/routes.ts';

/** Generates into `store` with a progress bar on stderr (hidden when stderr is not a terminal). */
export async function generateWithProgress(store: Store, people: number, seed: number | undefined): Promise<LoadResult> {
  const bar = new cliProgress.SingleBar(
    { format: 'generating {bar} {percentage}% | {value}/{total} people | {eta_buffered}s left', etaBuffer: 50, stream: process.stderr, noTTYOutput: false, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(people, 0);
  try {
    return await populate(store, { people, ...(seed !== undefined ? { seed } : {}), onProgress: (p) => bar.update(p.people) });
  } finally {
    bar.stop();
  }
}

/** Registers the `registry` commands. */
export function registerRegistryCommands(program: Command): void {
  const registry = program.command('registry').description('the authoritative registries');

  registry
    .command('generate')
    .description('generate a deterministic synthetic population, with addresses and companies, into the store')
    .option('--data <dir>', 'data directory for the embedded store (ignored when DATABASE_URL is set)', 'data')
    .option('--people <n>', 'how many people', intOption('people', 1, 10_000_000), 10_000)
    .option('--seed <n>', 'random seed (same seed, same population)', intOption('seed', 0, 2 ** 31 - 1), 1)
    .option('--replace', 'delete the registries\' current records first')
    .option('--extracts <dir>', 'also write three agencies\' damaged extracts of the register (CSV) and their truth (JSON) into DIR, for `onceonly audit`')
    .action(action(async (opts: { data: string; people: number; seed: number; replace?: boolean; extracts?: string }) => {
      const store = await openCliStore(opts);
      try {
        const status = await populationStatus(store);
        if ((status.loaded || status.partial) && !opts.replace) {
          throw new OnceOnlyError('conflict', `the store at ${store.location} already holds registry records`, { field: '--replace', expected: 'an empty store, or --replace to delete its records first' });
        }
        if (opts.replace) await clearRegistries(store);
        const t0 = performance.now();
        const r = await generateWithProgress(store, opts.people, opts.seed);
        const s = (performance.now() - t0) / 1000;
        process.stdout.write(`loaded ${r.people} people, ${r.addresses} addresses, ${r.companies} companies (${r.facts} facts) into ${store.location} in ${s.toFixed(1)} s\n`);
        if (opts.extracts) {
          const w = writeExtracts(opts.extracts, await registerFromStore(new RegistryRepository(store.db)), { seed: opts.seed });
          for (const f of w.files) process.stdout.write(`wrote ${f.path} (${f.rows} rows, ${f.name})\n`);
          process.stdout.write(`wrote ${w.truthFile} (what was done to each row; not for the audit)\n`);
        }
      } finally {
        await store.close();
      }
    }));

  registry
    .command('serve')
    .description('serve one registry over HTTP on loopback')
    .argument('<name>', 'population, addresses or companies')
    .option('--data <dir>', 'data directory', 'data')
    .option('--port <n>', 'port', intOption('port', 0, 65535), 0)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--token <secret>', 'answer only requests with "Authorization: Bearer SECRET" (the gateway\'s credential)')
    .action(action(async (name: string, opts: { data: string; port: number; host: string; token?: string }) => {
      if (!['population', 'addresses', 'companies'].includes(name)) {
        throw new OnceOnlyError('invalid_request', `unknown registry ${JSON.stringify(name)}`, { field: 'name', expected: 'population, addresses or companies' });
      }
      const store = await openCliStore(opts);
      const regs = createRegistries(store.db, loadCatalogue(packagePath('config/catalogue.yaml')));
      const app = await createRegistryServer(regs[name as keyof Registries], opts.token ? { token: opts.token } : {});
      // The duplication audit needs the whole population register, so it is served beside it.
      if (name === 'population') {
        auditRoutes(app, { db: store.db, source: `population register at ${store.location}` });
        linkageRoutes(app);
      }
      const url = await app.listen({ port: opts.port, host: opts.host });
      process.stdout.write(`${name} register listening on ${url}\n`);
      const stop = (): void => {
        void app.close().then(() => store.close());
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }));
}
