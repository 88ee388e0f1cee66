/**
 * @module cli/main
 * The `onceonly` command. Each capability registers its own subcommands; this file only
 * assembles them, so the arrows point from the CLI to the capabilities and never back.
 */
import { registerPortalCommands } from './portal.ts';
import { Command } from 'commander';
import { registerDemoCommand } from './demo.ts';
import { registerRegistryCommands } from './registry.ts';
import { registerCatalogueCommands } from './catalogue.ts';
import { registerCentralCommands } from './central.ts';
import { registerGatewayCommands } from './gateway.ts';
import { registerAuditCommand } from './audit.ts';
import { registerLinkCommand } from './link.ts';
import { registerTransparencyCommands } from './transparency.ts';
import { registerConsentCommands } from './consent.ts';
import { registerTrackerCommand } from './tracker.ts';
import { registerEventCommands } from './events.ts';
import { action, openCliStore } from './common.ts';
import { migrate } from '../store/db.ts';

const program = new Command();
// Bad options and arguments are bad input: exit 2, as every command's own typed errors do.
program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
program.name('onceonly').description('acquire each fact once, in the register that masters it, and re-use it everywhere').version('0.1.0');

program
  .command('migrate')
  .description('apply pending database migrations (PostgreSQL when DATABASE_URL is set, else SQLite under --data)')
  .option('--data <dir>', 'data directory for the embedded store', 'data')
  .action(action(async (opts: { data: string }) => {
    const store = await openCliStore({ ...opts });
    try {
      // openStore already migrates; run again to report and to prove the set is idempotent.
      const applied = await migrate(store);
      process.stdout.write(`${store.location}: migrations up to date${applied.length ? ` (applied ${applied.join(', ')})` : ''}\n`);
    } finally {
      await store.close();
    }
  }));

registerDemoCommand(program);
registerRegistryCommands(program);
registerCatalogueCommands(program);
registerCentralCommands(program);
registerGatewayCommands(program);
registerAuditCommand(program);
registerLinkCommand(program);
registerTransparencyCommands(program);
registerConsentCommands(program);
registerTrackerCommand(program);
registerEventCommands(program);
registerPortalCommands(program);

await program.parseAsync(process.argv);
