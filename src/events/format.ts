/**
 * @module events/format
 * What a subscriber receives (Tell Us Once): one change event, the same document by webhook and
 * in the pull feed, with its JSON Schema (docs/events.md), and the Standard Webhooks signature
 * scheme (standardwebhooks.com: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
 * HMAC-SHA256 of "id.timestamp.body">`) a subscriber's gateway signs each push with and a
 * subscriber's system checks with {@link verifyWebhook}.
 */
import { randomBytes } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { OnceOnlyError } from '../core/errors.ts';
import { checker } from '../core/schema.ts';
import { EnvelopeSchema } from '../registry/envelope.ts';

/** One change event for one subscription. */
export const ChangeEventSchema = Type.Object(
  {
    /** Stable across retries, redeliveries and the pull feed: what a consumer dedupes on. */
    id: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', description: 'The event id, the same for every delivery of this change' }),
    type: Type.String({ description: 'The kind of change: move, name, death, correction, …' }),
    /** When the register recorded the change (UTC). */
    timestamp: Type.String({ description: 'When the register recorded the change, UTC ISO 8601' }),
    data: Type.Object(
      {
        provider: Type.String({ description: 'The register subsystem that masters the items' }),
        subscription: Type.String({ description: 'The subscription it was delivered under' }),
        sequence: Type.Integer({ minimum: 1, description: 'Its position in the subscription\'s feed (the pull cursor)' }),
        subject: Type.String({ description: 'The register id of the person (or record) the change is about' }),
        changeId: Type.String(),
        effectiveDate: Type.String({ description: 'When the change happened in the world, YYYY-MM-DD' }),
        agreement: Type.String(),
        purpose: Type.String(),
        items: Type.Record(Type.String(), EnvelopeSchema, { description: 'Only the items the agreement grants, as the register recorded them with this change' }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type ChangeEvent = Static<typeof ChangeEventSchema>;

export const checkChangeEvent = checker(ChangeEventSchema, 'event', 'invalid_request');

/** The JSON Schema (2020-12) of an event, for subscribers' own validators. */
export function changeEventJsonSchema(): Record<string, unknown> {
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', $id: 'https://onceonly.example/schemas/change-event.json', title: 'onceonly change event', ...JSON.parse(JSON.stringify(ChangeEventSchema)) as Record<string, unknown> };
}

/** A new webhook secret in Standard Webhooks' form: `whsec_` and base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The Standard Webhooks headers of one delivery. */
export function signWebhook(secret: string, id: string, body: string, at: Date): Record<string, string> {
  const wh = new Webhook(secret);
  return { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': wh.sign(id, at, body) };
}

/**
 * The receiver's check (for subscribers' systems, and the demo's receivers): the signature over
 * the exact body bytes with the shared secret, a timestamp within five minutes (the Standard
 * Webhooks tolerance, against replays), and the body an event of this format. Throws a typed
 * `invalid_signature` or `invalid_request`; returns the event.
 */
export function verifyWebhook(secret: string, headers: Record<string, string | string[] | undefined>, body: string | Buffer): ChangeEvent {
  const h: Record<string, string> = {};
  for (const k of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
    const v = headers[k];
    if (typeof v !== 'string' || v === '') throw new OnceOnlyError('invalid_signature', `the ${k} header is missing`, { field: `headers.${k}`, expected: 'Standard Webhooks headers' });
    h[k] = v;
  }
  const text = typeof body === 'string' ? body : body.toString('utf8');
  try {
    new Webhook(secret).verify(text, h);
  } catch (e) {
    if (e instanceof WebhookVerificationError) throw new OnceOnlyError('invalid_signature', `the webhook does not verify: ${e.message}`, { field: 'headers.webhook-signature' });
    throw e;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new OnceOnlyError('invalid_request', 'the webhook body is not JSON', { field: 'body' });
  }
  const event = checkChangeEvent(parsed);
  // The id header names the event it carries: a signed body cannot be replayed under another id.
  if (event.id !== h['webhook-id']) throw new OnceOnlyError('invalid_request', 'webhook-id is not the id of the event in the body', { field: 'headers.webhook-id', expected: event.id });
  return event;
}

/**
 * A consumer's duplicate filter: delivery is at least once, so the same event can arrive twice
 * (a retry after a lost answer, a redelivery on request); its id stays the same. Keeps the last
 * `capacity` ids in memory; a consumer keeping them durably does the same with its own store.
 */
export class SeenEvents {
  readonly #ids = new Set<string>();
  readonly #capacity: number;

  constructor(capacity = 100_000) {
    this.#capacity = capacity;
  }

  /** True the first time an id is seen. */
  first(id: string): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.#capacity) this.#ids.delete(this.#ids.values().next().value!);
    return true;
  }
}
