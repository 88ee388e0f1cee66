/**
 * The global configuration's signature and expiry: a gateway accepts exactly the documents its
 * anchor's key signed, for its instance, not expired and not older than what it holds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompactSign } from 'jose';
import { OnceOnlyError } from '../core/errors.ts';
import { generateSigningKey, publicJwk } from '../core/crypto.ts';
import { GLOBAL_CONF_TYP, buildGlobalConfiguration, signGlobalConfiguration, verifyGlobalConfiguration, type CentralState } from './conf.ts';
import type { Anchor } from './types.ts';

const key = generateSigningKey();
const anchor: Anchor = { kind: 'onceonly-anchor', version: 1, instance: 'UK', centralUrl: 'http://127.0.0.1:8500', publicKey: publicJwk(key.publicKey), createdAt: '2026-01-01T00:00:00.000Z' };
const now = new Date('2026-03-01T12:00:00Z');
const state: CentralState = {
  instance: 'UK',
  serial: 7,
  caCertificate: '-----BEGIN CERTIFICATE-----\nsynthetic\n-----END CERTIFICATE-----\n',
  members: [{ id: 'UK/MUN/LEEDS', name: 'Synthetic Council', status: 'active' }, { id: 'UK/GOV/GRO', name: 'Synthetic Register Office', status: 'active' }],
  subsystems: [{ id: 'UK/GOV/GRO/population', member: 'UK/GOV/GRO', status: 'suspended' }],
  gateways: [],
  agreements: [],
};

const isErr = (type: string) => (e: unknown): boolean => e instanceof OnceOnlyError && e.type === type;

test('a signed configuration verifies with the anchor; entries are sorted; expiry defaults to 10 minutes', async () => {
  const conf = buildGlobalConfiguration(state, { now });
  assert.deepEqual(conf.members.map((m) => m.id), ['UK/GOV/GRO', 'UK/MUN/LEEDS']);
  assert.equal(conf.expiresAt, '2026-03-01T12:10:00.000Z');
  const jws = await signGlobalConfiguration(conf, key.privateKey);
  const header = JSON.parse(Buffer.from(jws.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
  assert.deepEqual(header, { alg: 'EdDSA', typ: GLOBAL_CONF_TYP });
  const back = await verifyGlobalConfiguration(jws, anchor, new Date(now.getTime() + 60_000), { minSerial: 7 });
  assert.deepEqual(back, conf);
  assert.equal(back.subsystems[0]!.status, 'suspended');
});

test('a tampered payload is invalid_global_conf', async () => {
  const jws = await signGlobalConfiguration(buildGlobalConfiguration(state, { now }), key.privateKey);
  const [h, p, s] = jws.split('.') as [string, string, string];
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as { subsystems: { status: string }[] };
  payload.subsystems[0]!.status = 'active';
  const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
  await assert.rejects(verifyGlobalConfiguration(forged, anchor, now), isErr('invalid_global_conf'));
  // Flipping one signature character is refused too.
  const sig = `${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
  await assert.rejects(verifyGlobalConfiguration(`${h}.${p}.${sig}`, anchor, now), isErr('invalid_global_conf'));
});

test('a configuration signed by another key is invalid_global_conf', async () => {
  const other = generateSigningKey();
  const jws = await signGlobalConfiguration(buildGlobalConfiguration(state, { now }), other.privateKey);
  await assert.rejects(verifyGlobalConfiguration(jws, anchor, now), isErr('invalid_global_conf'));
});

test('expired at expiresAt: global_conf_expired', async () => {
  const conf = buildGlobalConfiguration(state, { now, validitySeconds: 60 });
  const jws = await signGlobalConfiguration(conf, key.privateKey);
  await verifyGlobalConfiguration(jws, anchor, new Date(now.getTime() + 59_999));
  await assert.rejects(verifyGlobalConfiguration(jws, anchor, new Date(now.getTime() + 60_000)), isErr('global_conf_expired'));
  // Proving what was published (offline log checks) accepts the expired copy, and nothing forged.
  assert.equal((await verifyGlobalConfiguration(jws, anchor, new Date(now.getTime() + 86_400_000), { ignoreClock: true })).serial, conf.serial);
  // Flip a character in the middle of the signature (every bit there is used).
  const at = jws.length - 40;
  const forged = `${jws.slice(0, at)}${jws[at] === 'A' ? 'B' : 'A'}${jws.slice(at + 1)}`;
  await assert.rejects(verifyGlobalConfiguration(forged, anchor, new Date(now.getTime() + 86_400_000), { ignoreClock: true }), isErr('invalid_global_conf'));
});

test('a serial older than minSerial is invalid_global_conf (no rollback)', async () => {
  const jws = await signGlobalConfiguration(buildGlobalConfiguration(state, { now }), key.privateKey);
  await assert.rejects(verifyGlobalConfiguration(jws, anchor, now, { minSerial: 8 }), (e: unknown) => isErr('invalid_global_conf')(e) && (e as OnceOnlyError).detail['path'] === 'serial');
});

test('wrong instance, wrong typ, alg none, malformed input are invalid_global_conf', async () => {
  const jws = await signGlobalConfiguration(buildGlobalConfiguration({ ...state, instance: 'EE' }, { now }), key.privateKey);
  await assert.rejects(verifyGlobalConfiguration(jws, anchor, now), isErr('invalid_global_conf'));

  const payload = new TextEncoder().encode(JSON.stringify(buildGlobalConfiguration(state, { now })));
  const wrongTyp = await new CompactSign(payload).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(key.privateKey);
  await assert.rejects(verifyGlobalConfiguration(wrongTyp, anchor, now), isErr('invalid_global_conf'));

  const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: GLOBAL_CONF_TYP })).toString('base64url')}.${Buffer.from(payload).toString('base64url')}.`;
  await assert.rejects(verifyGlobalConfiguration(none, anchor, now), isErr('invalid_global_conf'));

  for (const bad of ['', 'a.b', 'a.b.c.d', '!!.??.**', '{}.{}.{}']) await assert.rejects(verifyGlobalConfiguration(bad, anchor, now), isErr('invalid_global_conf'), bad);
});

test('a well-signed but malformed payload is invalid_global_conf', async () => {
  const bad = { ...buildGlobalConfiguration(state, { now }), gateways: [{ id: 'UK/GOV/GRO/gw1' }] };
  const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(bad))).setProtectedHeader({ alg: 'EdDSA', typ: GLOBAL_CONF_TYP }).sign(key.privateKey);
  await assert.rejects(verifyGlobalConfiguration(jws, anchor, now), isErr('invalid_global_conf'));
});
