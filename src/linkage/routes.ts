/**
 * @module linkage/routes
 * The linkage engine over HTTP: `POST /linkage/link` links two CSV texts (or deduplicates one)
 * and returns the matching pairs with the trained model; `POST /linkage/explain` returns the
 * waterfall of one pair under a model. Served beside the duplication audit.
 *
 * Linking runs on the server's thread and holds every pair in memory, so the API caps the pairs
 * blocking may form (`maxPairs`, default 5,000,000) and the body size; the CLI is for large files.
 */
import { Type, type Static } from 'typebox';
import { ErrorBody, strictValidator, type App } from '../core/http.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { MAX_COMPARED_CHARS, readTableFromString, refuseLongValues } from './csv.ts';
import { checkModel } from './model-check.ts';
import { explain, KINDS, link, parseBlockingRule } from './engine.ts';
import type { FieldSpec, Model, Table } from './types.ts';
import { shown } from './shown.ts';

export interface LinkageRoutesOptions {
  /** Largest request body in bytes; default 32 MiB. */
  bodyLimit?: number;
  /** Most pairs blocking may form per request; default 5,000,000. */
  maxPairs?: number;
}

const InputSchema = Type.Object({
  csv: Type.String({ description: 'CSV text: a header line, then one record per line' }),
  idColumn: Type.String({ minLength: 1, maxLength: 200, description: 'The column holding record ids' }),
  fields: Type.Optional(Type.Array(Type.Object({ column: Type.String({ minLength: 1, maxLength: 200 }), kind: Type.Union(KINDS.map((k) => Type.Literal(k))) }), { maxItems: 50, description: 'What each column holds; default: recognised from headers and content' })),
});

const LinkBody = Type.Object({
  left: InputSchema,
  right: Type.Optional(InputSchema),
  threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Lowest match probability returned; default 0.5' })),
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 })),
  blocking: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 20, description: 'Rules such as surname:dm+dob:year instead of the defaults' })),
  model: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'A model from an earlier answer: use it instead of training' })),
});

const ExplainBody = Type.Object({
  left: InputSchema,
  right: Type.Optional(InputSchema),
  model: Type.Object({}, { additionalProperties: true, description: 'The model from POST /linkage/link' }),
  leftId: Type.String({ minLength: 1, maxLength: 200 }),
  rightId: Type.String({ minLength: 1, maxLength: 200 }),
});

function table(input: Static<typeof InputSchema>, field: string): Table {
  try {
    const t = readTableFromString(input.csv, field, { idColumn: input.idColumn }).table;
    // Compared values' length bounds the comparisons' time: refuse, naming the cell, before linking.
    refuseLongValues(t, t.columns.filter((c) => c !== input.idColumn), MAX_COMPARED_CHARS);
    return t;
  } catch (e) {
    if (e instanceof OnceOnlyError) e.detail.field ??= `${field}.csv`;
    throw e;
  }
}

/** The model in a request, checked before the engine relies on it (naming the first thing wrong). */
function asModel(v: object, field: string): Model {
  return checkModel(v, { field });
}

function indexOf(t: Table, id: string, field: string): number {
  const i = t.ids.indexOf(id);
  if (i < 0) throw new OnceOnlyError('not_found', `no record with id ${shown(id)} in ${field}`, { field, expected: 'the id of a record in that input' });
  return i;
}

const fieldsOf = (input: Static<typeof InputSchema> | undefined): FieldSpec[] | undefined => input?.fields?.map((f) => ({ column: f.column, kind: f.kind }));

/** Adds `POST /linkage/link` and `POST /linkage/explain` to `app`. */
export function linkageRoutes(app: App, opts: LinkageRoutesOptions = {}): void {
  const bodyLimit = opts.bodyLimit ?? 32 * 1024 * 1024;
  app.post('/linkage/link', {
    bodyLimit,
    validatorCompiler: strictValidator,
    schema: {
      tags: ['linkage'],
      summary: 'Link two CSV texts of person records, or deduplicate one: Fellegi-Sunter trained without labels',
      body: LinkBody,
      response: { 200: Type.Object({}, { additionalProperties: true }), 400: ErrorBody, 404: ErrorBody, 413: ErrorBody, 422: ErrorBody },
    },
  }, (req) => {
    const b = req.body;
    const left = table(b.left, 'left');
    const right = b.right ? table(b.right, 'right') : null;
    const fields = fieldsOf(b.left);
    const rightFields = fieldsOf(b.right);
    const r = link(left, right, {
      maxPairs: opts.maxPairs ?? 5_000_000,
      ...(b.threshold !== undefined ? { threshold: b.threshold } : {}),
      ...(b.seed !== undefined ? { seed: b.seed } : {}),
      ...(b.blocking ? { blocking: b.blocking.map(parseBlockingRule) } : {}),
      ...(b.model ? { model: asModel(b.model, 'model') } : {}),
      ...(fields ? { fields } : {}),
      ...(rightFields ? { rightFields } : {}),
    });
    return {
      mode: right ? 'link' : 'dedupe',
      compared: r.compared,
      blocking: r.blocking,
      columns: r.notes,
      pairs: r.pairs.map((p) => ({ left_id: p.leftId, right_id: p.rightId, match_weight: p.weight, match_probability: p.probability })),
      model: r.model,
    };
  });

  app.post('/linkage/explain', {
    bodyLimit,
    validatorCompiler: strictValidator,
    schema: {
      tags: ['linkage'],
      summary: 'How one pair\'s match weight is made up: each comparison\'s level and contribution (a waterfall)',
      body: ExplainBody,
      response: { 200: Type.Object({}, { additionalProperties: true }), 400: ErrorBody, 404: ErrorBody, 413: ErrorBody, 422: ErrorBody },
    },
  }, (req) => {
    const b = req.body;
    const left = table(b.left, 'left');
    const right = b.right ? table(b.right, 'right') : left;
    const fields = fieldsOf(b.left);
    const rightFields = b.right ? fieldsOf(b.right) : fields;
    return explain(asModel(b.model, 'model'), left, indexOf(left, b.leftId, 'leftId'), right, indexOf(right, b.rightId, 'rightId'), {
      ...(fields ? { fields } : {}),
      ...(rightFields ? { rightFields } : {}),
    });
  });
}
