/**
 * @module cli/portal
 * `onceonly portal serve`: the citizen portal as its own process, the citizen-portal
 * organisation's system beside its gateway, signing people in at any OpenID provider that gives
 * One Login's identity claims (docs/portal.md). `onceonly portal code --data DIR --account USER`:
 * the one-time code the demo identity provider expects now for one of its synthetic test
 * accounts (what an authenticator app holding the account's secret would show).
 */
import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OnceOnlyError } from '../core/errors.ts';
import { totp } from '../portal/totp.ts';
import { action, intOption } from './common.ts';
import { writeTextFile } from '../core/files.ts';
import { parseSubsystemId } from '../core/ids.ts';

export function registerPortalCommands(program: Command): void {
  const portal = program.command('portal').description('the citizen portal and the demo identity provider');
  portal
    .command('serve')
    .description('serve the citizen portal (sign-in with OpenID Connect, the person\'s data read through the exchange)')
    .requiredOption('--gateway-dir <dir>', 'the portal organisation\'s gateway folder (its client side and held global configuration)')
    .requiredOption('--issuer <url>', 'the OpenID provider\'s issuer identifier (its discovery document is under it)')
    .requiredOption('--client-id <id>', 'this portal\'s client id at the provider')
    .requiredOption('--client-secret-file <file>', 'a file holding the client secret (client_secret_basic)')
    .requiredOption('--identity-issuer <url>', 'who signs the core identity JWT (One Login: its identity service)')
    .requiredOption('--identity-jwks <url>', 'where the identity service publishes its keys')
    .option('--client <subsystem>', 'the portal\'s subsystem', 'UK/GOV/GDS/citizen-portal')
    .option('--port <n>', 'port to listen on', intOption('port', 1, 65535), 8450)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--public-url <url>', 'where people reach the portal (default http://HOST:PORT); the redirect URI is PUBLIC-URL/auth/callback')
    .option('--data <dir>', 'the portal\'s own store (sessions, match decisions) and cookie key', 'data/portal')
    .option('--allow-http-issuer', 'allow an issuer over plain HTTP (a development provider on loopback only)')
    .action(action(async (o: { gatewayDir: string; issuer: string; clientId: string; clientSecretFile: string; identityIssuer: string; identityJwks: string; client: string; port: number; host: string; publicUrl?: string; data: string; allowHttpIssuer?: boolean }) => {
      parseSubsystemId(o.client, '--client');
      const url = (v: string, field: string): URL => {
        try {
          const u = new URL(v);
          if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
          return u;
        } catch {
          throw new OnceOnlyError('invalid_request', `${field} must be an http(s) URL`, { field, expected: 'https://…' });
        }
      };
      const issuer = url(o.issuer, '--issuer');
      url(o.identityJwks, '--identity-jwks');
      if (issuer.protocol === 'http:' && !o.allowHttpIssuer) throw new OnceOnlyError('invalid_request', 'the issuer is not on https: tokens would cross the network in the clear', { field: '--issuer', expected: 'an https issuer, or --allow-http-issuer for a development provider on loopback' });
      if (issuer.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname)) throw new OnceOnlyError('invalid_request', '--allow-http-issuer is for a provider on loopback only', { field: '--issuer', expected: 'an https issuer' });
      if (!existsSync(o.clientSecretFile)) throw new OnceOnlyError('invalid_request', `no client secret file ${o.clientSecretFile}`, { field: '--client-secret-file', expected: 'a file holding the client secret' });
      const clientSecret = readFileSync(o.clientSecretFile, 'utf8').trim();
      if (clientSecret.length < 16) throw new OnceOnlyError('invalid_request', 'the client secret is shorter than 16 characters', { field: '--client-secret-file', expected: 'the secret the provider issued' });
      const { readSettings } = await import('../gateway/node.ts');
      const settings = readSettings(o.gatewayDir);
      mkdirSync(o.data, { recursive: true });
      // The cookie key is made once and kept with the portal's store, so sessions survive a restart.
      const keyFile = join(o.data, 'cookie-secret');
      if (!existsSync(keyFile)) writeTextFile(keyFile, `${randomBytes(32).toString('base64url')}\n`);
      const { openStore } = await import('../store/db.ts');
      const { createPortalServer } = await import('../portal/server.ts');
      const { PortalSessions } = await import('../portal/sessions.ts');
      const { remoteIdentityKeys } = await import('../portal/onelogin.ts');
      const store = await openStore({ dataDir: o.data });
      const publicUrl = (o.publicUrl ?? `http://${o.host}:${o.port}`).replace(/\/$/, '');
      const token = process.env['ONCEONLY_CLIENT_TOKEN'];
      const app = await createPortalServer({
        publicUrl, gatewayUrl: `http://${settings.client.host}:${settings.client.port}`, gatewayDir: o.gatewayDir, client: o.client,
        ...(token ? { gatewayToken: token } : {}),
        issuer: o.issuer, clientId: o.clientId, clientSecret,
        identity: remoteIdentityKeys(o.identityIssuer, o.identityJwks),
        sessions: new PortalSessions(store.db), cookieSecret: readFileSync(keyFile, 'utf8').trim(),
        ...(o.allowHttpIssuer ? { allowHttpIssuer: true } : {}),
      });
      await app.listen({ host: o.host, port: o.port });
      process.stdout.write(`portal listening on ${publicUrl} (redirect URI ${publicUrl}/auth/callback)\n`);
      const stop = (): void => {
        void app.close().then(() => store.close()).then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    }));

  portal
    .command('code')
    .description('the current one-time code of a demo test account (as its authenticator app would show)')
    .requiredOption('--data <dir>', 'the demo\'s data directory')
    .requiredOption('--account <username>', 'a username from demo --json (portal.accounts)')
    .action(action((o: { data: string; account: string }) => {
      const file = join(o.data, 'issuer', 'test-accounts.json');
      if (!existsSync(file)) throw new OnceOnlyError('not_found', `no demo test accounts in ${o.data}: start the demo first`, { field: '--data', expected: 'the demo\'s data directory' });
      const accounts = (JSON.parse(readFileSync(file, 'utf8')) as { accounts: { username: string; totpSecret: string }[] }).accounts;
      const a = accounts.find((x) => x.username === o.account);
      if (!a) throw new OnceOnlyError('not_found', `no test account ${JSON.stringify(o.account.slice(0, 40))}`, { field: '--account', expected: accounts.map((x) => x.username).join(', ') });
      process.stdout.write(`${totp(Buffer.from(a.totpSecret, 'base64url'))}\n`);
    }));
}
