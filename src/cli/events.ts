/**
 * @module cli/events
 * Tell Us Once from a subscriber system's seat (docs/events.md): `onceonly subscription
 * add|list|remove|interest` and `onceonly events tail|dead-letters|redeliver` speak X-Road REST
 * through the organisation's own gateway, as its system would, to the register's built-in
 * `subscriptions` and `events` services. `onceonly gateway webhook` (cli/gateway) sets where pushed
 * events go.
 */
import type { Command } from 'commander';
import { request } from 'undici';
import { OnceOnlyError, type ErrorType } from '../core/errors.ts';
import { encodeIdPath, formatClientId, parseClientId, parseSubsystemId, formatSubsystemId } from '../core/ids.ts';
import { readSettings } from '../gateway/node.ts';
import { FEED_SERVICE, SUBSCRIPTIONS_SERVICE } from '../gateway/events.ts';
import { action, intOption } from './common.ts';

interface Seat {
  gateway?: string;
  dir?: string;
  client: string;
  provider: string;
  purpose: string;
  agreement?: string;
}

function base(o: Seat): string {
  if (o.gateway) return o.gateway.replace(/\/$/, '');
  if (o.dir) {
    const s = readSettings(o.dir);
    return `${s.client.tls ? 'https' : 'http'}://${s.client.host}:${s.client.port}`;
  }
  throw new OnceOnlyError('invalid_request', 'say which gateway to speak through', { field: '--gateway', expected: '--gateway URL of your gateway\'s client side, or --dir with its directory' });
}

/** One r1 call as the subscriber system; a refusal becomes the gateway's typed error. */
async function call(o: Seat, method: string, service: string, path: string, body?: unknown): Promise<{ status: number; doc: unknown }> {
  const client = formatClientId(parseClientId(o.client, '--client'));
  const provider = formatSubsystemId(parseSubsystemId(o.provider, '--provider'));
  const credential = process.env['ONCEONLY_CLIENT_TOKEN'];
  const res = await request(`${base(o)}/r1/${encodeIdPath(provider)}/${service}${path}`, {
    method: method as 'GET',
    headers: {
      accept: 'application/json', 'x-road-client': encodeIdPath(client), 'x-onceonly-purpose': o.purpose, ...(o.agreement ? { 'x-onceonly-agreement': o.agreement } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(credential ? { authorization: `Bearer ${credential}` } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : null,
  });
  const text = await res.body.text();
  let doc: unknown = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    throw new OnceOnlyError('service_failed', `the gateway answered ${res.statusCode} with something that is not JSON`, { field: '--gateway', expected: 'the client side of an onceonly gateway' });
  }
  if (res.statusCode >= 300) {
    const e = doc as { type?: string; message?: string; onceonly?: { type?: ErrorType; detail?: Record<string, unknown> } } | null;
    throw new OnceOnlyError(e?.onceonly?.type ?? 'service_failed', `${e?.type ?? res.statusCode}: ${e?.message ?? text.slice(0, 200)}`, e?.onceonly?.detail ?? {});
  }
  return { status: res.statusCode, doc };
}

function seatOptions(c: Command): Command {
  return c
    .option('--gateway <url>', 'your gateway\'s client side, e.g. http://127.0.0.1:8110')
    .option('--dir <dir>', 'or your gateway\'s directory (its client port is read from gateway.json)')
    .requiredOption('--client <subsystem>', 'your subscribing subsystem, e.g. UK/MUN/LEEDS/parking')
    .requiredOption('--provider <subsystem>', 'the register, e.g. UK/GOV/GRO/population')
    .requiredOption('--purpose <id>', 'the purpose of the agreement the subscription runs under')
    .option('--agreement <id>', 'the agreement, when the purpose names more than one');
}

const print = (doc: unknown): void => void process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);

/** Registers `onceonly subscription …` and `onceonly events …`. */
export function registerEventCommands(program: Command): void {
  const sub = program.command('subscription').description('Tell Us Once: subscribe to a register\'s changes, through your gateway');
  seatOptions(sub.command('add').description('subscribe to kinds of change; prints the subscription'))
    .requiredOption('--events <kinds>', 'comma-separated kinds of change, e.g. move,name')
    .option('--mode <mode>', 'push (to your gateway\'s webhook) or pull (a feed you read)', 'push')
    .action(action(async (o: Seat & { events: string; mode: string }) => {
      print((await call(o, 'POST', SUBSCRIPTIONS_SERVICE, '', { events: o.events.split(',').map((x) => x.trim()).filter(Boolean), mode: o.mode })).doc);
    }));
  seatOptions(sub.command('list').description('your subscriptions at the register')).action(action(async (o: Seat) => print((await call(o, 'GET', SUBSCRIPTIONS_SERVICE, '')).doc)));
  seatOptions(sub.command('remove').description('end a subscription: nothing more is delivered under it').argument('<id>', 'subscription id'))
    .action(action(async (id: string, o: Seat) => {
      await call(o, 'DELETE', SUBSCRIPTIONS_SERVICE, `/${encodeURIComponent(id)}`);
      process.stdout.write(`removed ${id}\n`);
    }));
  seatOptions(sub.command('interest').description('add the people you serve to the interest list (or --remove them); each addition is checked like a read').argument('<id>', 'subscription id').argument('<subjects...>', 'register ids'))
    .option('--remove', 'remove them instead')
    .action(action(async (id: string, subjects: string[], o: Seat & { remove?: boolean }) => {
      for (const s of subjects) {
        await call(o, o.remove ? 'DELETE' : 'PUT', SUBSCRIPTIONS_SERVICE, `/${encodeURIComponent(id)}/interests/${encodeURIComponent(s)}`);
        process.stdout.write(`${o.remove ? 'removed' : 'added'} ${s}\n`);
      }
    }));

  const events = program.command('events').description('Tell Us Once: read a subscription\'s events and its dead letters');
  seatOptions(events.command('tail').description('print a pull subscription\'s events as JSON lines, from a cursor; --follow waits for more').argument('<id>', 'subscription id'))
    .option('--after <n>', 'cursor: the sequence number of the last event already read', intOption('after', 0, Number.MAX_SAFE_INTEGER), 0)
    .option('--follow', 'keep reading (every second) until interrupted')
    .action(action(async (id: string, o: Seat & { after: number; follow?: boolean }) => {
      let after = o.after;
      for (;;) {
        const { doc } = await call(o, 'GET', FEED_SERVICE, `/${encodeURIComponent(id)}?after=${after}&limit=100`);
        const page = doc as { events: unknown[]; next: number };
        for (const e of page.events) process.stdout.write(`${JSON.stringify(e)}\n`);
        after = page.next;
        if (page.events.length === 100) continue;
        if (!o.follow) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      process.stderr.write(`cursor: ${after}\n`);
    }));
  seatOptions(events.command('dead-letters').description('events the register gave up pushing to you after the last attempt').argument('<id>', 'subscription id'))
    .action(action(async (id: string, o: Seat) => print((await call(o, 'GET', SUBSCRIPTIONS_SERVICE, `/${encodeURIComponent(id)}/dead-letters`)).doc)));
  seatOptions(events.command('redeliver').description('put dead letters back in the queue (all, or those --event ids)').argument('<id>', 'subscription id'))
    .option('--event <ids...>', 'event ids to redeliver')
    .action(action(async (id: string, o: Seat & { event?: string[] }) => print((await call(o, 'POST', SUBSCRIPTIONS_SERVICE, `/${encodeURIComponent(id)}/redeliver`, o.event ? { eventIds: o.event } : {})).doc)));
}
