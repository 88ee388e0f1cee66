/**
 * The trust model of issue 10 over the real exchange: a client gateway sends only to gateways the
 * central assigned to the provider's subsystem, fails over between them while a connection cannot
 * be made (never sending one request twice) and says which it used; a gateway refuses a subsystem
 * it was not assigned; X-Road-Security-Server names the one gateway to use.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { IDS, freePort, startExchange, type Exchange } from '../../test/support/exchange.ts';
import { addService, initGateway, readSettings, startGateway, type RunningGateway } from './node.ts';
import { loadPrivateKey } from '../core/crypto.ts';
import { BatchSigner } from '../core/batchsign.ts';
import { H, bodyDigest, packHeaders, signRequest, type SignedRequestFields } from './protocol.ts';

const PURPOSE = { 'x-road-client': IDS.parking, 'x-onceonly-purpose': 'resident-parking-permit' };
const GW2 = 'UK/GOV/GRO/gw2';
const GW3 = 'UK/GOV/GRO/gw3';
let ex: Exchange;
const extra: Record<string, RunningGateway | undefined> = {};
const dirs: Record<string, string> = {};

const reason = (body: string): string => (JSON.parse(body) as { onceonly: { type: string } }).onceonly.type;
const count = async (g: RunningGateway): Promise<number> => Number((await g.store.db.selectFrom('message_log').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

describe('which gateway serves a subsystem, and failing over between them', () => {
  before(async () => {
    ex = await startExchange();
    const people = readSettings(ex.dirs.gro).services[IDS.population]!['people']!;
    // Two more gateways of the register's organisation, registered by the operator for the population register.
    for (const id of [GW2, GW3]) {
      const dir = join(ex.root, id.replaceAll('/', '-'));
      const [client, provider] = await Promise.all([freePort(), freePort()]);
      await initGateway({ dir, anchorFile: join(ex.dirs.central, 'anchor.json'), id, address: `https://127.0.0.1:${provider}`, clientPort: client, providerPort: provider, token: ex.token, subsystems: [IDS.population] });
      addService(dir, IDS.population, 'people', people);
      dirs[id] = dir;
      extra[id] = await startGateway(dir, { now: ex.now });
    }
    // gw1 no longer serves the register: only gw2 and gw3 do.
    await ex.central.unassignSubsystem(IDS.groGw, IDS.population);
    await Promise.all([ex.gro.conf.fetch(), ex.leeds.conf.fetch(), extra[GW2]!.conf.fetch(), extra[GW3]!.conf.fetch()]);
  });
  after(async () => {
    for (const g of Object.values(extra)) await g?.stop();
    await ex?.stop();
  });

  test('only assigned gateways receive requests, and the answer says which one served it', async () => {
    const before_ = await count(ex.gro);
    const used = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const r = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, PURPOSE);
      assert.equal(r.status, 200, r.body);
      used.add(r.headers['x-onceonly-provider-gateway']!);
    }
    assert.ok([...used].every((g) => g === GW2 || g === GW3), [...used].join());
    assert.equal(await count(ex.gro), before_, 'the unassigned gateway received nothing');
  });

  test('a gateway refuses a subsystem the central did not assign to it, even when asked directly', async () => {
    const key = loadPrivateKey(readFileSync(join(ex.dirs.leeds, 'signing.key.pem'), 'utf8'));
    const target = `/oo1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`;
    const f: SignedRequestFields = {
      method: 'GET', target, client: IDS.parking, id: 'direct', requestId: randomUUID(), purpose: 'resident-parking-permit', agreement: '',
      timestamp: String(ex.now().getTime()), sender: IDS.leedsGw, audience: IDS.groGw, headers: packHeaders([]), bodyDigest: bodyDigest(''),
    };
    const { signature, batch } = await signRequest(new BatchSigner(key, IDS.leedsGw), f, Buffer.alloc(0));
    const agent = new Agent({ connect: { key: readFileSync(join(ex.dirs.leeds, 'tls.key.pem'), 'utf8'), cert: readFileSync(join(ex.dirs.leeds, 'tls.cert.pem'), 'utf8'), ca: ex.central.caCertificate } });
    try {
      const res = await request(`${ex.gro.providerUrl}${target}`, {
        dispatcher: agent,
        headers: { [H.client]: f.client, [H.id]: f.id, [H.requestId]: f.requestId, [H.purpose]: f.purpose, [H.agreement]: f.agreement, [H.timestamp]: f.timestamp, [H.sender]: f.sender, [H.audience]: f.audience, [H.headers]: f.headers, [H.bodyDigest]: f.bodyDigest, [H.signature]: signature, [H.signatureBatch]: batch },
      });
      const body = await res.body.text();
      assert.equal(res.headers['oo-error'], 'provider_not_served');
      assert.equal((JSON.parse(body) as { type: string }).type, 'Server.ServerProxy.ServiceFailed.UnknownMember');
      assert.ok(!body.includes('Alice'));
    } finally {
      await agent.close();
    }
  });

  test('with one gateway down, requests fail over to the other and say so; the down one is in the log\'s detail', async () => {
    await extra[GW2]!.stop();
    extra[GW2] = undefined;
    let sawFailover = false;
    for (let i = 0; i < 8; i++) {
      const r = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, PURPOSE);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.headers['x-onceonly-provider-gateway'], GW3);
      const row = await ex.leeds.store.db.selectFrom('message_log').select(['peer', 'detail']).orderBy('position', 'desc').executeTakeFirstOrThrow();
      assert.equal(row.peer, GW3);
      const tried = (JSON.parse(row.detail!) as { tried: { gateway: string; error: string }[] }).tried;
      if (tried.length) {
        assert.deepEqual(tried, [{ gateway: GW2, error: 'ECONNREFUSED' }]);
        sawFailover = true;
      }
    }
    // The first request after gw2 went down tried it, unless gw3 was already the one preferred.
    const named = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, { ...PURPOSE, 'x-road-security-server': GW2 });
    assert.equal(named.headers['x-road-error'], 'Server.ClientProxy.NetworkError', 'named, it is the only one tried');
    assert.equal(reason(named.body), 'provider_unreachable');
    assert.ok(sawFailover || (await ex.leeds.store.db.selectFrom('message_log').select('detail').where('peer', '=', GW2).execute()).length > 0);
  });

  test('with every assigned gateway down: a typed refusal, logged', async () => {
    await extra[GW3]!.stop();
    extra[GW3] = undefined;
    const r = await ex.call(`/r1/${IDS.population}/people/${ex.people.alice}?items=person.givenName`, PURPOSE);
    assert.equal(r.headers['x-road-error'], 'Server.ClientProxy.NetworkError');
    assert.equal(reason(r.body), 'provider_unreachable');
    const row = await ex.leeds.store.db.selectFrom('message_log').select(['error_type', 'detail']).orderBy('position', 'desc').executeTakeFirstOrThrow();
    assert.equal(row.error_type, 'provider_unreachable');
    assert.deepEqual((JSON.parse(row.detail!) as { tried: { gateway: string }[] }).tried.map((t) => t.gateway).sort(), [GW2, GW3]);
  });
});
