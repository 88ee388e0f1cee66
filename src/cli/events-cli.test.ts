/**
 * `onceonly subscription …` and `onceonly events …` as a subscriber's operator runs them: the
 * real command in a child process, through the subscriber's own gateway, against a real exchange
 * whose population register announces its changes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { IDS, TEST_AGREEMENTS, startExchange, type Exchange } from '../../test/support/exchange.ts';
import { runCli } from '../../test/support/cli.ts';
import { readSettings, setWebhook, writeSettings } from '../gateway/node.ts';
import { newWebhookSecret, type ChangeEvent } from '../events/format.ts';
import { startReceiver, type Receiver } from '../events/receiver.ts';

const REVENUES = 'UK/MUN/LEEDS/revenues';
let ex: Exchange;
let rx: Receiver;

const agreement = (id: string, client: string, items: string[], events: string[]): unknown => ({
  id, client, provider: IDS.population, items, events, purpose: { id: 'change-notification', description: 'Keep records current.' }, legalBasis: 'Synthetic agreement for tests', validFrom: '2020-01-01', validUntil: '2099-12-31',
});

before(async () => {
  ex = await startExchange({ confIntervalMs: 500 });
  await ex.central.addSubsystem({ id: REVENUES });
  await ex.central.assignSubsystem(IDS.leedsGw, REVENUES);
  await ex.central.publishAgreements({ agreements: [...TEST_AGREEMENTS.agreements, agreement('cli-parking', IDS.parking, ['person.givenName', 'person.familyName', 'person.address'], ['move', 'name']), agreement('cli-revenues', REVENUES, ['person.address'], ['move'])] });
  const gro = readSettings(ex.dirs.gro);
  gro.services[IDS.population]!['people']!.events = `${ex.registryUrl}/events`;
  writeSettings(ex.dirs.gro, { ...gro, eventRetry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 100 } });
  const secret = newWebhookSecret();
  rx = await startReceiver({ secret });
  rx.down = true;
  setWebhook(ex.dirs.leeds, IDS.parking, rx.url, { secret, timeoutMs: 2000 });
  await ex.restartGateway('leeds');
  await ex.restartGateway('gro');
});

after(async () => {
  await ex?.stop();
  await rx?.close();
});

const seat = (client: string): string[] => ['--dir', ex.dirs.leeds, '--client', client, '--provider', IDS.population, '--purpose', 'change-notification'];

async function ok(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await runCli(args, ex.root);
  assert.equal(r.status, 0, `onceonly ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  return r;
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('subscribe, keep the interest list, tail a pull feed, read dead letters and redeliver, then unsubscribe', async () => {
  const pull = JSON.parse((await ok(['subscription', 'add', ...seat(REVENUES), '--events', 'move', '--mode', 'pull'])).stdout) as { id: string; mode: string; events: string[] };
  assert.equal(pull.mode, 'pull');
  assert.deepEqual(pull.events, ['move']);
  const push = JSON.parse((await ok(['subscription', 'add', ...seat(IDS.parking), '--events', 'move,name'])).stdout) as { id: string; mode: string };
  assert.equal(push.mode, 'push');
  const listed = JSON.parse((await ok(['subscription', 'list', ...seat(REVENUES)])).stdout) as { subscriptions: { id: string }[] };
  assert.deepEqual(listed.subscriptions.map((s) => s.id), [pull.id], 'each subsystem sees its own subscriptions only');

  assert.match((await ok(['subscription', 'interest', pull.id, ex.people.alice, ...seat(REVENUES)])).stdout, new RegExp(`added ${ex.people.alice}`));
  await ok(['subscription', 'interest', push.id, ex.people.alice, ...seat(IDS.parking)]);

  const home = (await ex.registries.addresses.register({ lines: ['3 Kirkgate'], town: 'Leeds', postcode: 'LS2 7DJ' })).id;
  const { eventId } = await ex.registries.population.change(ex.people.alice, { type: 'move', addressId: home, effectiveDate: new Date().toISOString().slice(0, 10) });

  const tail = await until('the event in the feed', async () => {
    const r = await ok(['events', 'tail', pull.id, ...seat(REVENUES)]);
    return r.stdout.trim() ? r : undefined;
  });
  const lines = tail.stdout.trim().split('\n').map((l) => JSON.parse(l) as ChangeEvent);
  assert.deepEqual(lines.map((e) => [e.id, e.type]), [[eventId, 'move']]);
  assert.deepEqual(Object.keys(lines[0]!.data.items), ['person.address'], 'only the granted item');
  assert.match(tail.stderr, /cursor: 1/);
  const rest = await ok(['events', 'tail', pull.id, '--after', '1', ...seat(REVENUES)]);
  assert.equal(rest.stdout, '', 'nothing after the cursor');

  // The parking system is down: two attempts, then a dead letter.
  const dead = await until('the dead letter', async () => {
    const d = JSON.parse((await ok(['events', 'dead-letters', push.id, ...seat(IDS.parking)])).stdout) as { deadLetters: { eventId: string; attempts: number }[] };
    return d.deadLetters.length > 0 ? d.deadLetters : undefined;
  });
  assert.deepEqual(dead.map((d) => [d.eventId, d.attempts]), [[eventId, 2]]);
  rx.down = false;
  const again = JSON.parse((await ok(['events', 'redeliver', push.id, '--event', eventId, ...seat(IDS.parking)])).stdout) as { redelivered: number };
  assert.equal(again.redelivered, 1);
  await until('the redelivered event', () => Promise.resolve(rx.events.some((e) => e.id === eventId) ? true : undefined));

  assert.match((await ok(['subscription', 'remove', pull.id, ...seat(REVENUES)])).stdout, new RegExp(`removed ${pull.id}`));
  const gone = await runCli(['events', 'tail', pull.id, ...seat(REVENUES)], ex.root);
  assert.notEqual(gone.status, 0, 'a removed subscription has no feed');
});

test('refusals are typed and name the field', async () => {
  const teleport = await runCli(['subscription', 'add', ...seat(REVENUES), '--events', 'teleport'], ex.root);
  assert.notEqual(teleport.status, 0);
  assert.match(teleport.stderr, /invalid_request/);
  assert.match(teleport.stderr, /body\.events/);
  const name = await runCli(['subscription', 'add', ...seat(REVENUES), '--events', 'name'], ex.root);
  assert.notEqual(name.status, 0);
  assert.match(name.stderr, /item_not_covered/, 'a name change carries items the revenues agreement does not grant');
  const badClient = await runCli(['subscription', 'list', '--dir', ex.dirs.leeds, '--client', 'not an id', '--provider', IDS.population, '--purpose', 'change-notification'], ex.root);
  assert.equal(badClient.status, 2);
  assert.match(badClient.stderr, /--client/);
  const noSeat = await runCli(['subscription', 'list', '--client', REVENUES, '--provider', IDS.population, '--purpose', 'change-notification'], ex.root);
  assert.equal(noSeat.status, 2);
  assert.match(noSeat.stderr, /--gateway/);
});
