/**
 * @module central/pki
 * The central's certificate authority. One self-signed ECDSA P-256 root issues every gateway's
 * TLS certificate; gateways authenticate each other with mutual TLS against this root and then
 * pin the exact certificate (by SHA-256 fingerprint) that the global configuration lists for
 * the peer, so a suspended gateway's certificate stops working at the next configuration even
 * though nothing revokes it (no CRL or OCSP to run: the signed, expiring configuration is the
 * revocation channel, as X-Road's global configuration is for its security servers).
 *
 * Certificates are built with @peculiar/x509 (RFC 5280 profile) and checked with node:crypto's
 * X509Certificate, which is synchronous and uses OpenSSL's own verifier.
 */
import 'reflect-metadata';
import { X509Certificate as NodeX509, createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { OnceOnlyError } from '../core/errors.ts';
import { sha256hex } from '../core/crypto.ts';

type CryptoKey = webcrypto.CryptoKey;

// @peculiar/x509 uses a WebCrypto provider; Node's is complete for ECDSA P-256.
x509.cryptoProvider.set(webcrypto);

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** A loaded certificate authority: its certificate (PEM) and private key. */
export interface CertificateAuthority {
  certificatePem: string;
  /** PKCS#8 PEM of the CA's ECDSA P-256 private key. */
  privateKeyPem: string;
}

/** What {@link issueGatewayCertificate} needs to know about the gateway. */
export interface GatewayCertificateRequest {
  /** `INSTANCE/CLASS/MEMBER/GATEWAYCODE`. */
  gatewayId: string;
  /** `INSTANCE/CLASS/MEMBER`. */
  member: string;
  /** The gateway's TLS public key, SPKI PEM (ECDSA P-256). */
  tlsPublicKeySpkiPem: string;
  /** Base URL of the gateway's provider side; its host goes into the subjectAltName. */
  address: string;
  /** Issue time (default now). */
  now?: Date;
}

/** The URI subjectAltName a gateway certificate carries: its exact id, which a DN cannot hold verbatim. */
export function gatewayUri(gatewayId: string): string {
  return `urn:onceonly:gateway:${gatewayId}`;
}

/**
 * A random positive serial of 16 bytes: RFC 5280 §4.1.2.2 allows up to 20 octets and CA/B Forum
 * practice asks for at least 64 bits of randomness. The top bit is cleared so the DER INTEGER is
 * positive without a padding byte.
 */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

/**
 * A DN attribute value from an id: RFC 4514 §2.4 escapes are legal but not every TLS stack
 * prints or matches them the same way, so the CN gets a plain form (`/` becomes `.`, and the
 * characters a DN string gives a meaning, `"+,;<>\\=`, which identifier parts may hold, become
 * `_`) and the exact id travels in the URI subjectAltName.
 */
function cnOf(id: string): string {
  return id.replaceAll('/', '.').replace(/["+,;<>\\=]/g, '_');
}

/** Creates a new CA: ECDSA P-256, self-signed, CA:TRUE with keyCertSign and cRLSign, valid 10 years. */
export async function createCertificateAuthority(instance: string, now: Date = new Date()): Promise<CertificateAuthority> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']));
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + 10);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=onceonly central CA ${cnOf(instance)}, O=onceonly`,
    // Backdated a minute so that a peer whose clock is slightly behind still accepts it.
    notBefore: new Date(now.getTime() - 60_000),
    notAfter,
    keys,
    signingAlgorithm: SIGNING_ALG,
    extensions: [
      // RFC 5280 §4.2.1.9: basicConstraints MUST be critical in CA certificates; pathLen 0 since
      // the root signs gateway certificates directly and there are no intermediates.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const privateKeyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  return { certificatePem: cert.toString('pem'), privateKeyPem };
}

async function importSpki(pem: string, field: string): Promise<CryptoKey> {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new OnceOnlyError('invalid_value', `${field} is not a PEM public key`, { field, expected: 'an ECDSA P-256 public key, SPKI PEM ("-----BEGIN PUBLIC KEY-----")' });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    // One key type keeps every gateway interoperable with every TLS stack we test against.
    throw new OnceOnlyError('invalid_value', `${field} must be an ECDSA P-256 key`, { field, expected: 'an ECDSA P-256 public key, SPKI PEM' });
  }
  const der = key.export({ format: 'der', type: 'spki' });
  return webcrypto.subtle.importKey('spki', der, ECDSA_P256, true, ['verify']);
}

async function importCaKey(ca: CertificateAuthority): Promise<CryptoKey> {
  const der = createPrivateKey(ca.privateKeyPem).export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, ECDSA_P256, false, ['sign']);
}

function hostOf(address: string): string {
  let u: URL;
  try {
    u = new URL(address);
  } catch {
    throw new OnceOnlyError('invalid_value', 'address is not a URL', { field: 'address', expected: 'an https:// URL, e.g. https://127.0.0.1:8601' });
  }
  // URL keeps IPv6 hosts in brackets; the SAN wants the bare address.
  return u.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Issues a gateway's TLS certificate (RFC 5280 profile): CN = the gateway id with `/` as `.`,
 * subjectAltName = URI `urn:onceonly:gateway:ID`, IP 127.0.0.1, DNS localhost and the host of
 * `address`; keyUsage digitalSignature; extKeyUsage serverAuth and clientAuth (the same
 * certificate serves both ends of mutual TLS); valid two years; a random serial.
 */
export async function issueGatewayCertificate(ca: CertificateAuthority, req: GatewayCertificateRequest): Promise<string> {
  const now = req.now ?? new Date();
  const publicKey = await importSpki(req.tlsPublicKeySpkiPem, 'tlsPublicKey');
  const signingKey = await importCaKey(ca);
  const caCert = new x509.X509Certificate(ca.certificatePem);
  const host = hostOf(req.address);
  const names: x509.JsonGeneralName[] = [
    { type: 'url', value: gatewayUri(req.gatewayId) },
    { type: 'ip', value: '127.0.0.1' },
    { type: 'dns', value: 'localhost' },
  ];
  if (host !== '127.0.0.1' && host !== 'localhost') names.push({ type: isIP(host) ? 'ip' : 'dns', value: host });
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + 2);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${cnOf(req.gatewayId)}, O=${cnOf(req.member)}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter,
    publicKey,
    signingKey,
    signingAlgorithm: SIGNING_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return cert.toString('pem');
}

/** SHA-256 of a certificate's DER, lower-case hex: what the global configuration lists and peers pin. */
export function certificateFingerprint(certPem: string): string {
  return sha256hex(new NodeX509(certPem).raw);
}

/**
 * True when `certPem` was signed by the CA in `caPem` (issuer name matches and the signature
 * verifies with the CA's key) and is within its validity at `now`. False for anything
 * malformed: callers decide what error to raise.
 */
export function verifyIssuedBy(certPem: string, caPem: string, now: Date = new Date()): boolean {
  try {
    const cert = new NodeX509(certPem);
    const ca = new NodeX509(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
    const t = now.getTime();
    return new Date(cert.validFrom).getTime() <= t && t <= new Date(cert.validTo).getTime();
  } catch {
    return false;
  }
}

/**
 * A self-signed TLS server certificate for a gateway's client side, for information systems that
 * connect with TLS (X-Road's internal TLS certificate): ECDSA P-256, the gateway id in a URI
 * subjectAltName, 127.0.0.1, localhost and `hosts`, valid five years. Systems pin it.
 */
export async function createSelfSignedServerCertificate(gatewayId: string, hosts: readonly string[], now: Date = new Date()): Promise<{ certificatePem: string; privateKeyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']);
  const names: x509.JsonGeneralName[] = [{ type: 'url', value: gatewayUri(gatewayId) }, { type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }];
  for (const h of hosts) if (h !== '127.0.0.1' && h !== 'localhost') names.push({ type: isIP(h) ? 'ip' : 'dns', value: h });
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + 5);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${cnOf(gatewayId)} client side, O=onceonly`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter,
    keys,
    signingAlgorithm: SIGNING_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(names, false),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certificatePem: cert.toString('pem'), privateKeyPem: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/** Validity of a certificate in days from `now` (for CLI output). */
export function daysLeft(certPem: string, now: Date = new Date()): number {
  return Math.floor((new Date(new NodeX509(certPem).validTo).getTime() - now.getTime()) / DAY_MS);
}
