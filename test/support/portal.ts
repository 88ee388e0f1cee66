/**
 * A browser enough for the portal's sign-in over plain HTTP (one cookie jar, no redirects
 * followed), for the portal's tests and its benchmark: the demo identity provider's login with
 * a test account's password and current one-time code, up to the portal's session.
 */
import assert from 'node:assert/strict';
import { request } from 'undici';
import type { TestAccount } from '../../src/demo/portal.ts';
import { totp } from '../../src/portal/totp.ts';

export interface PortalInfo {
  url: string;
  issuer: string;
  accounts: TestAccount[];
}

/** A browser enough for these flows: one cookie jar (cookies are per host, not per port), no redirects followed. */
export class Browser {
  readonly jar = new Map<string, string>();

  async get(url: string): Promise<{ status: number; location: string; body: string }> {
    return this.send('GET', url);
  }

  async post(url: string, form: Record<string, string>): Promise<{ status: number; location: string; body: string }> {
    return this.send('POST', url, new URLSearchParams(form).toString());
  }

  async send(method: string, url: string, body?: string): Promise<{ status: number; location: string; body: string }> {
    const cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await request(url, { method, headers: { ...(cookie ? { cookie } : {}), ...(body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) }, ...(body !== undefined ? { body } : {}) });
    const set = res.headers['set-cookie'];
    for (const c of Array.isArray(set) ? set : set ? [set] : []) {
      const [pair, ...attrs] = c.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const gone = attrs.some((a) => /^\s*max-age=0/i.test(a) || (/^\s*expires=/i.test(a) && new Date(a.split('=')[1]!) < new Date())) || value === '';
      if (gone) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    const location = String(res.headers['location'] ?? '');
    return { status: res.statusCode, location: location && !/^https?:/.test(location) ? new URL(location, url).href : location, body: await res.body.text() };
  }
}

/** Follows the sign-in up to the portal's callback URL (not requested). */
export async function toCallback(portal: PortalInfo, b: Browser, account: TestAccount = portal.accounts[0]!, code?: string): Promise<{ callback: string; loginPage: string }> {
  const start = await b.get(`${portal.url}/sign-in`);
  assert.equal(start.status, 303);
  assert.ok(start.location.startsWith(portal.issuer), start.location);
  const auth = new URL(start.location);
  // What the portal asks for: PKCE S256, state, nonce, One Login's vector of trust and claims.
  assert.equal(auth.searchParams.get('code_challenge_method'), 'S256');
  for (const p of ['state', 'nonce', 'code_challenge', 'vtr', 'claims']) assert.ok(auth.searchParams.get(p), p);
  const toLogin = await b.get(start.location);
  assert.equal(toLogin.status, 303, toLogin.body.slice(0, 300));
  const page = await b.get(toLogin.location);
  assert.equal(page.status, 200);
  const action = /action="([^"]+)"/.exec(page.body)![1]!;
  const done = await b.post(new URL(action, toLogin.location).href, { username: account.username, password: account.password, code: code ?? totp(Buffer.from(account.totpSecret, 'base64url')) });
  if (done.status !== 303) return { callback: '', loginPage: done.body };
  let next = done.location;
  for (let i = 0; i < 5 && !next.startsWith(`${portal.url}/auth/callback`); i++) {
    const r = await b.get(next);
    assert.equal(r.status, 303, r.body.slice(0, 300));
    next = r.location;
  }
  return { callback: next, loginPage: '' };
}

export async function signIn(portal: PortalInfo, b: Browser, account: TestAccount = portal.accounts[0]!): Promise<void> {
  const { callback } = await toCallback(portal, b, account);
  const r = await b.get(callback);
  assert.equal(r.status, 303, r.body.slice(0, 500));
  assert.equal(r.location, `${portal.url}/your-data`);
}

