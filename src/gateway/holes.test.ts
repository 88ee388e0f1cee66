/**
 * Regression tests for the holes a hostile test found in the exchange (issue 10), each over the
 * real exchange (central, two gateways with mutual TLS, the population register): reading the past
 * beyond the agreement, a registration token taking over a provider, a registry answer smuggling
 * extra fields, an unauthenticated local process speaking as any subsystem, a preview approved by
 * the agency that asked, and a refusal missing from the client's message log.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { IDS, TEST_AGREEMENTS, freePort, startExchange, type Exchange } from '../../test/support/exchange.ts';
import { createRegistries } from '../registry/registries.ts';
import { loadCatalogue } from '../catalogue/catalogue.ts';
import { addService, initGateway, startGateway, type RunningGateway } from './node.ts';

const PURPOSE = { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'resident-parking-permit' };

interface Answer { status: number; headers: Record<string, string>; body: string }

/** The X-Road error type and onceonly's finer reason of a refusal. */
function refusal(r: Answer): { xroad: string | undefined; reason: string; detail: Record<string, unknown> } {
  const b = JSON.parse(r.body) as { type: string; detail?: unknown; onceonly?: { type: string; detail: Record<string, unknown> } };
  return { xroad: r.headers['x-road-error'], reason: b.onceonly?.type ?? b.type, detail: b.onceonly?.detail ?? (b.detail as Record<string, unknown> | undefined) ?? {} };
}

let ex: Exchange;
/** A person who lived at 1 Old Street from 2015 and moved to 2 New Street today. */
let carol: string;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe('holes found by a hostile test of the exchange', () => {
  const servers: Server[] = [];
  before(async () => {
    ex = await startExchange();
    await ex.central.publishAgreements({
      agreements: [
        ...TEST_AGREEMENTS.agreements,
        // Residence history, granted per item and bounded in time.
        { id: 'leeds-residence-history', client: IDS.parking, provider: IDS.population, items: ['person.address'], history: [{ item: 'person.address', years: 20 }], purpose: { id: 'residence-history', description: 'Check how long an applicant has lived in the zone.' }, legalBasis: 'Synthetic agreement for tests', validFrom: '2020-01-01', validUntil: '2099-12-31' },
        { id: 'leeds-age-check', client: IDS.parking, provider: IDS.population, items: ['person.birthDate'], purpose: { id: 'age-check', description: 'Check an applicant is over 16.' }, legalBasis: 'Synthetic agreement for tests', validFrom: '2020-01-01', validUntil: '2099-12-31', previewRequired: true },
      ],
    });
    // Carol was registered in 2015 at 1 Old Street (a register with its clock in 2015), and
    // moved today.
    const catalogue = loadCatalogue(new URL('../../config/catalogue.yaml', import.meta.url).pathname);
    const in2015 = createRegistries(ex.registryStore.db, catalogue, { now: () => new Date('2015-03-01T12:00:00Z') });
    const old = (await in2015.addresses.register({ lines: ['1 Old Street'], town: 'Leeds', postcode: 'LS2 7AA' })).id;
    carol = (await in2015.population.register({ givenName: 'Carol', familyName: 'Cartwright', birthDate: '1985-06-01', addressId: old })).id;
    const fresh = (await ex.registries.addresses.register({ lines: ['2 New Street'], town: 'Leeds', postcode: 'LS1 4AP' })).id;
    await ex.registries.population.change(carol, { type: 'move', addressId: fresh, effectiveDate: ex.now().toISOString().slice(0, 10) });
    await Promise.all([ex.gro.conf.fetch(), ex.leeds.conf.fetch()]);
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await ex?.stop();
  });

  test('hole 1: asAt and knownAt read the past only where an agreement grants that item\'s history', async () => {
    const past = await ex.call(`/r1/${IDS.population}/people/${carol}?items=person.address&asAt=2016-01-01`, PURPOSE);
    assert.notEqual(past.status, 200, past.body);
    assert.ok(!past.body.includes('Old Street'), 'no earlier address leaves');
    assert.equal(refusal(past).xroad, 'Server.ServerProxy.AccessDenied');
    assert.equal(refusal(past).reason, 'history_not_granted');
    assert.deepEqual(refusal(past).detail['notGranted'], ['person.address']);
    const known = await ex.call(`/r1/${IDS.population}/people/${carol}?items=person.address&knownAt=2016-01-01T00:00:00Z`, PURPOSE);
    assert.equal(refusal(known).reason, 'history_not_granted');
    assert.ok(!known.body.includes('Old Street'));
    // The future is not history: a scheduled change is nobody's to read early.
    const future = await ex.call(`/r1/${IDS.population}/people/${carol}?items=person.address&asAt=2999-01-01`, PURPOSE);
    assert.equal(refusal(future).reason, 'history_not_granted');
    // A query the register's contract does not define is refused, not passed on to be guessed at.
    const polluted = await ex.call(`/r1/${IDS.population}/people/${carol}?items=person.address&items=person.birthDate`, PURPOSE);
    assert.equal(refusal(polluted).xroad, 'Server.ServerProxy.InvalidRequest');
    const stray = await ex.call(`/r1/${IDS.population}/people/${carol}?items=person.address&as_at=2016-01-01`, PURPOSE);
    assert.equal(refusal(stray).xroad, 'Server.ServerProxy.InvalidRequest');

    // Granted: the earlier address, within the years the agreement allows, and the access record says which time was read.
    const history = { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'residence-history' };
    const granted = await ex.call(`/r1/${IDS.population}/people/${carol}?items=person.address&asAt=2016-01-01`, history);
    assert.equal(granted.status, 200, granted.body);
    assert.match(granted.body, /Old Street/);
    const record = await ex.gro.store.db.selectFrom('access_record').selectAll().where('person', '=', carol).orderBy('log_position', 'desc').executeTakeFirstOrThrow();
    assert.equal(record.as_at, '2016-01-01');
    assert.equal(record.known_at, null);
    const tooOld = await ex.call(`/r1/${IDS.population}/people/${carol}?items=person.address&asAt=1990-01-01`, history);
    assert.equal(refusal(tooOld).reason, 'history_not_granted', 'beyond the years granted');
  });

  test('hole 2: a registration token cannot put a gateway in front of another organisation\'s provider', async () => {
    // The holder of a GRO registration token registers a gateway id that sorts first, at its own address.
    const token = await ex.central.createRegistrationToken(IDS.gro, 'hostile test');
    const forged = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: ex.people.alice, asAt: ex.now().toISOString().slice(0, 10), knownAt: null, items: { 'person.givenName': { value: 'Mallory', source: IDS.population, lastUpdated: null, classification: 'personal' } } })));
    servers.push(forged);
    const forgedUrl = await listen(forged);
    const dir = join(ex.root, 'gw-rogue');
    const [clientPort, providerPort] = await Promise.all([freePort(), freePort()]);
    await initGateway({ dir, anchorFile: join(ex.dirs.central, 'anchor.json'), id: 'UK/GOV/GRO/gw0', address: `https://127.0.0.1:${providerPort}`, clientPort, providerPort, token: token.token, subsystems: [IDS.population] });
    addService(dir, IDS.population, 'people', { url: `${forgedUrl}/people`, timeoutMs: 2000, kind: 'registry' });
    let rogue: RunningGateway | undefined;
    try {
      rogue = await startGateway(dir, { now: ex.now });
      await ex.leeds.conf.fetch();
      for (let i = 0; i < 5; i++) {
        const r = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, PURPOSE);
        assert.equal(r.status, 200, r.body);
        assert.ok(!r.body.includes('Mallory'), 'the forged answer never reaches a consumer');
        assert.equal(r.headers['x-onceonly-provider-gateway'], IDS.groGw);
      }
      // Until the operator approves it, the new gateway is not in the configuration at all.
      const held = ex.leeds.conf.held()!;
      assert.equal(held.gateways.find((g) => g.id === 'UK/GOV/GRO/gw0'), undefined);
      const pending = await ex.central.listGateways();
      assert.equal(pending.find((g) => g.id === 'UK/GOV/GRO/gw0')?.status, 'pending');
      // Nor can it send anything for its member while it waits.
      const own = await request(`${rogue.clientUrl}/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, { headers: { 'x-road-client': IDS.population, 'x-onceonly-purpose': 'x' } });
      assert.match(await own.body.text(), /awaits the central operator's approval/);
    } finally {
      await rogue?.stop();
    }
  });

  test('hole 3: only the documented answer shape leaves the provider gateway', async () => {
    const leaky = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: ex.people.alice, asAt: ex.now().toISOString().slice(0, 10), knownAt: null, items: { 'person.givenName': { value: 'Alice', source: IDS.population, lastUpdated: null, classification: 'personal' } }, leak: { 'person.birthDate': '1990-04-12' } })));
    servers.push(leaky);
    const url = await listen(leaky);
    addService(ex.dirs.gro, IDS.population, 'leaky', { url: `${url}/people`, timeoutMs: 2000, kind: 'registry' });
    await ex.restartGateway('gro');
    const r = await ex.call(`/r1/${IDS.population}/leaky/${ex.people.alice}?items=person.givenName`, PURPOSE);
    assert.notEqual(r.status, 200);
    assert.ok(!r.body.includes('1990-04-12'), 'the smuggled field is withheld');
    assert.ok(!r.body.includes('Alice'), 'nothing of the answer leaves');
    assert.equal(refusal(r).reason, 'response_not_allowed');
    const logged = await ex.gro.store.db.selectFrom('message_log').select(['error_type', 'status']).orderBy('position', 'desc').executeTakeFirstOrThrow();
    assert.equal(logged.error_type, 'response_not_allowed', 'logged as a refusal');
  });

  test('hole 4: a local process cannot speak as a subsystem without that subsystem\'s credential', async () => {
    const settingsFile = join(ex.dirs.leeds, 'gateway.json');
    const settings = JSON.parse(readFileSync(settingsFile, 'utf8')) as Record<string, unknown>;
    const secret = 'parking-system-credential-for-tests-0123456789';
    const { createHash } = await import('node:crypto');
    settings['clients'] = { [IDS.parking]: { auth: 'bearer', tokens: [createHash('sha256').update(secret).digest('hex')] } };
    writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
    await ex.restartGateway('leeds');
    const read = `/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`;
    const anonymous = await ex.call(read, PURPOSE);
    assert.notEqual(anonymous.status, 200);
    assert.equal(refusal(anonymous).xroad, 'Server.ClientProxy.SslAuthenticationFailed');
    const wrong = await ex.call(read, { ...PURPOSE, authorization: 'Bearer not-the-credential' });
    assert.equal(refusal(wrong).xroad, 'Server.ClientProxy.SslAuthenticationFailed');
    const right = await ex.call(read, { ...PURPOSE, authorization: `Bearer ${secret}` });
    assert.equal(right.status, 200, right.body);
    delete settings['clients'];
    writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
    await ex.restartGateway('leeds');
  });

  test('hole 5: a preview is approved by the person, never by the agency that asked', async () => {
    const ask = { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'age-check' };
    const read = `/r1/${IDS.population}/people/${ex.people.bob}?items=person.birthDate`;
    const first = await ex.call(read, ask);
    assert.equal(refusal(first).reason, 'preview_required');
    const link = String(refusal(first).detail['previewUrl']);
    // The agency holds the link: it can neither see the data nor approve with it.
    const view = await request(link);
    const page = await view.body.text();
    assert.ok(!page.includes('1980-01-30'), 'the link alone shows nothing of the person');
    const approve = await request(`${link}/approve`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    await approve.body.text();
    assert.equal(approve.statusCode, 401);
    const retry = await ex.call(read, ask);
    assert.notEqual(retry.status, 200, 'nothing is released on the agency\'s say-so');
    assert.ok(!retry.body.includes('1980-01-30'));
  });

  test('hole 6: every request that left a system is in the client gateway\'s message log, whatever its outcome', async () => {
    const count = async (): Promise<number> => Number((await ex.leeds.store.db.selectFrom('message_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    await ex.stopGateway('gro');
    try {
      const before_ = await count();
      const r = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, PURPOSE);
      assert.equal(await count(), before_ + 1, 'the refusal is logged');
      assert.equal(refusal(r).xroad, 'Server.ClientProxy.NetworkError');
      const row = await ex.leeds.store.db.selectFrom('message_log').selectAll().orderBy('position', 'desc').executeTakeFirstOrThrow();
      assert.equal(row.error_type, 'provider_unreachable');
      assert.equal(row.client, IDS.parking);
      // Refused at the client gateway before anything was signed: logged too.
      const bad = await ex.call(`/r1/${IDS.population}/people/x?items=person.givenName`, { 'x-onceonly-purpose': 'resident-parking-permit' });
      assert.equal(refusal(bad).xroad, 'Client.BadRequest');
      assert.equal(await count(), before_ + 2);
    } finally {
      await ex.restartGateway('gro');
    }
  });
});
