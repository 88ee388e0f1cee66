/**
 * @module identity/routes
 * `POST /identity/match`: the population register's identity-matching service, mounted on the
 * register's own server (behind its gateway credential) and offered on the exchange as the
 * `identity-match` service to the citizen portal only, under its agreement. The answer names the
 * person only on a confident match; otherwise it says none or ambiguous, with the score and which
 * comparisons agreed, and nothing of any candidate's values.
 */
import { Type } from 'typebox';
import { ErrorBody, type App } from '../core/http.ts';
import { parseClaim, type IdentityMatcher } from './match.ts';

const Decision = Type.Object({
  outcome: Type.Union([Type.Literal('matched'), Type.Literal('none'), Type.Literal('ambiguous')]),
  person: Type.Union([Type.String(), Type.Null()]),
  score: Type.Union([Type.Number(), Type.Null()]),
  fields: Type.Array(Type.Object({ field: Type.String(), level: Type.String(), agreed: Type.Boolean() })),
  candidates: Type.Integer(),
});

export function identityRoutes(app: App, matcher: IdentityMatcher): void {
  app.post('/identity/match', {
    schema: {
      tags: ['identity'],
      summary: 'Match an identity vouched for by an identity provider to one person of the register',
      body: Type.Unknown(),
      response: { 200: Decision, 400: ErrorBody, 503: ErrorBody },
    },
  }, (req) => matcher.match(parseClaim(req.body)));
}
