/**
 * @module catalogue/routes
 * The catalogue's read-only HTTP face: the catalogue of items and the register of agreements are
 * public (anyone may see who masters what and who may read it; that openness is part of the
 * trust model), and a form check anyone can run before publishing a form.
 */
import { Type, type TSchema } from 'typebox';
import { ErrorBody, createApp, type App } from '../core/http.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { parseIsoDate, today } from '../core/dates.ts';
import { formatSubsystemId, parseSubsystemId } from '../core/ids.ts';
import { DEFAULT_CATALOGUE_FILE, loadCatalogue, type Catalogue } from './catalogue.ts';
import { DEFAULT_AGREEMENTS_FILE, isInForce, loadAgreements, type AgreementRegister } from './agreements.ts';
import { checkForm, parseForm } from './forms.ts';

/** What the routes serve. */
export interface CatalogueRoutesOptions {
  catalogue: Catalogue;
  agreements: AgreementRegister;
}

// Our domain objects hold readonly arrays; an immutable array schema lets handlers return them as they are.
const List = <T extends TSchema>(t: T) => Type.Immutable(Type.Array(t));

const SubsystemIdText = Type.String({ description: 'INSTANCE/CLASS/MEMBER/SUBSYSTEM, e.g. UK/GOV/GRO/population' });
const DateText = Type.String({ description: 'calendar date, YYYY-MM-DD' });

const ItemBody = Type.Object({
  id: Type.String({ description: 'stable item id, e.g. person.birthDate' }),
  label: Type.String(),
  synonyms: List(Type.String()),
  description: Type.Optional(Type.String()),
  schema: Type.Object({}, { additionalProperties: true, description: 'JSON Schema (2020-12) of the value' }),
  classification: Type.Union([Type.Literal('public'), Type.Literal('personal'), Type.Literal('special-category')]),
  owner: SubsystemIdText,
});

const AgreementBody = Type.Object({
  id: Type.String(),
  client: SubsystemIdText,
  provider: SubsystemIdText,
  items: List(Type.String()),
  purpose: Type.Object({ id: Type.String(), description: Type.String() }),
  legalBasis: Type.String(),
  validFrom: DateText,
  validUntil: DateText,
  consentRequired: Type.Boolean(),
  previewRequired: Type.Boolean(),
  events: List(Type.String()),
});

const FindingBody = Type.Object({
  questionId: Type.String(),
  label: Type.String(),
  item: Type.String(),
  itemLabel: Type.String(),
  classification: Type.String(),
  certainty: Type.Union([Type.Literal('explicit'), Type.Literal('probably')]),
  matched: Type.Optional(Type.String()),
  owner: SubsystemIdText,
  agreement: Type.Union([Type.String(), Type.Null()]),
  advice: Type.String(),
});

const ReportBody = Type.Object({
  form: Type.String(),
  title: Type.String(),
  service: SubsystemIdText,
  date: DateText,
  ok: Type.Boolean({ description: 'true when no question re-collects data a registry masters' }),
  questions: Type.Integer(),
  findings: List(FindingBody),
});

/** The documented shape of a form; the body is checked by the form parser, which names fields precisely. */
const FormDocument = Type.Object(
  {
    id: Type.String(),
    title: Type.String(),
    service: SubsystemIdText,
    description: Type.Optional(Type.String()),
    questions: Type.Array(
      Type.Object({
        id: Type.String(),
        label: Type.String(),
        item: Type.Optional(Type.String({ description: 'catalogue item id this question collects' })),
        hint: Type.Optional(Type.String()),
      }),
    ),
  },
  { description: 'a form definition (see docs/catalogue.md)' },
);

// The body's schema documents the form; the parser checks it, so that a malformed form is a
// 422 invalid_file naming every problem rather than Fastify's 400 for the first one.
const acceptBody = () => (data: unknown) => ({ value: data });

/** Adds the catalogue, agreement register and form-check routes to `app`. */
export function catalogueRoutes(app: App, opts: CatalogueRoutesOptions): void {
  const { catalogue, agreements } = opts;

  app.get(
    '/catalogue/items',
    { schema: { summary: 'List the data items of the catalogue', tags: ['catalogue'], response: { 200: List(ItemBody) } } },
    () => catalogue.list(),
  );

  app.get(
    '/catalogue/items/:id',
    {
      schema: {
        summary: 'One data item: its schema, classification and owner',
        tags: ['catalogue'],
        params: Type.Object({ id: Type.String() }),
        response: { 200: ItemBody, 404: ErrorBody },
      },
    },
    (req) => {
      const item = catalogue.get(req.params.id);
      if (!item) {
        throw new OnceOnlyError('not_found', `no item "${req.params.id}" in the catalogue`, {
          field: 'params.id',
          expected: 'an item id listed at GET /catalogue/items',
        });
      }
      return item;
    },
  );

  app.get(
    '/agreements',
    {
      schema: {
        summary: 'The public register of data-sharing agreements',
        tags: ['agreements'],
        querystring: Type.Object({
          client: Type.Optional(SubsystemIdText),
          provider: Type.Optional(SubsystemIdText),
          inForce: Type.Optional(Type.String({ description: 'only agreements in force on this date, YYYY-MM-DD' })),
        }),
        response: { 200: List(AgreementBody), 400: ErrorBody },
      },
    },
    (req) => {
      const { client, provider, inForce } = req.query;
      // Parsed by core so that a bad id or date is the same typed error here as everywhere else.
      const c = client === undefined ? undefined : formatSubsystemId(parseSubsystemId(client, 'query.client'));
      const p = provider === undefined ? undefined : formatSubsystemId(parseSubsystemId(provider, 'query.provider'));
      const d = inForce === undefined ? undefined : parseIsoDate(inForce, 'query.inForce');
      return agreements
        .list()
        .filter((a) => (c === undefined || a.client === c) && (p === undefined || a.provider === p) && (d === undefined || isInForce(a, d)));
    },
  );

  app.get(
    '/agreements/:id',
    {
      schema: {
        summary: 'One data-sharing agreement',
        tags: ['agreements'],
        params: Type.Object({ id: Type.String() }),
        response: { 200: AgreementBody, 404: ErrorBody },
      },
    },
    (req) => {
      const a = agreements.get(req.params.id);
      if (!a) {
        throw new OnceOnlyError('not_found', `no agreement "${req.params.id}" in the register`, {
          field: 'params.id',
          expected: 'an agreement id listed at GET /agreements',
        });
      }
      return a;
    },
  );

  app.post(
    '/catalogue/check',
    {
      schema: {
        summary: 'List the questions of a form that re-collect data a registry masters',
        tags: ['catalogue'],
        querystring: Type.Object({ date: Type.Optional(Type.String({ description: 'check agreements in force on this date (default today), YYYY-MM-DD' })) }),
        body: FormDocument,
        response: { 200: ReportBody, 400: ErrorBody, 422: ErrorBody },
      },
      validatorCompiler: acceptBody,
    },
    (req) => {
      const query = req.query as { date?: unknown };
      const date = query.date === undefined ? today() : parseIsoDate(query.date, 'query.date');
      const form = parseForm(req.body, 'request body', catalogue);
      return checkForm(form, catalogue, agreements, date);
    },
  );
}

/** Options of {@link createCatalogueServer}: loaded objects win over files; files default to config/. */
export interface CatalogueServerOptions {
  catalogue?: Catalogue;
  agreements?: AgreementRegister;
  catalogueFile?: string;
  agreementsFile?: string;
  logLevel?: string;
}

/** Creates a ready app serving the catalogue routes (and /openapi.json), for the demo. */
export async function createCatalogueServer(opts: CatalogueServerOptions = {}): Promise<App> {
  const catalogue = opts.catalogue ?? loadCatalogue(opts.catalogueFile ?? DEFAULT_CATALOGUE_FILE);
  const agreements = opts.agreements ?? loadAgreements(opts.agreementsFile ?? DEFAULT_AGREEMENTS_FILE, catalogue);
  const app = await createApp({
    title: 'onceonly catalogue',
    description: 'The catalogue of data items, the register of data-sharing agreements, and the duplicate-collection check.',
    ...(opts.logLevel !== undefined ? { logLevel: opts.logLevel } : {}),
  });
  catalogueRoutes(app, { catalogue, agreements });
  await app.ready();
  return app;
}
