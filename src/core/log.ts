/**
 * @module core/log
 * pino, with the paths where personal data could appear redacted. The rule is "personal data
 * never goes into logs": code logs ids of requests and routes, never values; the redaction list is
 * the safety net for mistakes.
 */
import pino, { type Logger } from 'pino';

/** Paths censored in every log line, whatever the caller passes. */
export const REDACT_PATHS = [
  'req.url',
  'req.query',
  'req.params',
  'req.body',
  'res.body',
  'body',
  'value',
  'values',
  'person',
  'subject',
  'items.*.value',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-road-userid"]',
];

/** Creates the process logger (to stderr, so stdout stays free for machine-readable output). */
export function createLogger(opts: { level?: string } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env['LOG_LEVEL'] ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    pino.destination(2),
  );
}
