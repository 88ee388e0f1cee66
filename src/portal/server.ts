/**
 * @module portal/server
 * `onceonly portal serve`: the citizen portal, the citizen-portal organisation's own system. It
 * signs people in with OpenID Connect (openid-client: authorization code flow with PKCE, state
 * and nonce, a client secret), matches the verified identity to the population register through
 * the exchange (the register's `identity-match` service), and shows the person what the
 * registers hold about them, reading it through its own gateway under its agreements like any
 * other consumer: every such read is an access record the person can see.
 *
 * Pages are server-rendered with the GOV.UK Design System's own templates (govuk-frontend via
 * @fastify/view and Nunjucks) and work without JavaScript. Sessions live in the portal's store
 * (portal/sessions); forms carry a CSRF token bound to the session (@fastify/csrf-protection);
 * helmet sets the security headers, with a CSP that runs no inline script but the Design
 * System's one, pinned by hash.
 */
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import fastifyView from '@fastify/view';
import nunjucks from 'nunjucks';
import * as oidc from 'openid-client';
import { request } from 'undici';
import { createLogger } from '../core/log.ts';
import { encodeIdPath } from '../core/ids.ts';
import { CLAIMS_REQUEST, VTR, verifiedIdentity, type IdentityVerification } from './onelogin.ts';
import type { PortalSessions, Session } from './sessions.ts';
import { GOVUK_DIST, VIEWS_DIR, templateScriptHash } from './views.ts';
import type { MatchDecision } from '../identity/match.ts';
import { track, type TrackedRecord } from '../gateway/tracker.ts';
import { readHeldConfiguration } from '../gateway/node.ts';
import type { GlobalConfiguration } from '../central/types.ts';

export interface PortalOptions {
  /** Where the portal is reached, e.g. `http://127.0.0.1:8080` (redirect URI is `/auth/callback` under it). */
  publicUrl: string;
  /** The portal system's gateway client side, and the subsystem it is. */
  gatewayUrl: string;
  client: string;
  /** A credential for the gateway, when it authenticates information systems (gateway/isauth). */
  gatewayToken?: string;
  /** The OpenID provider: its issuer identifier, and this client's registration there. */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Who signs the core identity JWT, and its keys. */
  identity: IdentityVerification;
  sessions: PortalSessions;
  /** Signs cookies (at least 32 characters). */
  cookieSecret: string;
  /** The portal's gateway folder: its held global configuration verifies the registers' transparency logs. */
  gatewayDir: string;
  /** Allow an issuer over plain HTTP (the demo's, on loopback). */
  allowHttpIssuer?: boolean;
}

const SERVICE_NAME = 'Your data and who uses it';
const SESSION_COOKIE = 'portal_session';
const LOGIN_COOKIE = 'portal_login';
const POPULATION = 'UK/GOV/GRO/population';
const ADDRESSES = 'UK/GOV/GEOPLACE/addresses';
const COMPANIES = 'UK/GOV/CH/companies';
/** What "Your data" shows of the population register (each named as a person would say it). */
const PERSON_ITEMS: [string, string][] = [['person.givenName', 'Given name'], ['person.familyName', 'Family name'], ['person.birthDate', 'Date of birth'], ['person.address', 'Address'], ['person.previousAddresses', 'Previous addresses'], ['person.status', 'Status'], ['person.nationality', 'Nationality']];
const ADDRESS_ITEMS: [string, string][] = [['address.lines', 'Address lines'], ['address.town', 'Town'], ['address.postcode', 'Postcode']];
const REGISTER_NAMES: Record<string, string> = { [POPULATION]: 'General Register Office (population register)', [ADDRESSES]: 'GeoPlace (address register)', [COMPANIES]: 'Companies House (business register)' };

interface Envelope {
  value: unknown;
  source?: string;
  lastUpdated?: string;
  classification?: string;
}

/** A signed-in request's session. */
declare module 'fastify' {
  interface FastifyRequest {
    portalSession?: Session;
    portalToken?: string;
  }
}

function shownValue(item: string, v: unknown): string {
  if (v === null || v === undefined) return '';
  if (item === 'person.address' && typeof v === 'object') {
    const a = v as { lines?: string[]; addressId?: string };
    return a.lines?.join(', ') ?? a.addressId ?? '';
  }
  if (Array.isArray(v)) {
    // Earlier addresses: each one's lines, not its JSON.
    if (v.every((x) => typeof x === 'object' && x !== null && Array.isArray((x as { lines?: unknown }).lines))) return v.map((x) => (x as { lines: string[] }).lines.join(', ')).join('; ');
    return v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(', ');
  }
  if (typeof v === 'object') return JSON.stringify(v);
  return typeof v === 'string' ? v : JSON.stringify(v);
}

const longDate = (iso: string | undefined): string => {
  if (!iso) return '';
  const d = new Date(iso.length === 10 ? `${iso}T00:00:00Z` : iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });
};

export async function createPortalServer(opts: PortalOptions): Promise<FastifyInstance> {
  const tls = opts.publicUrl.startsWith('https:');
  const logger: FastifyBaseLogger = createLogger({ level: 'warn' });
  const app = Fastify({ loggerInstance: logger, bodyLimit: 64 * 1024, trustProxy: false });
  const redirectUri = `${opts.publicUrl}/auth/callback`;

  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'", templateScriptHash()],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        ...(tls ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    // HSTS only where the portal is served over TLS: on plain loopback it would mean nothing.
    hsts: tls ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' },
  });
  await app.register(fastifyCookie, { secret: opts.cookieSecret });
  await app.register(fastifyFormbody, { bodyLimit: 16 * 1024 });
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: 'portal_csrf',
    cookieOpts: { signed: true, httpOnly: true, sameSite: 'lax', path: '/', secure: tls },
    // Each token is bound to the session it was made for: one taken from another session fails.
    getUserInfo: (req: FastifyRequest) => req.portalToken ?? '',
    csrfOpts: { hmacKey: opts.cookieSecret },
  });
  await app.register(fastifyView, { engine: { nunjucks }, templates: [VIEWS_DIR, GOVUK_DIST], options: { autoescape: true } });
  await app.register(fastifyStatic, { root: join(GOVUK_DIST, 'govuk', 'assets'), prefix: '/assets/', decorateReply: false, index: false });
  await app.register(fastifyStatic, {
    root: join(GOVUK_DIST, 'govuk'), prefix: '/stylesheets/', decorateReply: false, index: false,
    allowedPath: (p) => p === '/govuk-frontend.min.css',
  });
  await app.register(fastifyStatic, {
    root: join(GOVUK_DIST, 'govuk'), prefix: '/javascripts/', decorateReply: false, index: false,
    allowedPath: (p) => p === '/govuk-frontend.min.js',
  });
  await app.register(fastifyStatic, { root: join(VIEWS_DIR, '..', 'public'), prefix: '/scripts/', decorateReply: false, index: false, allowedPath: (p) => p === '/init.js' });

  // The gateway's held global configuration (names, agreements), read from its store at most
  // once a minute rather than on every page: it changes when the central publishes, not per request.
  let held: { at: number; conf: Promise<GlobalConfiguration> } | undefined;
  const heldConf = (): Promise<GlobalConfiguration> => {
    if (!held || Date.now() - held.at > 60_000) {
      const conf = readHeldConfiguration(opts.gatewayDir).then((h) => h.conf);
      conf.catch(() => (held = undefined));
      held = { at: Date.now(), conf };
    }
    return held.conf;
  };
  // Sessions end when they are next looked at; expired rows of people who never come back are
  // removed here, so the table does not grow with every sign-in.
  const sweeper = setInterval(() => void opts.sessions.sweep().catch(() => undefined), 10 * 60_000);
  sweeper.unref();
  app.addHook('onClose', (_app, done) => {
    clearInterval(sweeper);
    done();
  });

  const cookieBase = { httpOnly: true, sameSite: 'lax' as const, path: '/', secure: tls, signed: true };
  let config: oidc.Configuration | undefined;
  const oidcConfig = async (): Promise<oidc.Configuration> => {
    if (!config) {
      const c = await oidc.discovery(new URL(opts.issuer), opts.clientId, { client_secret: opts.clientSecret }, oidc.ClientSecretBasic(opts.clientSecret), opts.allowHttpIssuer ? { execute: [oidc.allowInsecureRequests] } : undefined);
      // OpenID Connect Core §3.1.3.7 lets a client trust an ID token from the token endpoint on
      // TLS alone; the portal checks its signature against the issuer's published keys as well.
      oidc.enableNonRepudiationChecks(c);
      config = c;
    }
    return config;
  };

  const render = (reply: FastifyReply, status: number, view: string, ctx: Record<string, unknown>, req?: FastifyRequest): FastifyReply => {
    const signedIn = req?.portalSession !== undefined;
    const navigation = signedIn
      ? [{ href: '/your-data', text: 'Your data' }, { href: '/who-used-your-data', text: 'Who has used your data' }, { href: '/permissions', text: 'Your permissions' }, { href: '/requests', text: 'Requests waiting for you' }, { href: '/report-a-change', text: 'Report a change' }, { href: '/how-we-found-you', text: 'How we found your record' }]
      : [];
    reply.header('cache-control', 'no-store');
    // Each field's own message, for the field (the summary lists them all): Nunjucks' selectattr
    // cannot filter by value, so the map is made here.
    const errs = Array.isArray(ctx['errors']) ? (ctx['errors'] as { text: string; href: string }[]) : [];
    const fieldErrors = Object.fromEntries(errs.map((e) => [e.href.slice(1), e.text]));
    return reply.status(status).view(view, {
      fieldErrors,
      serviceName: SERVICE_NAME, serviceUrl: '/', navigation, scriptUrl: '/scripts/init.js', signedIn,
      csrfToken: signedIn ? reply.generateCsrf({ userInfo: req.portalToken! }) : undefined,
      footerLinks: [{ href: '/accessibility', text: 'Accessibility statement' }, { href: '/privacy', text: 'Privacy notice' }],
      ...ctx,
    });
  };
  const problem = (reply: FastifyReply, status: number, title: string, lines: string[], req?: FastifyRequest): FastifyReply => render(reply, status, 'problem.njk', { title, lines }, req);

  /** The session a request carries, or undefined; a bad or tampered cookie counts as none. */
  const sessionOf = async (req: FastifyRequest): Promise<void> => {
    const raw = req.cookies[SESSION_COOKIE];
    if (!raw) return;
    const u = req.unsignCookie(raw);
    if (!u.valid || !u.value) return;
    const s = await opts.sessions.get(u.value);
    if (s) {
      req.portalSession = s;
      req.portalToken = u.value;
    }
  };
  app.addHook('preHandler', async (req) => sessionOf(req));
  const requireSession = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!req.portalSession) {
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      await problem(reply, 401, 'You need to sign in', ['You are not signed in, or your session has ended (after 30 minutes without activity, or 8 hours after you signed in).', 'Sign in again to see your data.']);
    }
  };

  /** A call through the portal's own gateway (X-Road r1). */
  const exchange = async (method: 'GET' | 'POST', path: string, purpose: string, body?: unknown, userId?: string): Promise<{ status: number; json: unknown }> => {
    let res;
    try {
      res = await request(`${opts.gatewayUrl}/r1/${path}`, {
      method,
      headers: {
        accept: 'application/json', 'x-road-client': encodeIdPath(opts.client), 'x-onceonly-purpose': purpose,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        // X-Road's end-user header: whom the portal acts for (gateway/person-consents).
        ...(userId !== undefined ? { 'x-road-userid': userId } : {}),
        ...(opts.gatewayToken ? { authorization: `Bearer ${opts.gatewayToken}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      headersTimeout: 15_000, bodyTimeout: 15_000,
      });
    } catch {
      // The gateway is down or unreachable: a page says so, like any other failed read.
      return { status: 502, json: null };
    }
    const text = await res.body.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: res.statusCode, json };
  };

  app.get('/', (req, reply) => render(reply, 200, 'start.njk', { title: SERVICE_NAME }, req));
  app.get('/accessibility', (req, reply) => render(reply, 200, 'accessibility.njk', { title: 'Accessibility statement' }, req));
  app.get('/privacy', (req, reply) => render(reply, 200, 'privacy.njk', { title: 'Privacy notice' }, req));
  app.get('/signed-out', (req, reply) => render(reply, 200, 'signed-out.njk', { title: 'You have signed out' }, req));

  app.get('/sign-in', async (_req, reply) => {
    const c = await oidcConfig();
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const token = await opts.sessions.startLogin({ state, nonce, verifier });
    reply.setCookie(LOGIN_COOKIE, token, { ...cookieBase, maxAge: 600 });
    const url = oidc.buildAuthorizationUrl(c, {
      redirect_uri: redirectUri, scope: 'openid email', response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      state, nonce, vtr: VTR, claims: CLAIMS_REQUEST, prompt: 'login',
    });
    return reply.redirect(url.href, 303);
  });

  app.get('/auth/callback', async (req, reply) => {
    const fail = (why: string): FastifyReply => {
      reply.clearCookie(LOGIN_COOKIE, { path: '/' });
      return problem(reply, 400, 'Sorry, there is a problem signing you in', [why, 'Nothing about you has been shown. Go to the start page and sign in again.']);
    };
    const raw = req.cookies[LOGIN_COOKIE];
    const u = raw ? req.unsignCookie(raw) : undefined;
    // A callback without this browser's own sign-in under way (another browser's link, a replay) goes nowhere.
    const login = u?.valid && u.value ? await opts.sessions.takeLogin(u.value) : undefined;
    if (!login) return fail('This sign-in did not start here, has already been used or took too long.');
    const c = await oidcConfig();
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.authorizationCodeGrant(c, new URL(req.url, opts.publicUrl), { pkceCodeVerifier: login.verifier, expectedState: login.state, expectedNonce: login.nonce, idTokenExpected: true });
    } catch (e) {
      req.log.warn({ err: { name: (e as Error).name, code: (e as { code?: string }).code } }, 'sign-in refused');
      return fail('The identity provider\'s answer could not be checked.');
    }
    const claims = tokens.claims()!;
    let identity;
    try {
      const userinfo = await oidc.fetchUserInfo(c, tokens.access_token, claims.sub);
      identity = await verifiedIdentity(userinfo, { sub: claims.sub, clientId: opts.clientId, verification: opts.identity, vot: claims['vot'] });
    } catch (e) {
      req.log.warn({ err: { name: (e as Error).name } }, 'identity refused');
      return fail('Your identity could not be confirmed to the level this service needs.');
    }
    const m = await exchange('POST', `${encodeIdPath(POPULATION)}/identity-match/match`, 'citizen-sign-in', identity);
    if (m.status !== 200) return fail('The population register could not be asked to find your record. Try again later.');
    const d = m.json as MatchDecision;
    await opts.sessions.recordMatch(claims.iss, claims.sub, d);
    reply.clearCookie(LOGIN_COOKIE, { path: '/' });
    if (d.outcome !== 'matched' || !d.person) {
      return render(reply, 200, 'no-match.njk', { title: d.outcome === 'ambiguous' ? 'We could not be sure which record is yours' : 'We could not find your record', outcome: d.outcome });
    }
    const token = await opts.sessions.create(d.person, { issuer: claims.iss, subject: claims.sub, name: identity.givenName });
    reply.setCookie(SESSION_COOKIE, token, cookieBase);
    return reply.redirect('/your-data', 303);
  });

  app.get('/your-data', { preHandler: requireSession }, async (req, reply) => {
    const s = req.portalSession!;
    const person = await exchange('GET', `${encodeIdPath(POPULATION)}/people/${s.person}?items=${PERSON_ITEMS.map(([i]) => i).join(',')}`, 'citizen-own-data');
    if (person.status !== 200) return problem(reply, 502, 'Sorry, your data cannot be shown now', ['The population register did not answer. Try again later.'], req);
    const items = ((person.json as { items?: Record<string, Envelope> }).items ?? {});
    const rows = (list: [string, string][], got: Record<string, Envelope>): { key: string; value: string; source: string; updated: string; classification: string; held: boolean }[] =>
      list.map(([item, label]) => {
        const e = got[item];
        const held = e !== undefined && e.value !== null && e.value !== undefined;
        return { key: label, value: held ? (item === 'person.birthDate' ? longDate(shownValue(item, e.value)) : shownValue(item, e.value)) : 'Not held', source: REGISTER_NAMES[e?.source ?? ''] ?? e?.source ?? '', updated: longDate(e?.lastUpdated), classification: e?.classification ?? '', held };
      });
    const registers = [{ name: REGISTER_NAMES[POPULATION], rows: rows(PERSON_ITEMS, items) }];
    const addressId = (items['person.address']?.value as { addressId?: string } | undefined)?.addressId;
    if (addressId) {
      const a = await exchange('GET', `${encodeIdPath(ADDRESSES)}/addresses/${addressId}?items=${ADDRESS_ITEMS.map(([i]) => i).join(',')}`, 'citizen-own-data');
      registers.push({ name: REGISTER_NAMES[ADDRESSES], rows: a.status === 200 ? rows(ADDRESS_ITEMS, (a.json as { items?: Record<string, Envelope> }).items ?? {}) : ADDRESS_ITEMS.map(([, k]) => ({ key: k, value: 'Could not be read now', source: '', updated: '', classification: '', held: false })) });
    }
    // The business register: the companies it records the person as an officer of.
    const officers = await exchange('GET', `${encodeIdPath(COMPANIES)}/officer-search?person=${s.person}`, 'citizen-own-data');
    const appointments = officers.status === 200 ? ((officers.json as { appointments?: { name: string; status: string; role: string; appointedOn: string }[] }).appointments ?? []) : null;
    registers.push({
      name: REGISTER_NAMES[COMPANIES],
      rows: appointments === null
        ? [{ key: 'Company appointments', value: 'Could not be read now', source: '', updated: '', classification: '', held: false }]
        : appointments.length === 0
          ? [{ key: 'Company appointments', value: 'Not held: you are not an officer of any company', source: '', updated: '', classification: '', held: false }]
          : appointments.map((a) => ({ key: a.role === 'secretary' ? 'Company secretary' : 'Director', value: `${a.name} (${a.status}), appointed ${longDate(a.appointedOn)}`, source: REGISTER_NAMES[COMPANIES]!, updated: '', classification: 'personal', held: true })),
    });
    return render(reply, 200, 'your-data.njk', { title: 'Your data', name: s.data.name, registers }, req);
  });

  const ITEM_LABELS = new Map([...PERSON_ITEMS, ...ADDRESS_ITEMS]);
  const recordKey = (r: TrackedRecord): string => `${r.record.gateway}~${r.record.logPosition}~${r.record.part ?? 0}`;
  /** The member names of the exchange, from the held global configuration (organisations by name, not id). */
  const exchangeNames = async (): Promise<{ members: Map<string, string>; purposes: Map<string, string> }> => {
    const conf = await heldConf();
    return { members: new Map(conf.members.map((m) => [m.id, m.name])), purposes: new Map(conf.agreements.map((a) => [a.id, a.purpose.description])) };
  };
  const orgOf = (names: Map<string, string>, client: string): string => names.get(client.split('/').slice(0, 3).join('/')) ?? client;
  const PAGE_SIZE = 10;

  app.get('/who-used-your-data', { preHandler: requireSession }, async (req, reply) => {
    const s = req.portalSession!;
    const q = req.query as Record<string, unknown>;
    for (const k of Object.keys(q)) if (k !== 'org' && k !== 'page') return problem(reply, 400, 'Sorry, that page does not exist', ['The address has a part this page does not use.'], req);
    const pageRaw = typeof q['page'] === 'string' ? q['page'] : '1';
    if (!/^[1-9]\d{0,4}$/.test(pageRaw)) return problem(reply, 400, 'Sorry, that page does not exist', ['The page number in the address is not a whole number.'], req);
    const org = typeof q['org'] === 'string' && q['org'] !== '' ? q['org'] : undefined;
    const result = await track(s.person, { dir: opts.gatewayDir, gatewayUrl: opts.gatewayUrl, client: opts.client, ...(opts.gatewayToken ? { token: opts.gatewayToken } : {}) });
    const { members: names, purposes } = await exchangeNames();
    const orgs = [...new Set(result.records.map((r) => r.record.client.split('/').slice(0, 3).join('/')))].sort();
    if (org !== undefined && !orgs.includes(org)) return problem(reply, 400, 'Sorry, that organisation is not in your records', ['Choose an organisation from the list.'], req);
    const shown = result.records.filter((r) => org === undefined || r.record.client.startsWith(`${org}/`));
    const page = Number(pageRaw);
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    if (page > pages) return problem(reply, 404, 'Sorry, that page does not exist', [`There are ${pages} pages of records.`], req);
    const rows = shown.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE).map((r) => {
      const x = r.record;
      const items = x.items.map((i) => ITEM_LABELS.get(i) ?? i).join(', ');
      return {
        when: `${longDate(x.at)}, ${x.at.slice(11, 16)} UTC`,
        org: orgOf(names, x.client),
        what: x.notice ? `Told of your ${x.notice.type} change (${items})` : x.items.length ? `Read ${items}` : 'Checked that your record exists',
        from: orgOf(names, x.provider),
        purpose: purposes.get(x.agreement) ?? x.purpose, legalBasis: x.legalBasis, verified: r.verified, check: r.check, key: recordKey(r),
      };
    });
    const link = (p: number): string => `/who-used-your-data?${new URLSearchParams({ ...(org ? { org } : {}), page: String(p) }).toString()}`;
    return render(reply, 200, 'who-used-your-data.njk', {
      title: 'Who has used your data', rows, total: shown.length, page, pages,
      orgItems: [{ value: '', text: 'All organisations', selected: org === undefined }, ...orgs.map((o) => ({ value: o, text: names.get(o) ?? o, selected: o === org }))],
      pagination: pages > 1 ? { ...(page > 1 ? { previous: { href: link(page - 1) } } : {}), ...(page < pages ? { next: { href: link(page + 1) } } : {}), items: Array.from({ length: pages }, (_, i) => ({ number: i + 1, href: link(i + 1), current: i + 1 === page })) } : undefined,
      unanswered: result.asked.filter((a) => a.error).map((a) => orgOf(names, a.provider)),
    }, req);
  });

  app.get('/who-used-your-data/proof/:key', { preHandler: requireSession }, async (req, reply) => {
    const s = req.portalSession!;
    const key = (req.params as { key: string }).key;
    const result = await track(s.person, { dir: opts.gatewayDir, gatewayUrl: opts.gatewayUrl, client: opts.client, ...(opts.gatewayToken ? { token: opts.gatewayToken } : {}) });
    // Only this person's records are ever looked in: another person's key finds nothing.
    const r = result.records.find((x) => recordKey(x) === key);
    if (!r) return problem(reply, 404, 'Sorry, that record was not found', ['It is not one of the records of uses of your data.'], req);
    reply.header('content-type', 'application/json; charset=utf-8');
    reply.header('content-disposition', `attachment; filename="proof-${r.record.logPosition}-${r.record.part ?? 0}.json"`);
    reply.header('cache-control', 'no-store');
    return reply.send(`${JSON.stringify({ note: 'An access record, its transparency-log entry\'s inclusion proof and the signed, witnessed checkpoint it verifies against: save its proof part alone (jq .proof) and onceonly transparency verify --proof FILE --keys-from GATEWAY_DIR checks it offline; the entry holds the SHA-256 of the record as canonical JSON.', verified: r.verified, check: r.check, record: r.record, proof: r.proof }, null, 2)}\n`);
  });

  // ---- Report a change: to the register that masters the item, once ----------------------------

  type FieldError = { text: string; href: string };
  /** A GOV.UK date input's three fields as an ISO date, or the error to show on it. */
  const dateFrom = (body: Record<string, unknown>, today: string): { date?: string; error?: string } => {
    const part = (k: string): string => (typeof body[k] === 'string' ? (body[k]).trim() : '');
    const [d, m, y] = [part('day'), part('month'), part('year')];
    if (!d && !m && !y) return { error: 'Enter the date of the change' };
    if (!/^\d{1,2}$/.test(d) || !/^\d{1,2}$/.test(m) || !/^\d{4}$/.test(y)) return { error: 'The date must be a real date, like 27 3 2026' };
    const iso = `${y}-${m.padStart(2, '0')}-${d.padStart(2, '0')}`;
    const t = new Date(`${iso}T00:00:00Z`);
    if (Number.isNaN(t.getTime()) || t.toISOString().slice(0, 10) !== iso) return { error: 'The date must be a real date, like 27 3 2026' };
    if (iso > today) return { error: 'The date must be today or in the past' };
    return { date: iso };
  };
  const todayIso = (): string => new Date().toISOString().slice(0, 10);
  const searchAddresses = async (postcode: string): Promise<{ status: number; postcode?: string; addresses?: { id: string; lines: string[]; town: string }[]; message?: string }> => {
    const r = await exchange('GET', `${encodeIdPath(ADDRESSES)}/address-search?postcode=${encodeURIComponent(postcode)}`, 'report-a-change');
    const j = r.json as { postcode?: string; addresses?: { id: string; lines: string[]; town: string }[]; message?: string } | null;
    return { status: r.status, ...(j ?? {}) };
  };
  /** Sends the change; returns the register's answer or the field its refusal names. */
  const sendChange = async (person: string, body: Record<string, unknown>): Promise<{ ok: true; changeId: string; eventId: string } | { ok: false; field: string; message: string }> => {
    const r = await exchange('POST', `${encodeIdPath(POPULATION)}/changes/${person}/changes`, 'report-a-change', body);
    const j = r.json as { changeId?: string; eventId?: string; message?: string; detail?: { field?: string } } | null;
    if (r.status === 201 && j?.changeId && j.eventId) return { ok: true, changeId: j.changeId, eventId: j.eventId };
    return { ok: false, field: j?.detail?.field ?? '', message: r.status >= 500 || r.status === 0 ? 'The register could not record your change now. Try again later.' : (j?.message ?? 'The register could not record this change.') };
  };
  /** Who has been told of the change so far (Tell Us Once delivers within seconds): the access records carrying its event. */
  const toldOf = async (person: string, eventId: string): Promise<string[]> => {
    const names = (await exchangeNames()).members;
    for (let i = 0; i < 10; i++) {
      const result = await track(person, { dir: opts.gatewayDir, gatewayUrl: opts.gatewayUrl, client: opts.client, ...(opts.gatewayToken ? { token: opts.gatewayToken } : {}) });
      const told = [...new Set(result.records.filter((r) => r.record.notice?.eventId === eventId).map((r) => orgOf(names, r.record.client)))];
      if (told.length > 0) return told;
      await new Promise((res) => setTimeout(res, 300));
    }
    return [];
  };
  const done = async (req: FastifyRequest, reply: FastifyReply, what: string, sent: { changeId: string; eventId: string }): Promise<FastifyReply> =>
    render(reply, 200, 'change-done.njk', { title: 'Change reported', what, reference: sent.changeId, told: await toldOf(req.portalSession!.person, sent.eventId) }, req);

  app.get('/report-a-change', { preHandler: requireSession }, (req, reply) => render(reply, 200, 'report-a-change.njk', { title: 'Report a change' }, req));

  app.get('/report-a-change/address', { preHandler: requireSession }, async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    for (const k of Object.keys(q)) if (k !== 'postcode') return problem(reply, 400, 'Sorry, that page does not exist', ['The address has a part this page does not use.'], req);
    const postcode = typeof q['postcode'] === 'string' ? q['postcode'].slice(0, 16) : undefined;
    if (postcode === undefined) return render(reply, 200, 'change-address.njk', { title: 'What is your new postcode?', errors: [] }, req);
    if (postcode.trim() === '') return render(reply, 400, 'change-address.njk', { title: 'What is your new postcode?', errors: [{ text: 'Enter your new postcode', href: '#postcode' }], postcode }, req);
    const found = await searchAddresses(postcode);
    if (found.status === 400 || found.status === 422) return render(reply, 400, 'change-address.njk', { title: 'What is your new postcode?', errors: [{ text: 'Enter a full UK postcode, like LS1 1UR', href: '#postcode' }], postcode }, req);
    if (found.status !== 200) return problem(reply, 502, 'Sorry, addresses cannot be found now', ['The address register did not answer. Try again later.'], req);
    return render(reply, 200, 'change-address-choose.njk', { title: 'Choose your new address', errors: [], postcode: found.postcode, addresses: found.addresses ?? [] }, req);
  });

  app.post('/report-a-change/address', { preHandler: [requireSession, (req, reply, next) => app.csrfProtection(req, reply, next)] }, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const postcode = typeof body['postcode'] === 'string' ? body['postcode'].slice(0, 16) : '';
    const found = postcode ? await searchAddresses(postcode) : { status: 400 };
    if (found.status !== 200) return problem(reply, 400, 'Sorry, your change could not be sent', ['Start again from the postcode.'], req);
    const addresses = found.addresses ?? [];
    const errors: FieldError[] = [];
    // Only an address that was offered for that postcode: a tampered field chooses nothing else.
    const chosen = addresses.find((a) => a.id === body['addressId']);
    if (!chosen) errors.push({ text: 'Select your new address', href: '#addressId' });
    const when = dateFrom(body, todayIso());
    if (when.error) errors.push({ text: when.error, href: '#moved-day' });
    const again = (errs: FieldError[]): FastifyReply => render(reply, 400, 'change-address-choose.njk', { title: 'Choose your new address', errors: errs, postcode: found.postcode, addresses, chosen: body['addressId'], day: body['day'], month: body['month'], year: body['year'] }, req);
    if (errors.length > 0 || !chosen || !when.date) return again(errors);
    const sent = await sendChange(req.portalSession!.person, { type: 'move', addressId: chosen.id, effectiveDate: when.date });
    if (!sent.ok) return again([{ text: sent.message, href: sent.field === 'body.effectiveDate' ? '#moved-day' : '#addressId' }]);
    return done(req, reply, `your move to ${[...chosen.lines, chosen.town].join(', ')}`, sent);
  });

  app.get('/report-a-change/name', { preHandler: requireSession }, (req, reply) => render(reply, 200, 'change-name.njk', { title: 'What is your new name?', errors: [] }, req));

  app.post('/report-a-change/name', { preHandler: [requireSession, (req, reply, next) => app.csrfProtection(req, reply, next)] }, async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const text = (k: string): string => (typeof body[k] === 'string' ? (body[k]).trim() : '');
    const given = text('givenName');
    const family = text('familyName');
    const errors: FieldError[] = [];
    if (!given && !family) errors.push({ text: 'Enter your new given name, family name or both', href: '#givenName' });
    for (const [v, id, label] of [[given, 'givenName', 'Given name'], [family, 'familyName', 'Family name']] as const) {
      if (v.length > 100 || /[\p{Cc}<>]/u.test(v)) errors.push({ text: `${label} must be 100 characters or fewer`, href: `#${id}` });
    }
    const when = dateFrom(body, todayIso());
    if (when.error) errors.push({ text: when.error, href: '#changed-day' });
    const again = (errs: FieldError[]): FastifyReply => render(reply, 400, 'change-name.njk', { title: 'What is your new name?', errors: errs, givenName: given, familyName: family, day: body['day'], month: body['month'], year: body['year'] }, req);
    if (errors.length > 0 || !when.date) return again(errors);
    const sent = await sendChange(req.portalSession!.person, { type: 'name', ...(given ? { givenName: given } : {}), ...(family ? { familyName: family } : {}), effectiveDate: when.date });
    if (!sent.ok) return again([{ text: sent.message, href: sent.field === 'body.effectiveDate' ? '#changed-day' : '#givenName' }]);
    return done(req, reply, 'your change of name', sent);
  });

  // ---- Your permissions: consents at the register, managed on the person's behalf ----------------

  interface ConsentView {
    id: string; controller: string; agreement: string; purpose: { id: string; description: string }; legalBasis: string; items: string[];
    state: string; inForce: boolean; givenAt: string | null; expiresAt: string | null; history: { from: string | null; to: string; at: string; actor: string }[];
  }
  const CONSENTS = `${encodeIdPath(POPULATION)}/person-consents`;
  const PERMISSION_MONTHS = 12;
  const STATE_TAGS: Record<string, { text: string; classes: string }> = {
    given: { text: 'Given', classes: 'govuk-tag--green' }, withdrawn: { text: 'Withdrawn', classes: 'govuk-tag--grey' }, expired: { text: 'Expired', classes: 'govuk-tag--grey' },
    requested: { text: 'Asked for', classes: 'govuk-tag--blue' }, refused: { text: 'Refused', classes: 'govuk-tag--grey' },
  };

  app.get('/permissions', { preHandler: requireSession }, async (req, reply) => {
    const s = req.portalSession!;
    const r = await exchange('GET', CONSENTS, 'citizen-consent-management', undefined, s.person);
    if (r.status !== 200) return problem(reply, 502, 'Sorry, your permissions cannot be shown now', ['The population register did not answer. Try again later.'], req);
    const consents = ((r.json as { consents?: ConsentView[] }).consents ?? []);
    const conf = await heldConf();
    const names = new Map(conf.members.map((m) => [m.id, m.name]));
    const today = todayIso();
    // What the person may give: agreements of this register that release only with consent, in force, not already given.
    const offer = conf.agreements
      .filter((a) => a.consentRequired && a.provider === POPULATION && a.validFrom <= today && today <= a.validUntil && !consents.some((c) => c.agreement === a.id && c.inForce))
      .map((a) => ({ id: a.id, org: orgOf(names, a.client), purpose: a.purpose.description, items: a.items.map((i) => ITEM_LABELS.get(i) ?? i).join(', '), legalBasis: a.legalBasis }));
    const shown = consents.map((c) => ({
      id: c.id, org: orgOf(names, c.controller), purpose: c.purpose.description, items: c.items.map((i) => ITEM_LABELS.get(i) ?? i).join(', '), legalBasis: c.legalBasis,
      tag: STATE_TAGS[c.inForce ? 'given' : c.state === 'given' ? 'expired' : c.state] ?? { text: c.state, classes: '' }, inForce: c.inForce,
      until: c.expiresAt ? longDate(c.expiresAt) : '',
      history: c.history.map((h) => ({ when: `${longDate(h.at)}, ${h.at.slice(11, 16)} UTC`, what: `${h.from ? `${h.from} to ` : ''}${h.to}`, by: h.actor })),
    }));
    return render(reply, 200, 'permissions.njk', { title: 'Your permissions', consents: shown, offer, months: PERMISSION_MONTHS }, req);
  });

  app.post('/permissions/give', { preHandler: [requireSession, (req, reply, next) => app.csrfProtection(req, reply, next)] }, async (req, reply) => {
    const s = req.portalSession!;
    const body = (req.body ?? {}) as Record<string, unknown>;
    const agreement = typeof body['agreement'] === 'string' ? body['agreement'].slice(0, 100) : '';
    const conf = await heldConf();
    const a = conf.agreements.find((x) => x.id === agreement && x.consentRequired && x.provider === POPULATION);
    if (!a) return problem(reply, 400, 'Sorry, that permission cannot be given here', ['Go back to your permissions and choose one from the list.'], req);
    // A year, or to the end of the agreement if that comes first: permission is never open-ended.
    const year = new Date(Date.now() + PERMISSION_MONTHS * 30.5 * 86_400_000);
    const end = new Date(`${a.validUntil}T23:59:59.000Z`);
    const expiresAt = (year < end ? year : end).toISOString();
    const r = await exchange('POST', CONSENTS, 'citizen-consent-management', { agreement: a.id, expiresAt }, s.person);
    if (r.status !== 201) return problem(reply, 502, 'Sorry, your permission could not be recorded', [(r.json as { message?: string } | null)?.message ?? 'Try again later.'], req);
    return reply.redirect('/permissions', 303);
  });

  const CONSENT_ID = /^[A-Za-z0-9-]{1,64}$/;
  /** onceonly's error type in an X-Road error answer (docs/exchange.md: refusals reach the client as 500 with it). */
  const errorType = (json: unknown): string => (json as { onceonly?: { type?: string } } | null)?.onceonly?.type ?? '';
  app.post('/permissions/:id/withdraw', { preHandler: [requireSession, (req, reply, next) => app.csrfProtection(req, reply, next)] }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    if (!CONSENT_ID.test(id)) return problem(reply, 404, 'Sorry, that permission was not found', ['It is not one of your permissions.'], req);
    const r = await exchange('POST', `${CONSENTS}/${id}/withdraw`, 'citizen-consent-management', undefined, req.portalSession!.person);
    if (errorType(r.json) === 'consent_not_found') return problem(reply, 404, 'Sorry, that permission was not found', ['It is not one of your permissions.'], req);
    if (r.status !== 200) return problem(reply, errorType(r.json) === 'invalid_consent_transition' ? 409 : 502, 'Sorry, your permission could not be withdrawn', [(r.json as { message?: string } | null)?.message ?? 'Try again later.'], req);
    return reply.redirect('/permissions', 303);
  });

  app.get('/permissions/:id/receipt', { preHandler: requireSession }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    if (!CONSENT_ID.test(id)) return problem(reply, 404, 'Sorry, that permission was not found', ['It is not one of your permissions.'], req);
    const r = await exchange('GET', `${CONSENTS}/${id}/receipt`, 'citizen-consent-management', undefined, req.portalSession!.person);
    if (r.status !== 200) return problem(reply, errorType(r.json) === 'consent_not_found' ? 404 : 502, 'Sorry, that receipt cannot be shown', ['It is not one of your permissions, or the register did not answer.'], req);
    reply.header('content-type', 'application/json; charset=utf-8');
    reply.header('content-disposition', `attachment; filename="consent-receipt-${id}.json"`);
    reply.header('cache-control', 'no-store');
    return reply.send(`${JSON.stringify(r.json, null, 2)}\n`);
  });

  // ---- Requests waiting for you: previews at the register, decided on the person's behalf ----------

  interface Pending { id: string; client: string; clientName?: string; agreement: string; purpose: { description: string }; legalBasis: string; items: { id: string; label: string }[]; expiresAt: string }
  const PREVIEWS = `${encodeIdPath(POPULATION)}/person-previews`;
  const PREVIEW_ID = /^[A-Za-z0-9_-]{22}$/;

  app.get('/requests', { preHandler: requireSession }, async (req, reply) => {
    const s = req.portalSession!;
    const r = await exchange('GET', PREVIEWS, 'citizen-preview-decisions', undefined, s.person);
    if (r.status !== 200) return problem(reply, 502, 'Sorry, your requests cannot be shown now', ['The population register did not answer. Try again later.'], req);
    const pending = (r.json as { previews?: Pending[] }).previews ?? [];
    const names = (await exchangeNames()).members;
    const granted = new Set(PERSON_ITEMS.map(([i]) => i));
    const shown = [];
    for (const p of pending) {
      // The values themselves, read as the person's own data (an access record like any read), so
      // they see exactly what would be released.
      const ids = p.items.map((i) => i.id).filter((i) => granted.has(i));
      const read = ids.length ? await exchange('GET', `${encodeIdPath(POPULATION)}/people/${s.person}?items=${ids.join(',')}`, 'citizen-own-data') : { status: 200, json: { items: {} } };
      const values = read.status === 200 ? ((read.json as { items?: Record<string, Envelope> }).items ?? {}) : {};
      shown.push({
        id: p.id, org: p.clientName ?? orgOf(names, p.client), purpose: p.purpose.description, legalBasis: p.legalBasis,
        items: p.items.map((i) => ({ label: ITEM_LABELS.get(i.id) ?? i.label, value: values[i.id] ? shownValue(i.id, values[i.id]!.value) || 'None held' : 'Shown at the register only' })),
        until: `${longDate(p.expiresAt)}, ${p.expiresAt.slice(11, 16)} UTC`,
      });
    }
    return render(reply, 200, 'requests.njk', { title: 'Requests waiting for you', requests: shown }, req);
  });

  for (const decision of ['approve', 'decline'] as const) {
    app.post(`/requests/:id/${decision}`, { preHandler: [requireSession, (req, reply, next) => app.csrfProtection(req, reply, next)] }, async (req, reply) => {
      const id = (req.params as { id: string }).id;
      if (!PREVIEW_ID.test(id)) return problem(reply, 404, 'Sorry, that request was not found', ['It is not one of the requests waiting for you.'], req);
      const r = await exchange('POST', `${PREVIEWS}/${id}/${decision}`, 'citizen-preview-decisions', undefined, req.portalSession!.person);
      const type = errorType(r.json);
      if (type === 'invalid_preview_link') return problem(reply, 404, 'Sorry, that request was not found', ['It is not one of the requests waiting for you.'], req);
      if (type === 'preview_already_decided') return problem(reply, 409, 'You have already answered this request', ['Each request is answered once.'], req);
      if (type === 'preview_link_expired') return problem(reply, 410, 'This request has expired', ['The organisation must ask again.'], req);
      if (r.status !== 200) return problem(reply, 502, 'Sorry, your answer could not be recorded', ['Try again later.'], req);
      const d = r.json as { clientName?: string; client: string; validUntil: string };
      const org = d.clientName ?? orgOf((await exchangeNames()).members, d.client);
      return render(reply, 200, 'request-decided.njk', { title: decision === 'approve' ? 'You approved the request' : 'You declined the request', approved: decision === 'approve', org, until: `${longDate(d.validUntil)}, ${d.validUntil.slice(11, 16)} UTC` }, req);
    });
  }

  app.get('/how-we-found-you', { preHandler: requireSession }, async (req, reply) => {
    const s = req.portalSession!;
    const decisions = (await opts.sessions.matchesOf(s.data.issuer, s.data.subject)).map((d) => ({ ...d, when: longDate(d.decidedAt), percent: d.score === null ? 'none' : `${(d.score * 100).toFixed(d.score > 0.999 ? 3 : 1)}%` }));
    return render(reply, 200, 'how-we-found-you.njk', { title: 'How we found your record', decisions }, req);
  });

  app.post('/sign-out', { preHandler: [requireSession, (req, reply, done) => app.csrfProtection(req, reply, done)] }, async (req, reply) => {
    await opts.sessions.end(req.portalToken!);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.redirect('/signed-out', 303);
  });

  app.setNotFoundHandler((req, reply) => problem(reply, 404, 'Page not found', ['If you typed the web address, check it is correct.'], req));
  app.setErrorHandler((err: { statusCode?: number; code?: string }, req, reply) => {
    if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET') return problem(reply, 403, 'Sorry, this form could not be sent', ['The page was open too long, or the form did not come from this service. Go back, refresh the page and try again.'], req);
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err: { code: err.code } }, 'portal error');
    return problem(reply, status, status === 500 ? 'Sorry, there is a problem with the service' : 'Sorry, that request could not be handled', ['Try again later.'], req);
  });
  return app;
}
