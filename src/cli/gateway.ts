/**
 * @module cli/gateway
 * `onceonly gateway init|serve|service add` and `onceonly log verify`.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { OnceOnlyError } from '../core/errors.ts';
import { storedSigningKeys } from '../gateway/confclient.ts';
import { addService, initGateway, openGatewayStore, readAnchor, readSettings, setClientAuth, setWebhook, setWitnesses, startGateway } from '../gateway/node.ts';
import { issuePersonCredential } from '../consent/credentials.ts';
import { formatReport, verifyMessageLog } from '../gateway/messagelog-verify.ts';
import { verifyGlobalConfiguration } from '../central/conf.ts';
import type { KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { Anchor } from '../central/types.ts';
import { action, intOption } from './common.ts';

/** Registers the gateway commands and `log verify`. */
export function registerGatewayCommands(program: Command): void {
  const gateway = program.command('gateway').description('an organisation\'s gateway to the exchange');

  gateway
    .command('init')
    .description('make a gateway\'s keys and have the central issue its certificate')
    .requiredOption('--dir <dir>', 'directory for the gateway\'s settings and keys')
    .requiredOption('--anchor <file>', 'the anchor file from the central operator')
    .requiredOption('--id <id>', 'gateway id INSTANCE/CLASS/MEMBER/CODE')
    .requiredOption('--token <token>', 'the central\'s management token (from the central operator)')
    .option('--client-port <n>', 'client-side port (loopback)', intOption('client-port', 1, 65535), 8600)
    .option('--provider-port <n>', 'provider-side port', intOption('provider-port', 1, 65535), 8610)
    .option('--host <host>', 'host other gateways reach this one at', '127.0.0.1')
    .option('--subsystem <id...>', 'a subsystem of the member this gateway is to serve (repeatable)')
    .action(action(async (o: { dir: string; anchor: string; id: string; token: string; clientPort: number; providerPort: number; host: string; subsystem?: string[] }) => {
      const s = await initGateway({ dir: o.dir, anchorFile: o.anchor, id: o.id, token: o.token, clientPort: o.clientPort, providerPort: o.providerPort, address: `https://${o.host}:${o.providerPort}`, ...(o.subsystem ? { subsystems: o.subsystem } : {}) });
      process.stdout.write(`gateway ${s.id} initialised in ${o.dir}; provider side ${s.address}, client side http://127.0.0.1:${s.client.port}\n`);
      if (s.status === 'pending') process.stdout.write(`registration pending: it receives no traffic until the central operator runs \`onceonly central gateway approve ${s.id}\`\n`);
    }));

  gateway
    .command('service')
    .description('register a service of one of this gateway\'s subsystems')
    .argument('<action>', 'add')
    .argument('<subsystem>', 'INSTANCE/CLASS/MEMBER/SUBSYSTEM')
    .argument('<service>', 'service code, e.g. people')
    .argument('<url>', 'base URL of the service')
    .requiredOption('--dir <dir>', 'gateway directory')
    .option('--timeout <ms>', 'timeout in milliseconds', intOption('timeout', 1, 600_000), 10_000)
    .option('--header <name:value...>', 'header the gateway adds when calling the service (e.g. authorization: Bearer …)')
    .option('--kind <kind>', 'registry (an onceonly register, read under the registry contract) or rest (any REST service, passed through as X-Road does)', 'registry')
    .option('--openapi <url>', 'rest: where the service\'s OpenAPI description is, for getOpenAPI')
    .action(action((action: string, subsystem: string, service: string, url: string, o: { dir: string; timeout: number; header?: string[]; kind: string; openapi?: string }) => {
      if (action !== 'add') throw new OnceOnlyError('invalid_request', `unknown action ${JSON.stringify(action)}`, { field: 'action', expected: 'add' });
      const headers: Record<string, string> = {};
      for (const h of o.header ?? []) {
        const i = h.indexOf(':');
        if (i <= 0) throw new OnceOnlyError('invalid_request', 'a header is NAME:VALUE', { field: '--header' });
        headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
      }
      if (o.kind !== 'registry' && o.kind !== 'rest') throw new OnceOnlyError('invalid_request', `unknown kind ${JSON.stringify(o.kind)}`, { field: '--kind', expected: 'registry or rest' });
      addService(o.dir, subsystem, service, { url, timeoutMs: o.timeout, kind: o.kind, ...(Object.keys(headers).length ? { headers } : {}), ...(o.openapi ? { openapi: o.openapi } : {}) });
      process.stdout.write(`service ${subsystem}/${service} -> ${url}\n`);
    }));

  gateway
    .command('client-auth')
    .description('how an information system authenticates as one of this gateway\'s subsystems: none (loopback only), tls (a registered client certificate) or bearer (a credential, printed once)')
    .argument('<client>', 'INSTANCE/CLASS/MEMBER[/SUBSYSTEM]')
    .argument('<mode>', 'none, tls or bearer')
    .requiredOption('--dir <dir>', 'gateway directory')
    .option('--cert <file>', 'tls: the PEM certificate the system presents')
    .action(action((client: string, mode: string, o: { dir: string; cert?: string }) => {
      if (mode !== 'none' && mode !== 'tls' && mode !== 'bearer') throw new OnceOnlyError('invalid_request', `unknown mode ${JSON.stringify(mode)}`, { field: 'mode', expected: 'none, tls or bearer' });
      const r = setClientAuth(o.dir, client, mode, o.cert ? { certificatePem: readFileSync(o.cert, 'utf8') } : {});
      if (r.token) process.stdout.write(`${r.token}\n`);
      process.stderr.write(mode === 'bearer' ? `bearer credential for ${client} (shown once; send it as Authorization: Bearer …); restart the gateway to apply\n` : mode === 'tls' ? `certificate ${r.fingerprint} registered for ${client}; restart the gateway to apply\n` : `${client}: no authentication (allowed on a loopback listener only); restart the gateway to apply\n`);
    }));

  gateway
    .command('webhook')
    .description('Tell Us Once: where pushed change events for one of your subsystems go; prints the new Standard Webhooks secret once')
    .requiredOption('--dir <dir>', 'gateway directory')
    .requiredOption('--subsystem <id>', 'the subscribing subsystem, e.g. UK/MUN/LEEDS/parking')
    .requiredOption('--url <url>', 'your system\'s endpoint that takes the events')
    .option('--timeout <ms>', 'how long to wait for your system to answer', intOption('timeout', 1, 60_000), 10_000)
    .action(action((o: { dir: string; subsystem: string; url: string; timeout: number }) => {
      const { secret } = setWebhook(o.dir, o.subsystem, o.url, { timeoutMs: o.timeout });
      process.stdout.write(`${secret}\n`);
      process.stderr.write('the secret is shown once: give it to the system at that URL to check signatures with; restart the gateway to apply\n');
    }));

  gateway
    .command('witnesses')
    .description('set the gateways asked to cosign this gateway\'s transparency log checkpoints (C2SP tlog-witness); without ids, print them')
    .argument('[gateway...]', 'ids of other gateways, INSTANCE/CLASS/MEMBER/CODE')
    .requiredOption('--dir <dir>', 'gateway directory')
    .option('--none', 'ask no witness')
    .action(action((ids: string[], o: { dir: string; none?: boolean }) => {
      if (ids.length === 0 && !o.none) {
        for (const w of readSettings(o.dir).witnesses ?? []) process.stdout.write(`${w}\n`);
        return;
      }
      if (o.none && ids.length) throw new OnceOnlyError('invalid_request', 'give ids or --none, not both', { field: '--none' });
      const s = setWitnesses(o.dir, ids);
      process.stderr.write(`${s.witnesses?.length ?? 0} witness(es) set; restart the gateway to apply\n`);
    }));

  gateway
    .command('person-credential')
    .description('issue a person a credential for their consents and previews at this gateway (a stand-in for citizen sign-in); printed once')
    .argument('<person>', 'population-register id, P-#########-#')
    .requiredOption('--dir <dir>', 'gateway directory')
    .action(action((person: string, o: { dir: string }) => {
      process.stdout.write(`${issuePersonCredential(o.dir, person)}\n`);
      process.stderr.write(`credential for ${person} (shown once; only its SHA-256 is kept); restart the gateway to apply\n`);
    }));

  gateway
    .command('serve')
    .description('run the gateway (client side on loopback, provider side over mutual TLS)')
    .requiredOption('--dir <dir>', 'gateway directory')
    .action(action(async (o: { dir: string }) => {
      const g = await startGateway(o.dir, { databaseUrl: process.env['DATABASE_URL'], natsUrl: process.env['NATS_URL'] || undefined });
      for (const w of g.warnings) process.stderr.write(`warning: ${w}\n`);
      process.stdout.write(`gateway ${g.gateway.id}: client side ${g.clientUrl}, provider side ${g.providerUrl}\n`);
      const stop = (): void => {
        void g.stop().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }));

  program
    .command('log')
    .description('the message log')
    .command('verify')
    .description('check a gateway\'s whole message log offline, with only its anchor')
    .requiredOption('--dir <dir>', 'gateway directory (its store and anchor.json)')
    .option('--anchor <file>', 'anchor to trust (default: the gateway directory\'s anchor.json)')
    .action(action(async (o: { dir: string; anchor?: string }) => {
      const settings = readSettings(o.dir);
      const anchor = readAnchor(o.anchor ?? join(o.dir, 'anchor.json'));
      const store = await openGatewayStore(o.dir, process.env['DATABASE_URL']);
      try {
        const keys = await signingKeysFromStoredConfs(store.db, settings.id, anchor);
        const report = await verifyMessageLog(store.db, settings.id, (serial) => keys.get(serial));
        process.stdout.write(`${formatReport(report)}\n`);
        process.exitCode = report.ok ? 0 : 1;
      } finally {
        await store.close();
      }
    }));
}

/** The gateway's own signing key under each stored configuration serial (gateway/confclient). */
export function signingKeysFromStoredConfs(db: Kysely<Database>, gatewayId: string, anchor: Anchor): Promise<Map<number, KeyObject>> {
  return storedSigningKeys(db, gatewayId, anchor, verifyGlobalConfiguration);
}
