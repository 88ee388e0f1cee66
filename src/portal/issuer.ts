/**
 * @module portal/issuer
 * The demo's identity provider: an OpenID provider built on oidc-provider (a certified OpenID
 * Connect implementation), standing in for GOV.UK One Login. Its test accounts are synthetic
 * people of the population register, each signing in with a password and a one-time code (TOTP,
 * RFC 6238, from the secret an authenticator app would hold). It answers as One Login does
 * (portal/onelogin): a pairwise `sub` per client (OpenID Connect Core §8.1), `vot` in the ID
 * token, and a core identity JWT and addresses from `/userinfo`.
 *
 * Everything it keeps is under its folder: `keys.json` (its ID-token and identity-JWT signing
 * keys, its cookie key and pairwise salt) and `accounts.json` (usernames, scrypt password hashes,
 * TOTP secrets and the claims it vouches for). It keeps sessions in memory: restarting it signs
 * everyone out of it, not out of the portal.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, importJWK, type JWK } from 'jose';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { writeTextFile } from '../core/files.ts';
import { ADDRESS_CLAIM, CORE_IDENTITY_CLAIM, type PostalAddress } from './onelogin.ts';
import { checkTotp } from './totp.ts';
import { serveAsset, viewEnvironment } from './views.ts';

/** What the issuer vouches for about one account. */
export interface AccountClaims {
  givenName: string;
  familyName: string;
  birthDate: string;
  email: string;
  address: PostalAddress | null;
}

export interface IssuerAccount {
  username: string;
  /** `scrypt$<salt b64url>$<hash b64url>` */
  passwordHash: string;
  /** The TOTP secret, base64url. */
  totpSecret: string;
  claims: AccountClaims;
}

export interface IssuerClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
}

interface IssuerKeys {
  signing: JWK;
  identity: JWK;
  cookie: string;
  pairwiseSalt: string;
}

export interface RunningIssuer {
  /** The issuer identifier (its discovery document is under it). */
  url: string;
  /** Who signs core identity JWTs, and where its public keys are. */
  identityIssuer: string;
  identityJwksUrl: string;
  close(): Promise<void>;
}

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  return `scrypt$${salt.toString('base64url')}$${scryptSync(password, salt, 32).toString('base64url')}`;
}

function checkPassword(hash: string, password: string): boolean {
  const [kind, salt, want] = hash.split('$');
  if (kind !== 'scrypt' || !salt || !want) return false;
  return timingSafeEqual(scryptSync(password, Buffer.from(salt, 'base64url'), 32), Buffer.from(want, 'base64url'));
}

async function loadKeys(dir: string): Promise<IssuerKeys> {
  const file = join(dir, 'keys.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as IssuerKeys;
  const mk = async (kid: string): Promise<JWK> => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    return { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
  };
  const keys: IssuerKeys = { signing: await mk('id-token-1'), identity: await mk('identity-1'), cookie: randomBytes(32).toString('base64url'), pairwiseSalt: randomBytes(32).toString('base64url') };
  mkdirSync(dir, { recursive: true });
  writeTextFile(file, `${JSON.stringify(keys, null, 2)}\n`);
  return keys;
}

export function readAccounts(dir: string): IssuerAccount[] {
  const file = join(dir, 'accounts.json');
  if (!existsSync(file)) return [];
  return (JSON.parse(readFileSync(file, 'utf8')) as { accounts: IssuerAccount[] }).accounts;
}

export function writeAccounts(dir: string, accounts: IssuerAccount[]): void {
  mkdirSync(dir, { recursive: true });
  writeTextFile(join(dir, 'accounts.json'), `${JSON.stringify({ version: 1, accounts }, null, 2)}\n`);
}

const pub = (k: JWK): JWK => ({ kty: k.kty!, crv: k.crv!, x: k.x!, y: k.y!, kid: k.kid!, alg: k.alg!, use: 'sig' });

// Failed sign-ins per account before it is locked for LOCK_MS (a password and a code guessed).
const MAX_FAILURES = 5;
const LOCK_MS = 15 * 60_000;

/** Starts the issuer on 127.0.0.1:`port` (0: any). */
export async function startIssuer(opts: { dir: string; port: number; clients: IssuerClient[]; now?: () => Date }): Promise<RunningIssuer> {
  const keys = await loadKeys(opts.dir);
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(opts.port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const identityIssuer = `${url}/identity`;
  const identityKey = await importJWK(keys.identity, 'ES256');
  const accounts = (): Map<string, IssuerAccount> => new Map(readAccounts(opts.dir).map((a) => [a.username, a]));
  const pairwise = (accountId: string, sector: string): string => `urn:fdc:onceonly:demo:${createHmac('sha256', keys.pairwiseSalt).update(`${sector}\n${accountId}`).digest('base64url')}`;
  const failures = new Map<string, { n: number; until: number }>();
  const views = viewEnvironment();

  const config: Configuration = {
    clients: opts.clients.map((c) => ({ ...c, response_types: ['code'], grant_types: ['authorization_code'], token_endpoint_auth_method: 'client_secret_basic', subject_type: 'pairwise', id_token_signed_response_alg: 'ES256' })),
    jwks: { keys: [keys.signing] as never[] },
    cookies: { keys: [keys.cookie] },
    claims: { openid: ['sub', 'vot', 'vtm'], email: ['email', 'email_verified'], [CORE_IDENTITY_CLAIM]: null, [ADDRESS_CLAIM]: null },
    conformIdTokenClaims: false,
    extraParams: ['vtr'],
    features: { devInteractions: { enabled: false }, claimsParameter: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    pkce: { required: () => true },
    subjectTypes: ['pairwise'],
    pairwiseIdentifier: (_ctx, accountId, client) => pairwise(accountId, typeof client.sectorIdentifier === 'string' ? client.sectorIdentifier : ''),
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // First-party clients of the same government: no consent screen; the grant covers what was asked.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const session = ctx.oidc.session;
      const client = ctx.oidc.client;
      if (!session?.accountId || !client) return undefined;
      const grantId = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope('openid email');
      grant.addOIDCClaims(['sub', 'vot', 'vtm', 'email', 'email_verified', CORE_IDENTITY_CLAIM, ADDRESS_CLAIM]);
      await grant.save();
      return grant;
    },
    findAccount: (ctx, id) => {
      const a = accounts().get(id);
      if (!a) return undefined;
      return {
        accountId: id,
        claims: async () => {
          const client = ctx.oidc.client;
          const sub = pairwise(id, typeof client?.sectorIdentifier === 'string' ? client.sectorIdentifier : '');
          const now = Math.floor((opts.now?.() ?? new Date()).getTime() / 1000);
          // One Login's core identity: a JWT of the identity service, for this client and this sub.
          const core = await new SignJWT({
            vot: 'P2',
            vtm: `${url}/trustmark`,
            vc: { type: ['VerifiableCredential', 'VerifiableIdentityCredential'], credentialSubject: { name: [{ nameParts: [{ type: 'GivenName', value: a.claims.givenName }, { type: 'FamilyName', value: a.claims.familyName }] }], birthDate: [{ value: a.claims.birthDate }] } },
          })
            .setProtectedHeader({ alg: 'ES256', kid: keys.identity.kid! })
            .setIssuer(identityIssuer)
            .setSubject(sub)
            .setAudience(client?.clientId ?? '')
            .setIssuedAt(now)
            .setNotBefore(now)
            .setExpirationTime(now + 600)
            .sign(identityKey);
          return { sub: id, vot: 'P2', vtm: `${url}/trustmark`, email: a.claims.email, email_verified: true, [CORE_IDENTITY_CLAIM]: core, [ADDRESS_CLAIM]: a.claims.address ? [a.claims.address] : [] };
        },
      };
    },
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = views.render('issuer-error.njk', { error: String(out['error'] ?? 'error'), description: String(out['error_description'] ?? '') });
    },
  };
  const provider = new Provider(url, config);
  const oidc = provider.callback();

  const page = (res: ServerResponse, status: number, view: string, ctx: object): void => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'", 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' });
    const errs = (ctx as { errors?: { text: string; href: string }[] }).errors ?? [];
    res.end(views.render(view, { ...ctx, fieldErrors: Object.fromEntries(errs.map((e) => [e.href.slice(1), e.text])) }));
  };
  const body = async (req: IncomingMessage): Promise<URLSearchParams> => {
    let text = '';
    for await (const chunk of req) {
      text += String(chunk);
      if (text.length > 10_000) throw new Error('body too large');
    }
    return new URLSearchParams(text);
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/identity/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [pub(keys.identity)] }));
      return;
    }
    if (path.startsWith('/assets/') || path.startsWith('/stylesheets/')) return serveAsset(path, res);
    const m = /^\/interaction\/([A-Za-z0-9_-]{1,100})(\/login)?$/.exec(path);
    if (!m) return void oidc(req, res);
    void (async () => {
      try {
        const details = await provider.interactionDetails(req, res);
        if (details.uid !== m[1]) return page(res, 400, 'issuer-error.njk', { error: 'invalid_request', description: 'This sign-in has expired. Go back to the service and start again.' });
        if (req.method === 'GET') return page(res, 200, 'issuer-login.njk', { uid: details.uid, errors: [] });
        if (req.method !== 'POST' || !m[2]) return page(res, 405, 'issuer-error.njk', { error: 'method_not_allowed', description: '' });
        const form = await body(req);
        const username = (form.get('username') ?? '').trim().slice(0, 100);
        const errors: { text: string; href: string }[] = [];
        if (!username) errors.push({ text: 'Enter your username', href: '#username' });
        if (!form.get('password')) errors.push({ text: 'Enter your password', href: '#password' });
        if (!form.get('code')) errors.push({ text: 'Enter the 6-digit code from your authenticator app', href: '#code' });
        const account = accounts().get(username);
        const now = Date.now();
        const f = failures.get(username);
        if (errors.length === 0 && f && f.n >= MAX_FAILURES && f.until > now) errors.push({ text: 'You have entered the wrong details too many times. Wait 15 minutes and try again', href: '#username' });
        if (errors.length === 0 && (!account || !checkPassword(account.passwordHash, form.get('password') ?? '') || !checkTotp(Buffer.from(account.totpSecret, 'base64url'), (form.get('code') ?? '').trim()))) {
          const n = (f && f.until > now ? f.n : 0) + 1;
          failures.set(username, { n, until: now + LOCK_MS });
          // One message for any wrong part, so the page does not tell which usernames exist.
          errors.push({ text: 'The username, password or code is not right', href: '#username' });
        }
        if (errors.length > 0 || !account) return page(res, 400, 'issuer-login.njk', { uid: details.uid, errors, username });
        failures.delete(username);
        await provider.interactionFinished(req, res, { login: { accountId: account.username } }, { mergeWithLastSubmission: false });
      } catch (e) {
        page(res, 400, 'issuer-error.njk', { error: 'invalid_request', description: (e as Error).name === 'SessionNotFound' ? 'This sign-in has expired. Go back to the service and start again.' : 'Something went wrong with this sign-in. Go back to the service and start again.' });
      }
    })();
  });

  return {
    url,
    identityIssuer,
    identityJwksUrl: `${url}/identity/jwks.json`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

