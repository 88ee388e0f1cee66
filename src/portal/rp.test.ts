/**
 * The portal as a relying party against a hostile OpenID provider (issue 13): an ID token from
 * another issuer, for another client, with the wrong nonce, expired, signed by a key the issuer
 * does not publish, or not signed at all, is refused with a clear page and no session; so is a
 * core identity JWT for another client or another subject. The provider here is a small server
 * that answers discovery, JWKS, token and userinfo with exactly what each case needs, and checks
 * that the portal sent its PKCE verifier.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, createLocalJWKSet, type JWK, type CryptoKey } from 'jose';
import type { FastifyInstance } from 'fastify';
import { openStore, type Store } from '../store/db.ts';
import { CORE_IDENTITY_CLAIM } from './onelogin.ts';
import { createPortalServer } from './server.ts';
import { PortalSessions } from './sessions.ts';

const CLIENT = 'portal-client';
const dir = mkdtempSync(join(tmpdir(), 'onceonly-rp-'));
let store: Store;
let op: Server;
let opUrl = '';
let portal: FastifyInstance;
let signing: CryptoKey;
let stranger: CryptoKey;
let identityKey: CryptoKey;
let publicJwk: JWK;
/** What the token endpoint answers, given the nonce and the PKCE verifier it was sent. */
let idToken: (nonce: string) => Promise<string>;
let coreIdentity: (sub: string) => Promise<string>;
let lastVerifier = '';

const now = (): number => Math.floor(Date.now() / 1000);

async function token(claims: Record<string, unknown>, key: CryptoKey = signing, alg = 'ES256'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, kid: 'k1' }).sign(key);
}

before(async () => {
  store = await openStore({ dataDir: dir });
  ({ privateKey: signing } = await generateKeyPair('ES256', { extractable: true }));
  ({ privateKey: stranger } = await generateKeyPair('ES256'));
  const id = await generateKeyPair('ES256', { extractable: true });
  identityKey = id.privateKey;
  const pub = await generateKeyPair('ES256', { extractable: true });
  void pub;
  const full = await exportJWK(signing);
  publicJwk = { kty: full.kty!, crv: full.crv!, x: full.x!, y: full.y!, kid: 'k1', alg: 'ES256', use: 'sig' };
  const identityPublic = await exportJWK(id.publicKey);
  op = createServer((req, res) => {
    const url = new URL(req.url ?? '/', opUrl);
    const json = (v: unknown): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (url.pathname === '/.well-known/openid-configuration') {
      return json({ issuer: opUrl, authorization_endpoint: `${opUrl}/auth`, token_endpoint: `${opUrl}/token`, userinfo_endpoint: `${opUrl}/userinfo`, jwks_uri: `${opUrl}/jwks`, response_types_supported: ['code'], subject_types_supported: ['pairwise'], id_token_signing_alg_values_supported: ['ES256'], code_challenge_methods_supported: ['S256'] });
    }
    if (url.pathname === '/jwks') return json({ keys: [publicJwk] });
    if (url.pathname === '/token') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        lastVerifier = form.get('code_verifier') ?? '';
        void idToken(pending.get(form.get('code') ?? '') ?? '').then((t) => json({ access_token: 'at', token_type: 'Bearer', expires_in: 60, id_token: t }));
      });
      return;
    }
    if (url.pathname === '/userinfo') return void coreIdentity('user-1').then((jwt) => json({ sub: 'user-1', [CORE_IDENTITY_CLAIM]: jwt }));
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((r) => op.listen(0, '127.0.0.1', r));
  opUrl = `http://127.0.0.1:${(op.address() as { port: number }).port}`;
  portal = await createPortalServer({
    publicUrl: 'http://portal.test', gatewayUrl: 'http://127.0.0.1:9', gatewayDir: dir, client: 'UK/GOV/GDS/citizen-portal',
    issuer: opUrl, clientId: CLIENT, clientSecret: 'secret', allowHttpIssuer: true,
    identity: { issuer: `${opUrl}/identity`, jwks: createLocalJWKSet({ keys: [{ ...identityPublic, kid: 'i1', alg: 'ES256' }] }) },
    sessions: new PortalSessions(store.db), cookieSecret: 'x'.repeat(40),
  });
});
after(async () => {
  await portal?.close();
  op?.closeAllConnections();
  await new Promise<void>((r) => op.close(() => r()));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Codes handed out, with the nonce of the sign-in they belong to. */
const pending = new Map<string, string>();

const good = (nonce: string): Record<string, unknown> => ({ iss: opUrl, aud: CLIENT, sub: 'user-1', nonce, iat: now(), exp: now() + 300, vot: 'P2' });
const goodCore = (sub: string): Promise<string> =>
  new SignJWT({ vot: 'P2', vc: { credentialSubject: { name: [{ nameParts: [{ type: 'GivenName', value: 'Ann' }, { type: 'FamilyName', value: 'Smith' }] }], birthDate: [{ value: '1980-01-02' }] } } })
    .setProtectedHeader({ alg: 'ES256', kid: 'i1' }).setIssuer(`${opUrl}/identity`).setAudience(CLIENT).setSubject(sub).setIssuedAt().setExpirationTime('5m').sign(identityKey);

/** One sign-in through the portal's callback; returns the page and whether a session cookie was set. */
async function callback(): Promise<{ status: number; body: string; session: boolean }> {
  const start = await portal.inject({ method: 'GET', url: '/sign-in' });
  assert.equal(start.statusCode, 303);
  const auth = new URL(String(start.headers['location']));
  assert.equal(auth.origin + auth.pathname, `${opUrl}/auth`);
  const code = `code-${pending.size}`;
  pending.set(code, auth.searchParams.get('nonce')!);
  const login = start.cookies.find((c) => c.name === 'portal_login')!;
  const res = await portal.inject({ method: 'GET', url: `/auth/callback?code=${code}&state=${auth.searchParams.get('state')}`, cookies: { portal_login: login.value } });
  // PKCE: the verifier sent is the one whose S256 challenge went to the provider.
  assert.equal(createHash('sha256').update(lastVerifier).digest('base64url'), auth.searchParams.get('code_challenge'));
  return { status: res.statusCode, body: res.body, session: res.cookies.some((c) => c.name === 'portal_session' && c.value !== '') };
}

describe('the portal refuses what a hostile provider sends', () => {
  test('a correct ID token passes the relying party\'s checks (the control: it then fails on the missing gateway, not before)', async () => {
    idToken = (nonce) => token(good(nonce));
    coreIdentity = goodCore;
    const r = await callback();
    assert.equal(r.status, 400);
    assert.match(r.body, /could not be asked to find your record/);
    assert.equal(r.session, false);
  });

  const refused: [string, (nonce: string) => Promise<string>][] = [
    ['an ID token from another issuer', (nonce) => token({ ...good(nonce), iss: 'https://other.example' })],
    ['an ID token for another client', (nonce) => token({ ...good(nonce), aud: 'someone-else' })],
    ['the wrong nonce', () => token(good('not-the-nonce'))],
    ['no nonce', (nonce) => token({ ...good(nonce), nonce: undefined })],
    ['an expired ID token', (nonce) => token({ ...good(nonce), iat: now() - 7200, exp: now() - 3600 })],
    ['a signature by a key the issuer does not publish', (nonce) => token(good(nonce), stranger)],
    ['an unsigned ID token (alg none)', (nonce) => Promise.resolve(`${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(good(nonce))).toString('base64url')}.`)],
  ];
  for (const [what, make] of refused) {
    test(`${what} is refused, with no session`, async () => {
      idToken = make;
      coreIdentity = goodCore;
      const r = await callback();
      assert.equal(r.status, 400);
      assert.match(r.body, /The identity provider&#39;s answer could not be checked|The identity provider's answer could not be checked/);
      assert.equal(r.session, false);
    });
  }

  const badIdentity: [string, (sub: string) => Promise<string>][] = [
    ['a core identity for another subject', () => goodCore('user-2')],
    ['a core identity for another client', (sub) => new SignJWT({ vot: 'P2', vc: {} }).setProtectedHeader({ alg: 'ES256', kid: 'i1' }).setIssuer(`${opUrl}/identity`).setAudience('someone-else').setSubject(sub).setExpirationTime('5m').sign(identityKey)],
    ['a core identity signed by the ID-token key, not the identity service', (sub) => new SignJWT({ vot: 'P2' }).setProtectedHeader({ alg: 'ES256', kid: 'i1' }).setIssuer(`${opUrl}/identity`).setAudience(CLIENT).setSubject(sub).setExpirationTime('5m').sign(signing)],
    ['a core identity proved only to low confidence', (sub) => new SignJWT({ vot: 'P1', vc: {} }).setProtectedHeader({ alg: 'ES256', kid: 'i1' }).setIssuer(`${opUrl}/identity`).setAudience(CLIENT).setSubject(sub).setExpirationTime('5m').sign(identityKey)],
  ];
  for (const [what, make] of badIdentity) {
    test(`${what} is refused, with no session`, async () => {
      idToken = (nonce) => token(good(nonce));
      coreIdentity = make;
      const r = await callback();
      assert.equal(r.status, 400);
      assert.match(r.body, /Your identity could not be confirmed/);
      assert.equal(r.session, false);
    });
  }
});
