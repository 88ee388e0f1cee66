/**
 * @module demo/portal
 * The demo's citizen portal and its identity provider: the issuer's test accounts are a few
 * synthetic people of the population register (each with a password and a TOTP secret, written
 * once to `issuer/test-accounts.json` for whoever plays them), and the portal is the
 * citizen-portal organisation's system behind its gateway, with its own store under `portal/`.
 * Ports and secrets are chosen on first start and kept.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTextFile } from '../core/files.ts';
import { registerFromStore, type HeldAddress } from '../audit/register.ts';
import type { RegistryRepository } from '../registry/repository.ts';
import { openStore } from '../store/db.ts';
import type { IssuerAccount } from '../portal/issuer.ts';
import type { PostalAddress } from '../portal/onelogin.ts';
import { remoteIdentityKeys } from '../portal/onelogin.ts';
import { PortalSessions } from '../portal/sessions.ts';
import { freePort } from './ports.ts';

export interface TestAccount {
  username: string;
  password: string;
  /** Base64url TOTP secret: `onceonly portal code` prints the current code. */
  totpSecret: string;
  /** The synthetic person's given name, to recognise them. */
  name: string;
}

export interface RunningPortal {
  info: { url: string; issuer: string; accounts: TestAccount[]; codeCommand: string };
  close(): Promise<void>;
}

const ACCOUNTS = 3;
export const CLIENT_ID = 'onceonly-citizen-portal';

/** A register address as One Login's postal address claim gives it. */
export function postalAddress(a: HeldAddress): PostalAddress {
  const parts = a.line.split(',').map((x) => x.trim()).filter((x) => x);
  const last = parts.pop() ?? '';
  const m = /^(\d+[A-Za-z]?)\s+(.+)$/.exec(last);
  return {
    ...(parts.length ? { subBuildingName: parts.join(', ') } : {}),
    ...(m ? { buildingNumber: m[1]!, streetName: m[2]! } : { streetName: last }),
    addressLocality: a.town, postalCode: a.postcode, addressCountry: 'GB',
  };
}

function readJson<T>(file: string): T | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
}

export async function startPortal(opts: { dir: string; gatewayUrl: string; registers: RegistryRepository; say: (l: string) => void }): Promise<RunningPortal> {
  // Loaded here, not at the CLI's start: every other command would pay for an OpenID provider.
  const { hashPassword, startIssuer, writeAccounts } = await import('../portal/issuer.ts');
  const { createPortalServer } = await import('../portal/server.ts');
  const portalDir = join(opts.dir, 'portal');
  const issuerDir = join(opts.dir, 'issuer');
  mkdirSync(portalDir, { recursive: true });
  const settingsFile = join(portalDir, 'demo-portal.json');
  let settings = readJson<{ portalPort: number; issuerPort: number; clientSecret: string; cookieSecret: string }>(settingsFile);
  if (!settings) {
    settings = { portalPort: await freePort(), issuerPort: await freePort(), clientSecret: randomBytes(32).toString('base64url'), cookieSecret: randomBytes(32).toString('base64url') };
    writeTextFile(settingsFile, `${JSON.stringify(settings, null, 2)}\n`);
  }
  const testFile = join(issuerDir, 'test-accounts.json');
  let accounts = readJson<{ accounts: TestAccount[] }>(testFile)?.accounts;
  if (!accounts) {
    const people = (await registerFromStore(opts.registers)).people.filter((p) => !p.deceased && p.address).slice(0, ACCOUNTS);
    const made: IssuerAccount[] = [];
    accounts = people.map((p, i) => {
      const password = randomBytes(9).toString('base64url');
      const totpSecret = randomBytes(20).toString('base64url');
      const username = `person${i + 1}`;
      made.push({ username, passwordHash: hashPassword(password), totpSecret, claims: { givenName: p.givenName, familyName: p.familyName, birthDate: p.birthDate, email: `${username}@example.invalid`, address: postalAddress(p.address!) } });
      return { username, password, totpSecret, name: p.givenName };
    });
    writeAccounts(issuerDir, made);
    // Written last: its presence means the accounts are complete.
    writeTextFile(testFile, `${JSON.stringify({ note: 'Synthetic test accounts of the demo identity provider', accounts }, null, 2)}\n`);
    opts.say(`created ${accounts.length} test accounts at the demo identity provider (${testFile})`);
  }
  const portalUrl = `http://127.0.0.1:${settings.portalPort}`;
  const issuer = await startIssuer({ dir: issuerDir, port: settings.issuerPort, clients: [{ client_id: CLIENT_ID, client_secret: settings.clientSecret, redirect_uris: [`${portalUrl}/auth/callback`] }] });
  const store = await openStore({ dataDir: portalDir });
  const app = await createPortalServer({
    publicUrl: portalUrl, gatewayUrl: opts.gatewayUrl, gatewayDir: join(opts.dir, 'gateways', 'gds'), client: 'UK/GOV/GDS/citizen-portal',
    issuer: issuer.url, clientId: CLIENT_ID, clientSecret: settings.clientSecret,
    identity: remoteIdentityKeys(issuer.identityIssuer, issuer.identityJwksUrl),
    sessions: new PortalSessions(store.db), cookieSecret: settings.cookieSecret, allowHttpIssuer: true,
  });
  try {
    await app.listen({ host: '127.0.0.1', port: settings.portalPort });
  } catch (e) {
    await issuer.close();
    await store.close();
    throw e;
  }
  return {
    info: { url: portalUrl, issuer: issuer.url, accounts, codeCommand: `npx onceonly portal code --data ${opts.dir} --account ${accounts[0]?.username ?? 'person1'}` },
    close: async () => {
      await app.close();
      await issuer.close();
      await store.close();
    },
  };
}
