/**
 * The central CA: gateway certificates carry the profile gateways rely on (SAN, EKU, validity),
 * verify against their CA and not against another.
 */
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { before, test } from 'node:test';
import { OnceOnlyError } from '../core/errors.ts';
import { certificateFingerprint, createCertificateAuthority, issueGatewayCertificate, verifyIssuedBy, type CertificateAuthority } from './pki.ts';

let ca: CertificateAuthority;
let other: CertificateAuthority;
const tlsKey = (): string => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }).toString();

before(async () => {
  ca = await createCertificateAuthority('UK');
  other = await createCertificateAuthority('UK');
});

test('the CA certificate is a CA for ten years, self-signed', () => {
  const c = new X509Certificate(ca.certificatePem);
  assert.equal(c.ca, true);
  assert.ok(c.checkIssued(c) && c.verify(c.publicKey));
  const years = (Date.parse(c.validTo) - Date.parse(c.validFrom)) / (365.25 * 86_400_000);
  assert.ok(years > 9.9 && years < 10.1, String(years));
  assert.match(c.subject, /CN=onceonly central CA UK/);
});

test('a gateway certificate verifies against its CA and carries SAN and EKU', async () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const pem = await issueGatewayCertificate(ca, { gatewayId: 'UK/GOV/GRO/gw1', member: 'UK/GOV/GRO', tlsPublicKeySpkiPem: tlsKey(), address: 'https://gw1.example.test:8601', now });
  assert.equal(verifyIssuedBy(pem, ca.certificatePem, now), true);
  const c = new X509Certificate(pem);
  assert.equal(c.ca, false);
  assert.match(c.subject, /CN=UK\.GOV\.GRO\.gw1/);
  const san = c.subjectAltName ?? '';
  for (const part of ['URI:urn:onceonly:gateway:UK/GOV/GRO/gw1', 'IP Address:127.0.0.1', 'DNS:localhost', 'DNS:gw1.example.test']) assert.ok(san.includes(part), `${part} in ${san}`);
  assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  const years = (Date.parse(c.validTo) - now.getTime()) / (365.25 * 86_400_000);
  assert.ok(years > 1.99 && years < 2.01);
  assert.match(certificateFingerprint(pem), /^[0-9a-f]{64}$/);
  // Outside its validity it does not verify.
  assert.equal(verifyIssuedBy(pem, ca.certificatePem, new Date('2029-01-01T00:00:00Z')), false);
});

test('an IP address host becomes an IP SAN; serials are random', async () => {
  const key = tlsKey();
  const a = await issueGatewayCertificate(ca, { gatewayId: 'UK/GOV/GRO/gw1', member: 'UK/GOV/GRO', tlsPublicKeySpkiPem: key, address: 'https://10.0.0.7:8601' });
  const b = await issueGatewayCertificate(ca, { gatewayId: 'UK/GOV/GRO/gw1', member: 'UK/GOV/GRO', tlsPublicKeySpkiPem: key, address: 'https://10.0.0.7:8601' });
  assert.ok(new X509Certificate(a).subjectAltName?.includes('IP Address:10.0.0.7'));
  assert.notEqual(new X509Certificate(a).serialNumber, new X509Certificate(b).serialNumber);
});

test('a certificate from another CA fails verifyIssuedBy; garbage is false, not a throw', async () => {
  const pem = await issueGatewayCertificate(other, { gatewayId: 'UK/GOV/GRO/gw1', member: 'UK/GOV/GRO', tlsPublicKeySpkiPem: tlsKey(), address: 'https://127.0.0.1:8601' });
  assert.equal(verifyIssuedBy(pem, other.certificatePem), true);
  assert.equal(verifyIssuedBy(pem, ca.certificatePem), false);
  assert.equal(verifyIssuedBy('not a certificate', ca.certificatePem), false);
});

test('only ECDSA P-256 TLS keys are accepted', async () => {
  const ed = generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString();
  for (const key of [ed, 'nonsense']) {
    await assert.rejects(
      issueGatewayCertificate(ca, { gatewayId: 'UK/GOV/GRO/gw1', member: 'UK/GOV/GRO', tlsPublicKeySpkiPem: key, address: 'https://127.0.0.1:8601' }),
      (e: unknown) => e instanceof OnceOnlyError && e.type === 'invalid_value' && e.detail.field === 'tlsPublicKey',
    );
  }
});

test('identifier parts with the characters PR-REST §4.8 allows give a plain CN and the exact id in the SAN', async () => {
  const id = "UK/GOV/A+B,C=D/gw'(1)";
  const pem = await issueGatewayCertificate(ca, { gatewayId: id, member: 'UK/GOV/A+B,C=D', tlsPublicKeySpkiPem: tlsKey(), address: 'https://127.0.0.1:8601' });
  assert.equal(verifyIssuedBy(pem, ca.certificatePem), true);
  const c = new X509Certificate(pem);
  assert.match(c.subject, /^CN=UK\.GOV\.A_B_C_D\.gw'\(1\)$/m, 'no DN syntax smuggled in: one CN, one O');
  assert.match(c.subject, /^O=UK\.GOV\.A_B_C_D$/m);
  // Node prints a SAN holding a comma quoted, with the comma escaped.
  assert.ok((c.subjectAltName ?? '').includes(`URI:"urn:onceonly:gateway:${id.replace(',', '\\u002c')}"`), c.subjectAltName);
});
