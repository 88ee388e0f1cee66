/**
 * @module audit/routes
 * The audit over HTTP: `POST /audit` with the extracts' CSV text in a JSON body answers with the
 * report's figures (or, with `?format=html`, the HTML report). The register is read from the
 * store and kept until the store changes, so a series of audits does not re-read it each time.
 *
 * Linking runs on the server's thread: a large extract holds the server for seconds, so this API
 * suits extracts of tens of thousands of rows; the CLI is for larger ones.
 */
import { RegistryRepository } from '../registry/repository.ts';
import { Type } from 'typebox';
import type { Kysely } from 'kysely';
import { ErrorBody, strictValidator, type App } from '../core/http.ts';
import { OnceOnlyError } from '../core/errors.ts';
import type { Database } from '../store/schema.ts';
import { runAudit } from './audit.ts';
import { parseCosts, readExtractText } from './input.ts';
import { registerFromStore, type RegisterSnapshot } from './register.ts';
import { renderHtml } from './report.ts';

export interface AuditRoutesOptions {
  db: Kysely<Database>;
  /** Names the register in reports (no credentials). */
  source?: string;
  /** Largest request body in bytes; default 32 MiB. */
  bodyLimit?: number;
  /** Most candidate pairs one extract may form with the register; default 5,000,000 (about 80 MB while linking). */
  maxPairs?: number;
}

// Unknown properties are refused: a misspelt "treshold" must not leave the default in force unnoticed.
const ExtractSchema = Type.Object({
  agency: Type.String({ minLength: 1, maxLength: 200, description: 'The agency whose copy this is' }),
  csv: Type.String({ description: 'The extract as CSV text: a header line, then one record per line' }),
  idColumn: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The column holding record ids (default: the first)' })),
}, { additionalProperties: false });

const BodySchema = Type.Object({
  extracts: Type.Array(ExtractSchema, { minItems: 1, maxItems: 50 }),
  threshold: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  margin: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  costs: Type.Optional(Type.Object({}, { additionalProperties: true, description: '{currency, perRecord, perItem, perDiscrepancy}; see docs/audit.md' })),
}, { additionalProperties: false });

/** Adds `POST /audit` to `app`. */
export function auditRoutes(app: App, opts: AuditRoutesOptions): void {
  const registers = new RegistryRepository(opts.db);
  let cached: { version: string; snapshot: Promise<RegisterSnapshot> } | null = null;
  const register = async (): Promise<RegisterSnapshot> => {
    const version = await registers.version();
    if (cached?.version !== version) {
      const snapshot = registerFromStore(registers, { source: opts.source ?? 'population register' });
      cached = { version, snapshot };
      snapshot.catch(() => (cached = null));
    }
    return cached.snapshot;
  };

  app.post('/audit', {
    bodyLimit: opts.bodyLimit ?? 32 * 1024 * 1024,
    validatorCompiler: strictValidator,
    schema: {
      tags: ['audit'],
      summary: 'Audit agencies\' extracts against the population register: copies, duplicates, stale and conflicting values, cost',
      description: 'Counts only; no person\'s data is returned. Figures are defined in docs/audit.md.',
      querystring: Type.Object({ format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('html')])) }),
      body: BodySchema,
      response: { 200: Type.Union([Type.Object({}, { additionalProperties: true }), Type.String({ description: 'the HTML report, with ?format=html' })]), 400: ErrorBody, 404: ErrorBody, 413: ErrorBody, 422: ErrorBody },
    },
  }, async (req, reply) => {
    const body = req.body;
    const extracts = body.extracts.map((e, i) => {
      const source = `extracts[${i}] (${e.agency})`;
      try {
        const { table, lines } = readExtractText(e.csv, source, e.idColumn);
        return { agency: e.agency, table, lines };
      } catch (err) {
        if (err instanceof OnceOnlyError) err.detail.field ??= `body.extracts[${i}].csv`;
        throw err;
      }
    });
    const costs = body.costs === undefined ? undefined : parseCosts(body.costs, 'body.costs');
    const snapshot = await register();
    if (snapshot.people.length === 0) throw new OnceOnlyError('not_found', 'the population register is empty', { field: 'register', expected: 'a loaded population register' });
    const { report } = runAudit(snapshot, extracts, {
      maxPairs: opts.maxPairs ?? 5_000_000,
      ...(body.threshold !== undefined ? { threshold: body.threshold } : {}),
      ...(body.margin !== undefined ? { margin: body.margin } : {}),
      ...(costs ? { costs } : {}),
    });
    if (req.query.format === 'html') return reply.type('text/html; charset=utf-8').send(renderHtml(report));
    return report;
  });
}
