/**
 * @module portal/views
 * The GOV.UK Design System's own Nunjucks templates and macros (the govuk-frontend package),
 * with the portal's pages beside them, and the package's compiled CSS, JavaScript and assets,
 * served from the package itself (no CDN).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';

const require = createRequire(import.meta.url);
/** govuk-frontend's dist folder (templates under `govuk/`, assets under `govuk/assets`). */
export const GOVUK_DIST = join(dirname(require.resolve('govuk-frontend/package.json')), 'dist');
export const VIEWS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'views');

/** A Nunjucks environment over the portal's views and the Design System's templates, escaping by default. */
export function viewEnvironment(): nunjucks.Environment {
  return new nunjucks.Environment(new nunjucks.FileSystemLoader([VIEWS_DIR, GOVUK_DIST], { noCache: false }), { autoescape: true, throwOnUndefined: false });
}

/**
 * The CSP hash of the one inline script the Design System's page template carries (it marks the
 * body `js-enabled` before anything paints). The Design System documents allowing exactly that
 * script by its hash; it is read from the installed template, so an upgrade keeps it right, and
 * no other inline script can run.
 */
export function templateScriptHash(): string {
  const text = readFileSync(join(GOVUK_DIST, 'govuk', 'template.njk'), 'utf8');
  const m = /%\}>(document\.body\.className[^<]+)<\/script>/.exec(text);
  if (!m) throw new Error('govuk-frontend template.njk: its inline script was not found');
  return `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`;
}

const TYPES: Record<string, string> = { '.css': 'text/css', '.js': 'text/javascript', '.mjs': 'text/javascript', '.woff2': 'font/woff2', '.woff': 'font/woff', '.png': 'image/png', '.svg': 'image/svg+xml', '.ico': 'image/x-icon', '.json': 'application/json' };

/**
 * Serves the Design System's stylesheet and assets to a plain node:http server (the demo issuer's
 * pages); a path that leaves the assets folder, or a type not listed, is not found.
 */
export function serveAsset(path: string, res: ServerResponse): void {
  const assets = join(GOVUK_DIST, 'govuk', 'assets');
  const stylesheet = join(GOVUK_DIST, 'govuk', 'govuk-frontend.min.css');
  let file = '';
  let ok = false;
  try {
    file = path === '/stylesheets/govuk-frontend.min.css' ? stylesheet : normalize(join(assets, decodeURIComponent(path.slice('/assets/'.length))));
    ok = TYPES[/\.[a-z0-9]+$/.exec(file)?.[0] ?? ''] !== undefined && (file === stylesheet || file.startsWith(assets + sep)) && statSync(file).isFile();
  } catch {
    ok = false;
  }
  const type = TYPES[/\.[a-z0-9]+$/.exec(file)?.[0] ?? ''];
  if (!ok) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
    return;
  }
  res.writeHead(200, { 'content-type': type!, 'cache-control': 'public, max-age=3600', 'x-content-type-options': 'nosniff' });
  res.end(readFileSync(file));
}
