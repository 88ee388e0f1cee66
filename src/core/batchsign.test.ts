/**
 * Batch signatures: every message of a batch verifies alone, nothing else does, and each signed
 * message has exactly one accepted encoding.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateSigningKey } from './crypto.ts';
import { BatchSigner, BatchVerifier } from './batchsign.ts';

const key = generateSigningKey();
const other = generateSigningKey();

test('messages signed together each verify with their own proof, and only their own', async () => {
  const signer = new BatchSigner(key.privateKey, 'UK/GOV/GRO/gw1');
  const messages = Array.from({ length: 37 }, (_, i) => `message ${i}`);
  const sigs = await Promise.all(messages.map((m) => signer.sign(m)));
  assert.equal(new Set(sigs.map((s) => s.signature)).size, 1, 'one signature for the batch');
  const v = new BatchVerifier();
  sigs.forEach((s, i) => {
    assert.ok(v.verify(key.publicKey, 'UK/GOV/GRO/gw1', messages[i]!, s), `message ${i}`);
    assert.ok(!v.verify(key.publicKey, 'UK/GOV/GRO/gw1', messages[(i + 1) % messages.length]!, s), 'another message with this proof');
    assert.ok(!v.verify(key.publicKey, 'UK/GOV/GRO/gw2', messages[i]!, s), 'another signer id');
    assert.ok(!new BatchVerifier().verify(other.publicKey, 'UK/GOV/GRO/gw1', messages[i]!, s), 'another key');
  });
  const single = await signer.sign('alone');
  assert.match(single.batch, /^0\/1;[A-Za-z0-9_-]{43};$/);
  assert.ok(v.verify(key.publicKey, 'UK/GOV/GRO/gw1', 'alone', single));
});

test('each signed message has exactly one accepted encoding', async () => {
  const signer = new BatchSigner(key.privateKey, 'gw');
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((m) => signer.sign(m)));
  assert.ok(a && b && c);
  const v = new BatchVerifier();
  assert.ok(v.verify(key.publicKey, 'gw', 'c', c));
  const [, root, path] = c.batch.split(';') as [string, string, string];
  const variants = [
    `02/003;${root};${path}`, // leading zeros
    `1/2;${root};${path}`, // another position whose proof has the same length
    `2/3;${root};${path},${path}`, // a proof longer than the position needs
    `2/3;${root.slice(0, 42)}${root.endsWith('A') ? 'B' : 'A'};${path}`, // a different root
  ];
  for (const batch of variants) assert.ok(!v.verify(key.publicKey, 'gw', 'c', { signature: c.signature, batch }), batch);
  assert.ok(!v.verify(key.publicKey, 'gw', 'c', { signature: `${c.signature}==`, batch: c.batch }), 'padding');
  // The last character of an 86-character signature carries unused bits: flipping them must fail.
  const last = c.signature.at(-1)!;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const twin = alphabet[alphabet.indexOf(last) ^ 1]!;
  assert.ok(!v.verify(key.publicKey, 'gw', 'c', { signature: c.signature.slice(0, -1) + twin, batch: c.batch }), 'unused bits');
});
