/**
 * @module cli/central
 * `onceonly central …`: create and run the central authority, and manage it as its local
 * operator. Management commands act on the central's store directly (whoever can read the key
 * directory is the operator) and are audited with actor `cli`; remote operators use the
 * management API with a token (actor `api:<token-id>`).
 */
import type { Command } from 'commander';
import { Central, initCentral } from '../central/central.ts';
import { createCentralServer } from '../central/server.ts';
import { action, intOption } from './common.ts';

const DEFAULT_DIR = 'data/central';

interface DirOption {
  dir: string;
}

/** Runs `fn` with the central in `dir` open, closing it after; errors become an exit code. */
function withCentral(opts: DirOption, fn: (c: Central) => Promise<void>): Promise<void> {
  return action(async () => {
    const central = await Central.open({ dir: opts.dir, databaseUrl: process.env['DATABASE_URL'] });
    try {
      await fn(central);
    } finally {
      await central.close();
    }
  })();
}

const dirOption = ['--dir <dir>', 'the central\'s directory (keys, anchor, central.sqlite unless DATABASE_URL is set)', DEFAULT_DIR] as const;

/** Registers the `central` commands on `program`. */
export function registerCentralCommands(program: Command): void {
  const central = program.command('central').description('the central authority: member registry, CA, agreements, signed global configuration');

  central
    .command('init')
    .description('create a central authority: CA, signing key, anchor and a management token (printed once)')
    .option(...dirOption)
    .requiredOption('--instance <id>', 'X-Road instance identifier, e.g. UK')
    .requiredOption('--url <url>', 'URL gateways fetch the global configuration from, e.g. http://127.0.0.1:8500')
    .option('--agreements <file>', 'agreements to publish first (default config/agreements.yaml)')
    .option('--catalogue <file>', 'catalogue the agreements are checked against (default config/catalogue.yaml)')
    .action(action(async (opts: DirOption & { instance: string; url: string; agreements?: string; catalogue?: string }) => {
      const r = await initCentral({
        dir: opts.dir,
        instance: opts.instance,
        url: opts.url,
        databaseUrl: process.env['DATABASE_URL'],
        agreementsFile: opts.agreements,
        catalogueFile: opts.catalogue,
      });
      process.stdout.write(
        `central authority for instance ${r.anchor.instance} created in ${opts.dir}\n` +
          `  anchor (hand it to each gateway out of band): ${r.anchorFile}\n` +
          `  state: ${r.storeLocation}\n` +
          `  agreements published: ${r.agreements}\n` +
          `management token (shown only now; store it safely):\n${r.token}\n`,
      );
    }));

  central
    .command('serve')
    .description('serve the global configuration and the management API')
    .option(...dirOption)
    .option('--port <n>', 'port', intOption('port', 0, 65535), 8500)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--validity <seconds>', 'validity of each signed configuration', intOption('validity', 2, 7 * 86400), 600)
    .action(action(async (opts: DirOption & { port: number; host: string; validity: number }) => {
      const c = await Central.open({ dir: opts.dir, databaseUrl: process.env['DATABASE_URL'], validitySeconds: opts.validity });
      const app = await createCentralServer(c);
      const url = await app.listen({ port: opts.port, host: opts.host });
      process.stdout.write(`central authority ${c.instance} listening on ${url}\n`);
      const stop = (): void => {
        void app.close().then(() => c.close());
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }));

  const member = central.command('member').description('members (organisations)');
  member
    .command('add')
    .argument('<id>', 'INSTANCE/CLASS/MEMBER, e.g. UK/GOV/GRO')
    .requiredOption('--name <name>', 'organisation name')
    .option(...dirOption)
    .action((id: string, opts: DirOption & { name: string }) =>
      withCentral(opts, async (c) => {
        await c.addMember({ id, name: opts.name });
        process.stdout.write(`member ${id} added\n`);
      }));

  const subsystem = central.command('subsystem').description('subsystems of members');
  subsystem
    .command('add')
    .argument('<id>', 'INSTANCE/CLASS/MEMBER/SUBSYSTEM')
    .option(...dirOption)
    .action((id: string, opts: DirOption) =>
      withCentral(opts, async (c) => {
        await c.addSubsystem({ id });
        process.stdout.write(`subsystem ${id} added\n`);
      }));

  const gateway = central.command('gateway').description('gateways (registered by `onceonly gateway init` through the management API)');

  gateway
    .command('list')
    .description('every registered gateway, pending ones included, with the subsystems it serves')
    .option(...dirOption)
    .option('--json', 'print JSON')
    .action((opts: DirOption & { json?: boolean }) =>
      withCentral(opts, async (c) => {
        const list = await c.listGateways();
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
          return;
        }
        for (const g of list) {
          const subs = g.subsystems.map((x) => (x.status === 'pending' ? `${x.id} (pending)` : x.id)).join(', ') || 'none';
          process.stdout.write(`${g.id}  ${g.status}  ${g.address}  serves: ${subs}\n`);
        }
      }));
  gateway
    .command('approve')
    .description('approve a gateway registered with a registration token: it enters the next configuration with the subsystems it asked for')
    .argument('<id>', 'INSTANCE/CLASS/MEMBER/GATEWAYCODE')
    .option(...dirOption)
    .action((id: string, opts: DirOption) =>
      withCentral(opts, async (c) => {
        await c.approveGateway(id);
        process.stdout.write(`gateway ${id} approved\n`);
      }));
  for (const [verb, what] of [['assign', 'serve'], ['unassign', 'no longer serve']] as const) {
    gateway
      .command(verb)
      .description(`let a gateway ${what} a subsystem of its member (from the gateways' next configuration)`)
      .argument('<gateway>', 'INSTANCE/CLASS/MEMBER/GATEWAYCODE')
      .argument('<subsystem>', 'INSTANCE/CLASS/MEMBER/SUBSYSTEM')
      .option(...dirOption)
      .action((gw: string, sub: string, opts: DirOption) =>
        withCentral(opts, async (c) => {
          await (verb === 'assign' ? c.assignSubsystem(gw, sub) : c.unassignSubsystem(gw, sub));
          process.stdout.write(`${sub} ${verb === 'assign' ? 'assigned to' : 'taken from'} ${gw}\n`);
        }));
  }

  // suspend/activate for the three kinds of entry.
  const toggles = [
    [member, 'member', 'INSTANCE/CLASS/MEMBER', (c: Central, id: string) => c.suspendMember(id), (c: Central, id: string) => c.activateMember(id)],
    [subsystem, 'subsystem', 'INSTANCE/CLASS/MEMBER/SUBSYSTEM', (c: Central, id: string) => c.suspendSubsystem(id), (c: Central, id: string) => c.activateSubsystem(id)],
    [gateway, 'gateway', 'INSTANCE/CLASS/MEMBER/GATEWAYCODE', (c: Central, id: string) => c.suspendGateway(id), (c: Central, id: string) => c.activateGateway(id)],
  ] as const;
  for (const [cmd, kind, shape, suspend, activate] of toggles) {
    for (const [verb, fn, past] of [['suspend', suspend, 'suspended'], ['activate', activate, 'activated']] as const) {
      cmd
        .command(verb)
        .description(`${verb} a ${kind} (takes effect at the gateways' next configuration)`)
        .argument('<id>', shape)
        .option(...dirOption)
        .action((id: string, opts: DirOption) =>
          withCentral(opts, async (c) => {
            await fn(c, id);
            process.stdout.write(`${kind} ${id} ${past}\n`);
          }));
    }
  }

  central
    .command('agreements')
    .description('the register of data-sharing agreements')
    .command('publish')
    .description('check an agreements file against the catalogue and publish it as the new set')
    .argument('<file>', 'agreements YAML or JSON (format: docs/catalogue.md)')
    .option(...dirOption)
    .action((file: string, opts: DirOption) =>
      withCentral(opts, async (c) => {
        const r = await c.publishAgreementsFile(file);
        process.stdout.write(`agreements version ${r.version} published (${r.agreements} agreements)\n`);
      }));

  central
    .command('token')
    .description('management API tokens')
    .command('create')
    .description('create another management API token (printed once); with --register-gateway-for, a single-use token that can only register one gateway of that member')
    .requiredOption('--label <text>', 'what the token is for, e.g. "gateway onboarding"')
    .option('--register-gateway-for <member>', 'limit the token to registering one gateway of this member (INSTANCE/CLASS/MEMBER)')
    .option(...dirOption)
    .action((opts: DirOption & { label: string; registerGatewayFor?: string }) =>
      withCentral(opts, async (c) => {
        const t = opts.registerGatewayFor ? await c.createRegistrationToken(opts.registerGatewayFor, opts.label) : await c.createToken(opts.label);
        process.stdout.write(`token ${t.id}${opts.registerGatewayFor ? ` (registers one gateway of ${opts.registerGatewayFor})` : ''} (shown only now):\n${t.token}\n`);
      }));

  central
    .command('audit')
    .description('print the admin audit log (JSON lines); --verify checks its hash chain')
    .option('--verify', 'verify the hash chain; exit 1 and name the entry if it is broken')
    .option(...dirOption)
    .action((opts: DirOption & { verify?: boolean }) =>
      withCentral(opts, async (c) => {
        if (opts.verify) {
          const v = await c.verifyAdminLog();
          if (v.ok) process.stdout.write(`admin audit log verified: ${v.entries} entries, head ${v.head}\n`);
          else {
            process.stderr.write(`admin audit log BROKEN at entry ${v.seq}: ${v.problem}\n`);
            process.exitCode = 1;
          }
          return;
        }
        let after = 0;
        for (;;) {
          const page = await c.auditLog({ after, limit: 1000 });
          for (const e of page) process.stdout.write(`${JSON.stringify(e)}\n`);
          if (page.length < 1000) break;
          after = page.at(-1)!.seq;
        }
      }));
}
