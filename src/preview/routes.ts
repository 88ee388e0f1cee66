/**
 * @module preview/routes
 * The preview pages (EU OOTS "preview space" at the evidence provider): `GET /preview/{token}`
 * shows the person exactly what would be released, to whom and why, and `POST
 * /preview/{token}/approve|decline` records the decision. Plain server-rendered HTML in the style
 * of the GOV.UK Design System (its class names and layout, with a small inline stylesheet instead
 * of govuk-frontend, which this package does not ship yet): no JavaScript at all, buttons are
 * forms, every value is HTML-escaped, and the pages are never cached, framed or sent as a referrer.
 *
 * The link is handed to the agency that asked, so it proves nothing (issue 10, hole 5): the page
 * first asks the person for a credential only they hold (`POST /preview/{token}/sign-in`, until
 * citizen sign-in replaces it), keeps that in a short signed session cookie (HttpOnly,
 * SameSite=Strict, scoped to the preview pages), and only then shows the data and takes the
 * decision, each form with a CSRF token bound to the session. An API caller may instead send the
 * person's credential as `Authorization: Bearer` with the decision.
 *
 * A Fastify plugin: register it with `app.register(previewRoutes, {previews})` so that its HTML
 * error pages and its form-body parser stay inside it.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { safeEqual } from '../core/crypto.ts';
import { Type } from 'typebox';
import type { FastifyReply } from 'fastify';
import type { App } from '../core/http.ts';
import { ERROR_STATUS, isOnceOnlyError, OnceOnlyError } from '../core/errors.ts';
import type { PreviewDecision, PreviewStore, PreviewView } from './preview.ts';

/** Options of {@link previewRoutes}. */
export interface PreviewRoutesOptions {
  previews: PreviewStore;
  /** The person a credential belongs to, or undefined (consent/credentials until citizen sign-in). */
  authenticate: (credential: string | undefined) => string | undefined;
  /** Shown in the page header (default "onceonly"). */
  serviceName?: string;
  /** Signs session cookies; default a random key per process (sessions end with it). */
  sessionKey?: Buffer;
}

/** How long a signed-in preview session lasts: the link's own lifetime. */
const SESSION_MS = 15 * 60 * 1000;
const COOKIE = 'oo_preview';

/** Escapes text for HTML element content and double-quoted attribute values (OWASP XSS rule #1, #2). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

// A subset of GOV.UK Frontend's look: its type scale, colours, focus style and button shapes.
const CSS = `
body{margin:0;font-family:Arial,sans-serif;color:#0b0c0c;background:#fff;font-size:19px;line-height:1.32}
.govuk-skip-link{position:absolute;left:-9999px}.govuk-skip-link:focus{position:static;display:block;padding:10px;background:#fd0}
.govuk-header{background:#0b0c0c;color:#fff;padding:10px 0;border-bottom:10px solid #1d70b8}
.govuk-header__service-name{font-weight:700;font-size:24px}
.govuk-width-container{max-width:960px;margin:0 15px}
@media (min-width:1020px){.govuk-width-container{margin:0 auto}}
.govuk-main-wrapper{padding:40px 0}
.govuk-heading-l{font-size:36px;margin:0 0 30px}.govuk-heading-m{font-size:24px;margin:30px 0 15px}
.govuk-body{margin:0 0 20px}.govuk-hint{color:#505a5f}
.govuk-summary-list{margin:0 0 30px;display:table;width:100%;table-layout:fixed;border-collapse:collapse}
.govuk-summary-list__row{display:table-row;border-bottom:1px solid #b1b4b6}
.govuk-summary-list__key,.govuk-summary-list__value{display:table-cell;padding:10px 20px 10px 0;vertical-align:top;margin:0}
.govuk-summary-list__key{font-weight:700;width:30%}
.govuk-summary-list__value dl{margin:0}.govuk-summary-list__value ul{margin:0;padding-left:20px}
.govuk-button-group{display:flex;gap:15px;flex-wrap:wrap;margin-bottom:20px}
.govuk-button{font:inherit;font-weight:400;border:2px solid transparent;padding:8px 10px 7px;cursor:pointer;color:#fff;background:#00703c;box-shadow:0 2px 0 #002d18}
.govuk-button--secondary{background:#f3f2f1;color:#0b0c0c;box-shadow:0 2px 0 #929191}
.govuk-button--warning{background:#d4351c;box-shadow:0 2px 0 #55150b}
.govuk-button:focus{outline:3px solid transparent;background:#fd0;color:#0b0c0c;box-shadow:0 -2px #fd0,0 4px #0b0c0c}
.govuk-panel{background:#00703c;color:#fff;padding:25px;margin-bottom:30px;text-align:center}
.govuk-panel--declined{background:#0b0c0c}
.govuk-error-summary{border:5px solid #d4351c;padding:20px;margin-bottom:30px}
.govuk-footer{border-top:1px solid #b1b4b6;background:#f3f2f1;padding:25px 0;font-size:16px}
.govuk-form-group{margin-bottom:20px}.govuk-label{display:block;margin-bottom:5px}
.govuk-input{font:inherit;padding:5px;border:2px solid #0b0c0c;width:100%;max-width:20em;box-sizing:border-box}
.govuk-input:focus{outline:3px solid #fd0;box-shadow:inset 0 0 0 2px}
`;

// Content-Security-Policy: nothing but this one stylesheet (by its hash) and posting forms back here.
const CSS_HASH = createHash('sha256').update(CSS).digest('base64');
const CSP = `default-src 'none'; style-src 'sha256-${CSS_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

function page(title: string, body: string, serviceName: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${escapeHtml(title)} – ${escapeHtml(serviceName)}</title>
<style>${CSS}</style>
</head>
<body>
<a href="#main-content" class="govuk-skip-link">Skip to main content</a>
<header class="govuk-header" role="banner"><div class="govuk-width-container"><span class="govuk-header__service-name">${escapeHtml(serviceName)}</span></div></header>
<div class="govuk-width-container">
<main class="govuk-main-wrapper" id="main-content" role="main">
${body}
</main>
</div>
<footer class="govuk-footer" role="contentinfo"><div class="govuk-width-container">This page is served by the register that holds the information, not by the service that asked for it.</div></footer>
</body>
</html>
`;
}

/** Words from an object key: `postTown` becomes "Post town". */
function keyLabel(key: string): string {
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A value as HTML: text escaped, lists as lists, objects as nested description lists. */
export function renderValue(v: unknown, depth = 0): string {
  if (depth > 8) return '…';
  // A registry envelope {value, source, lastUpdated, classification}: show the value itself.
  if (isObj(v) && 'value' in v && 'source' in v && 'classification' in v) {
    if (v['unavailable'] === true) return '<span class="govuk-hint">Not held by the register</span>';
    return renderValue(v['value'], depth);
  }
  if (v === null || v === undefined) return '<span class="govuk-hint">Not held by the register</span>';
  if (typeof v === 'string') return escapeHtml(v);
  if (typeof v === 'number' || typeof v === 'boolean') return escapeHtml(String(v));
  if (Array.isArray(v)) {
    if (v.length === 0) return '<span class="govuk-hint">None</span>';
    return `<ul>${v.map((x) => `<li>${renderValue(x, depth + 1)}</li>`).join('')}</ul>`;
  }
  if (isObj(v)) {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '<span class="govuk-hint">None</span>';
    return `<dl>${entries.map(([k, x]) => `<div><dt class="govuk-hint">${escapeHtml(keyLabel(k))}</dt><dd>${renderValue(x, depth + 1)}</dd></div>`).join('')}</dl>`;
  }
  return typeof v === 'bigint' ? escapeHtml(v.toString()) : '';
}

function when(instant: string): string {
  return `${instant.slice(0, 10)} at ${instant.slice(11, 16)} UTC`;
}

function who(client: string, name: string | undefined): string {
  return name ? `${escapeHtml(name)} (${escapeHtml(client)})` : escapeHtml(client);
}

/** The preview page for a pending request. */
export function renderPreviewPage(v: PreviewView, token: string, serviceName = 'onceonly', csrf = ''): string {
  const rows = v.items
    .map((i) => `<div class="govuk-summary-list__row"><dt class="govuk-summary-list__key">${escapeHtml(i.label)}</dt><dd class="govuk-summary-list__value">${renderValue(i.value)}</dd></div>`)
    .join('\n');
  // Relative actions keep working wherever the lead mounts the plugin (with or without a prefix).
  const action = (what: string): string => `./${encodeURIComponent(token)}/${what}`;
  const body = `<h1 class="govuk-heading-l">Check the information before it is shared</h1>
<p class="govuk-body">${who(v.client, v.clientName)} has asked ${escapeHtml(v.provider)} for the information below about you (${escapeHtml(v.person)}).</p>
<h2 class="govuk-heading-m">Why they are asking</h2>
<p class="govuk-body">${escapeHtml(v.purpose.description)}</p>
<p class="govuk-body govuk-hint">Legal basis: ${escapeHtml(v.legalBasis)}. Data-sharing agreement: ${escapeHtml(v.agreement)}.</p>
<h2 class="govuk-heading-m">What would be shared</h2>
<dl class="govuk-summary-list">
${rows}
</dl>
<p class="govuk-body">Only this information is shared, once, with this request. If you approve, the service has ${v.decisionMinutes} minutes to collect it. If you decline, nothing is shared and the service is told that you declined.</p>
<div class="govuk-button-group">
<form method="post" action="${escapeHtml(action('approve'))}"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}"><button type="submit" class="govuk-button">Approve and share</button></form>
<form method="post" action="${escapeHtml(action('decline'))}"><input type="hidden" name="csrf" value="${escapeHtml(csrf)}"><button type="submit" class="govuk-button govuk-button--secondary">Decline</button></form>
</div>
<p class="govuk-body govuk-hint">You can answer once. This link expires on ${escapeHtml(when(v.expiresAt))}.</p>`;
  return page('Check the information before it is shared', body, serviceName);
}

/**
 * The page a link opens before the person has signed in: nothing about the request but that there
 * is one, and a form for the credential only they hold.
 */
export function renderSignInPage(token: string, serviceName = 'onceonly', wrong = false): string {
  const error = wrong
    ? `<div class="govuk-error-summary" role="alert" aria-labelledby="error-summary-title"><h2 class="govuk-heading-m" id="error-summary-title">There is a problem</h2><p class="govuk-body"><a href="#code">The code is not right for this request</a></p></div>`
    : '';
  const body = `${error}<h1 class="govuk-heading-l">Confirm it is you</h1>
<p class="govuk-body">A service has asked for information about you. Before you see it, confirm it is you with the access code you were given for this service.</p>
<form method="post" action="./${escapeHtml(encodeURIComponent(token))}/sign-in" novalidate>
<div class="govuk-form-group"><label class="govuk-label" for="code">Access code</label>
<input class="govuk-input" id="code" name="code" type="password" autocomplete="off" spellcheck="false"></div>
<button type="submit" class="govuk-button">Continue</button>
</form>
<p class="govuk-body govuk-hint">The service that asked does not have this code and cannot see or answer this request for you.</p>`;
  return page('Confirm it is you', body, serviceName);
}

/** The page after a decision. */
export function renderDecisionPage(d: PreviewDecision, serviceName = 'onceonly'): string {
  const approved = d.state === 'approved';
  const title = approved ? 'You approved sharing' : 'You declined sharing';
  const body = `<div class="govuk-panel${approved ? '' : ' govuk-panel--declined'}"><h1 class="govuk-heading-l">${title}</h1></div>
<p class="govuk-body">${approved
    ? `${who(d.client, d.clientName)} can now collect the information you saw, once, until ${escapeHtml(when(d.validUntil))}. Return to the service to continue.`
    : `Nothing has been shared. ${who(d.client, d.clientName)} will be told that you declined. You may need to give the information to the service yourself.`}</p>`;
  return page(title, body, serviceName);
}

/** A refusal as a page: what went wrong in words, and the error type for support staff. */
export function renderErrorPage(e: OnceOnlyError, serviceName = 'onceonly'): string {
  const titles: Partial<Record<string, string>> = {
    invalid_preview_link: 'This link is not valid',
    preview_link_expired: 'This link has expired',
    preview_already_decided: 'This request has already been answered',
  };
  const title = titles[e.type] ?? (e.status >= 500 ? 'Sorry, there is a problem with the service' : 'This request cannot be shown');
  const body = `<div class="govuk-error-summary" role="alert"><h1 class="govuk-heading-l">${escapeHtml(title)}</h1>
<p class="govuk-body">${escapeHtml(e.status >= 500 ? 'Try again later.' : e.message)}</p>
<p class="govuk-body govuk-hint">Reference: ${escapeHtml(e.type)}</p></div>`;
  return page(title, body, serviceName);
}

function sendHtml(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply
    .status(status)
    .header('content-type', 'text/html; charset=utf-8')
    // The URL is the person's credential and the page holds their data: never store or leak either.
    .header('cache-control', 'no-store, max-age=0')
    .header('pragma', 'no-cache')
    .header('expires', '0')
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('content-security-policy', CSP)
    .send(html);
}

const TokenParams = Type.Object({ token: Type.String({ minLength: 1, maxLength: 200, description: 'the one-time link token (a compact JWS signed by the provider gateway)' }) });

/** Fastify plugin serving the preview pages. */
export function previewRoutes(app: App, opts: PreviewRoutesOptions): Promise<void> {
  const { previews } = opts;
  const serviceName = opts.serviceName ?? 'onceonly';
  const key = opts.sessionKey ?? randomBytes(32);
  const mac = (text: string): string => createHmac('sha256', key).update(text).digest('base64url');
  const linkId = (token: string): string => createHash('sha256').update(token).digest('base64url').slice(0, 22);
  const csrfFor = (token: string, person: string): string => mac(`csrf\n${linkId(token)}\n${person}`);

  /** The person signed in to this link by the session cookie, if the cookie is genuine, current and for this link. */
  const sessionPerson = (req: FastifyRequest, token: string): string | undefined => {
    const header = req.headers.cookie;
    if (typeof header !== 'string') return undefined;
    for (const part of header.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name !== COOKIE) continue;
      const [payload, sig] = rest.join('=').split('.');
      if (!payload || !sig || !safeEqual(sig, mac(payload))) return undefined;
      try {
        const s = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { l?: unknown; p?: unknown; e?: unknown };
        if (s.l !== linkId(token) || typeof s.p !== 'string' || typeof s.e !== 'number' || s.e <= Date.now()) return undefined;
        return s.p;
      } catch {
        return undefined;
      }
    }
    return undefined;
  };

  // Browsers post forms as urlencoded: the sign-in code, or the CSRF token of a decision.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 2048 }, (_req, body, done) => {
    const form = new URLSearchParams(String(body));
    done(null, { code: form.get('code') ?? undefined, csrf: form.get('csrf') ?? undefined });
  });

  app.setErrorHandler((err, req, reply) => {
    let e: OnceOnlyError;
    if (isOnceOnlyError(err)) e = err;
    else if ((err as { validation?: unknown }).validation) e = new OnceOnlyError('invalid_preview_link', 'this preview link is not valid: malformed', { field: 'token' });
    else {
      req.log.error({ err: { message: (err as Error).message } }, 'preview page failed');
      e = new OnceOnlyError('internal_error', 'internal error');
    }
    return sendHtml(reply, ERROR_STATUS[e.type], renderErrorPage(e, serviceName));
  });

  const html = { 200: Type.String({ description: 'text/html page' }) };
  // The form fields, from the urlencoded parser above; an API caller may post no body at all.
  const field = (body: unknown, name: 'code' | 'csrf'): string | undefined => {
    const v = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
    return typeof v === 'string' && v.length <= 512 ? v : undefined;
  };

  app.get('/preview/:token', { schema: { summary: 'The preview page: what would be released, to whom and why, once the person has signed in', tags: ['preview'], params: TokenParams, produces: ['text/html'], response: html } }, async (req, reply) => {
    const person = sessionPerson(req, req.params.token);
    if (person === undefined) {
      // Refuses a bad, expired or decided link as such; a good one shows only the sign-in form.
      await previews.personOf(req.params.token);
      return sendHtml(reply, 200, renderSignInPage(req.params.token, serviceName));
    }
    const v = await previews.view(req.params.token, person);
    return sendHtml(reply, 200, renderPreviewPage(v, req.params.token, serviceName, csrfFor(req.params.token, person)));
  });

  app.post('/preview/:token/sign-in', { schema: { summary: 'The person confirms it is them with their credential', tags: ['preview'], params: TokenParams, produces: ['text/html'], response: { ...html, 303: Type.String({ description: 'signed in: on to the preview page' }), 401: Type.String({ description: 'text/html page: the code is not right' }) } } }, async (req, reply) => {
    const token = req.params.token;
    const expected = await previews.personOf(token);
    const person = opts.authenticate(field(req.body, 'code'));
    // A wrong code and another person's code look the same: the page tells nobody whose link it is.
    if (person === undefined || person !== expected) return sendHtml(reply, 401, renderSignInPage(token, serviceName, true));
    const payload = Buffer.from(JSON.stringify({ l: linkId(token), p: person, e: Date.now() + SESSION_MS })).toString('base64url');
    const secure = (req.raw.socket as { encrypted?: boolean }).encrypted === true ? '; Secure' : '';
    return reply
      .status(303)
      .header('set-cookie', `${COOKIE}=${payload}.${mac(payload)}; Path=/preview/; Max-Age=${SESSION_MS / 1000}; HttpOnly; SameSite=Strict${secure}`)
      .header('location', `./${encodeURIComponent(token)}`)
      .header('cache-control', 'no-store')
      .send('');
  });

  for (const what of ['approve', 'decline'] as const) {
    app.post(`/preview/:token/${what}`, { schema: { summary: `The person ${what}s the release`, tags: ['preview'], params: TokenParams, produces: ['text/html'], response: html } }, async (req, reply) => {
      const token = req.params.token;
      // An API caller authenticates with the person's credential; a browser with its session and the form's CSRF token.
      let person = opts.authenticate(/^Bearer (\S{1,512})$/i.exec(req.headers.authorization ?? '')?.[1]);
      if (person === undefined) {
        const fromSession = sessionPerson(req, token);
        const csrf = field(req.body, 'csrf');
        if (fromSession !== undefined && typeof csrf === 'string' && safeEqual(csrf, csrfFor(token, fromSession))) person = fromSession;
      }
      if (person === undefined) throw new OnceOnlyError('unauthorized', 'only the person this request is about can answer it: confirm it is you first', { field: 'headers.authorization', expected: 'the person\'s signed-in session, or Authorization: Bearer <their credential>' });
      const d = what === 'approve' ? await previews.approve(token, person) : await previews.decline(token, person);
      return sendHtml(reply, 200, renderDecisionPage(d, serviceName));
    });
  }
  return Promise.resolve();
}
