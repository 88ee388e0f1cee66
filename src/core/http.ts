/**
 * @module core/http
 * The one way onceonly builds an HTTP server: Fastify with TypeBox schemas, an OpenAPI
 * description at `/openapi.json`, and every failure answered as `{type, message, detail}`
 * (see core/errors) with the matching status. Schema validation failures name the field.
 */
import { Ajv } from 'ajv';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyError } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { OnceOnlyError, isOnceOnlyError } from './errors.ts';
import { createLogger } from './log.ts';

export type App = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

export interface AppOptions {
  /** Title and version for the OpenAPI description. */
  title: string;
  description?: string;
  /** Maximum request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Log requests (default: only warnings and errors, and never bodies or URLs with personal data). */
  logLevel?: string;
  /** Longest URL parameter (default 200); gateways route whole service paths through one. */
  maxParamLength?: number;
  /** Builds the server, e.g. an HTTPS server with client certificates (Fastify `serverFactory`). */
  serverFactory?: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server;
}

/** Turns a Fastify/Ajv validation failure into our typed error, naming the offending field. */
function validationError(err: FastifyError): OnceOnlyError {
  const first = err.validation?.[0];
  const context = err.validationContext ?? 'request';
  let field: string = context;
  if (first) {
    const path = first.instancePath.replace(/^\//, '').replaceAll('/', '.');
    const missing = (first.params as { missingProperty?: string }).missingProperty;
    field = [context, path, missing].filter((s) => s !== undefined && s !== '').join('.');
  }
  return new OnceOnlyError('invalid_request', `${field} ${first?.message ?? 'is invalid'}`, {
    field,
    expected: first?.message ?? 'a value matching the schema',
  });
}

/** Creates a Fastify app with onceonly's error handling and OpenAPI generation registered. */
export async function createApp(opts: AppOptions): Promise<App> {
  // Typed as Fastify's base logger so the app's type does not depend on pino's own.
  const logger: FastifyBaseLogger = createLogger({ level: opts.logLevel ?? 'warn' });
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    // Ids never contain '/', and a request for '/a//b' must not silently become '/a/b'.
    routerOptions: { ignoreDuplicateSlashes: false, ignoreTrailingSlash: false, maxParamLength: opts.maxParamLength ?? 200 },
    ...(opts.serverFactory ? { serverFactory: opts.serverFactory } : {}),
    // Personal data can sit in URLs (a person's id); request logging is ours to control.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { allErrors: false, coerceTypes: 'array', removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: opts.title, version: '0.1.0', ...(opts.description ? { description: opts.description } : {}) },
    },
  });

  app.setErrorHandler((err: FastifyError | OnceOnlyError, req, reply) => {
    let e: OnceOnlyError;
    if (isOnceOnlyError(err)) e = err;
    else if (err.validation) e = validationError(err);
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = new OnceOnlyError('payload_too_large', 'request body is too large', { field: 'body', expected: `at most ${app.initialConfig.bodyLimit} bytes` });
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      e = new OnceOnlyError('unsupported_media_type', 'request body must be application/json', { field: 'content-type', expected: 'application/json' });
    } else if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError) {
      e = new OnceOnlyError('invalid_request', 'request body is not valid JSON', { field: 'body', expected: 'a JSON document' });
    } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      e = new OnceOnlyError('invalid_request', err.message, { field: 'request' });
    } else {
      // Log the internal failure without the request URL or body: either may carry personal data.
      req.log.error({ err: { message: err.message, stack: err.stack }, route: req.routeOptions.url }, 'internal error');
      e = new OnceOnlyError('internal_error', 'internal error');
    }
    void reply.status(e.status).header('content-type', 'application/json; charset=utf-8').send(e.toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    const e = new OnceOnlyError('not_found', 'no such route', { field: 'path', expected: 'a path listed in /openapi.json', method: req.method });
    void reply.status(404).send(e.toJSON());
  });

  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  return app;
}

/** The shared JSON Schema of an error body, for route `response` declarations. */
export const ErrorBody = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    message: { type: 'string' },
    detail: { type: 'object', additionalProperties: true },
  },
  required: ['type', 'message', 'detail'],
} as const;

/**
 * A validator for routes that must not coerce: the server's coerces types (a number where text is expected becomes
 * text, an object becomes a list of one), so a route taking files or models would act on something the caller did not send. Here every value must already have its type.
 */
const strictAjv = new Ajv({ coerceTypes: false, allErrors: false, removeAdditional: false, strict: false });
export const strictValidator = ({ schema }: { schema: object }): ((data: unknown) => boolean) => strictAjv.compile(schema);
