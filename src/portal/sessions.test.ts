/**
 * Portal sessions (issue 13) on both engines, with the clock moved by hand: a session ends after
 * its idle time and after its absolute lifetime whatever the activity, a sign-in under way is
 * taken once and not after it expired, an ended session is gone, and the table holds only hashes
 * of the cookie values.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eachEngine } from '../../test/support/stores.ts';
import { PortalSessions } from './sessions.ts';

eachEngine('portal sessions', (getStore) => {
  const at = { now: new Date('2026-03-01T09:00:00.000Z') };
  const later = (minutes: number): void => {
    at.now = new Date(at.now.getTime() + minutes * 60_000);
  };
  const sessions = (): PortalSessions => new PortalSessions(getStore().db, { idleMinutes: 30, absoluteHours: 8, loginMinutes: 10 }, () => at.now);
  const data = { issuer: 'https://issuer.example', subject: 'sub-1', name: 'Ann' };

  test('idle: a session unused for 30 minutes has ended; used within them, it goes on', async () => {
    const s = sessions();
    const token = await s.create('P-000000001-7', data);
    later(29);
    assert.equal((await s.get(token))?.person, 'P-000000001-7');
    later(29);
    assert.ok(await s.get(token), 'the request at 29 minutes restarted the idle clock');
    later(31);
    assert.equal(await s.get(token), undefined);
    // Gone for good, not only refused now.
    later(-60);
    assert.equal(await s.get(token), undefined);
  });

  test('absolute: 8 hours after sign-in a session ends however busy it is', async () => {
    const s = sessions();
    const token = await s.create('P-000000001-7', data);
    for (let i = 0; i < 16; i++) {
      later(29);
      assert.ok(await s.get(token), `still in force after ${(i + 1) * 29} minutes`);
    }
    later(29);
    assert.equal(await s.get(token), undefined);
  });

  test('a sign-in under way is taken once, and not after 10 minutes', async () => {
    const s = sessions();
    const login = { state: 's', nonce: 'n', verifier: 'v' };
    const a = await s.startLogin(login);
    assert.deepEqual(await s.takeLogin(a), login);
    assert.equal(await s.takeLogin(a), undefined);
    const b = await s.startLogin(login);
    later(11);
    assert.equal(await s.takeLogin(b), undefined);
    // A login is never a session, nor a session a login.
    const c = await s.startLogin(login);
    assert.equal(await s.get(c), undefined);
    const d = await s.create('P-000000001-7', data);
    assert.equal(await s.takeLogin(d), undefined);
    assert.ok(await s.get(d));
  });

  test('sign-out ends the session; the table holds hashes, never the cookie values', async () => {
    const s = sessions();
    const token = await s.create('P-000000001-7', data);
    const rows = await getStore().db.selectFrom('portal_session').select('id').execute();
    assert.ok(rows.length > 0 && rows.every((r) => r.id !== token && /^[A-Za-z0-9_-]{43}$/.test(r.id)));
    await s.end(token);
    assert.equal(await s.get(token), undefined);
    // What expired and was never looked at again is swept away; what is in force stays.
    await s.startLogin({ state: 's', nonce: 'n', verifier: 'v' });
    later(9 * 60);
    const fresh = await s.create('P-000000001-7', data);
    const before = (await getStore().db.selectFrom('portal_session').select('id').execute()).length;
    const swept = await s.sweep();
    assert.ok(swept >= 1);
    assert.equal((await getStore().db.selectFrom('portal_session').select('id').execute()).length, before - swept);
    assert.ok(await s.get(fresh));
    assert.equal(await s.get('not-a-token'), undefined);
  });
});
