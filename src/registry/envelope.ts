/**
 * @module registry/envelope
 * The Myinfo-style envelope of one item, as every read returns it and every change event carries
 * it: the schema shared by the registry's routes and the event format.
 */
import { Type } from 'typebox';

export const EnvelopeSchema = Type.Object(
  {
    value: Type.Unknown(),
    source: Type.String(),
    lastUpdated: Type.Union([Type.String(), Type.Null()]),
    classification: Type.String(),
    unavailable: Type.Optional(Type.Literal(true)),
    reason: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
