/**
 * @module events/receiver
 * A subscriber system's side of a pushed event, as a small HTTP server: it checks the Standard
 * Webhooks signature over the exact body with the subsystem's secret (events/format
 * verifyWebhook), answers 401 to anything that does not verify and 400 to a body that is not an
 * event, drops a duplicate by its event id (delivery is at least once) and hands each new event to
 * `onEvent`. The demo's council and benefits-agency systems are these; a real system does the same
 * checks in its own stack.
 */
import { createServer, type Server } from 'node:http';
import { isOnceOnlyError } from '../core/errors.ts';
import { SeenEvents, verifyWebhook, type ChangeEvent } from './format.ts';

/** A running receiver. */
export interface Receiver {
  url: string;
  /** Every new event taken, in order of arrival. */
  readonly events: ChangeEvent[];
  /** Deliveries that were duplicates of an event already taken. */
  readonly duplicates: string[];
  /** Deliveries refused (signature, format), with the reason. */
  readonly refused: string[];
  /** While set, answers 503 to every delivery (a system that is down for a while). */
  down: boolean;
  /** While set, takes each event but answers 503 (an answer lost on the way back): the sender retries. */
  loseAnswers: boolean;
  /** Subjects whose events it answers 503 for, for now (a record it cannot take yet); others are taken. */
  readonly holdBack: Set<string>;
  /** Deliveries answered 503 because the receiver was down. */
  turnedAway: number;
  close(): Promise<void>;
}

/** Largest body taken, bytes: an event carries a few items. */
const MAX_BODY = 1024 * 1024;

export async function startReceiver(o: { secret: string; host?: string; port?: number; onEvent?: (e: ChangeEvent) => void }): Promise<Receiver> {
  const seen = new SeenEvents();
  const r: Omit<Receiver, 'url' | 'close'> = { events: [], duplicates: [], refused: [], holdBack: new Set(), down: false, loseAnswers: false, turnedAway: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const answer = (status: number, doc: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
      if (req.method !== 'POST') return answer(405, { error: 'POST only' });
      if (r.down) {
        r.turnedAway++;
        return answer(503, { error: 'down for maintenance' });
      }
      let event: ChangeEvent;
      try {
        event = verifyWebhook(o.secret, req.headers, Buffer.concat(chunks));
      } catch (e) {
        const type = isOnceOnlyError(e) ? e.type : 'invalid_request';
        r.refused.push(type);
        return answer(type === 'invalid_signature' ? 401 : 400, { error: type });
      }
      if (r.holdBack.has(event.data.subject)) {
        r.turnedAway++;
        return answer(503, { error: 'this record cannot be taken now' });
      }
      if (!seen.first(event.id)) {
        r.duplicates.push(event.id);
        return answer(200, { duplicate: event.id });
      }
      r.events.push(event);
      o.onEvent?.(event);
      answer(r.loseAnswers ? 503 : 200, { received: event.id });
    });
  });
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return Object.assign<Omit<Receiver, 'url' | 'close'>, Pick<Receiver, 'url' | 'close'>>(r, {
    url: `http://${o.host ?? '127.0.0.1'}:${port}/events`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
