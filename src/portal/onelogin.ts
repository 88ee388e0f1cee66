/**
 * @module portal/onelogin
 * The identity claims as GOV.UK One Login gives them (its technical documentation, "Prove your
 * user's identity"): an ID token with a pairwise `sub` and `vot` (the vector of trust achieved,
 * e.g. `P2` for medium confidence), and from `/userinfo`, when asked for in the `claims`
 * request parameter, `https://vocab.account.gov.uk/v1/coreIdentityJWT` (a JWT signed by the
 * identity service, whose `vc.credentialSubject` holds the verified `name` parts and
 * `birthDate`) and `https://vocab.account.gov.uk/v1/address` (postal addresses, the current one
 * without `validUntil`). The demo issuer speaks the same, so the portal works unchanged with both.
 */
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { OnceOnlyError } from '../core/errors.ts';
import type { ClaimedIdentity } from '../identity/match.ts';

export const CORE_IDENTITY_CLAIM = 'https://vocab.account.gov.uk/v1/coreIdentityJWT';
export const ADDRESS_CLAIM = 'https://vocab.account.gov.uk/v1/address';
/** The vector of trust asked for: authentication level Cl.Cm (two factors), identity confidence P2 (medium). */
export const VTR = '["Cl.Cm.P2"]';
/** Identity confidence levels accepted, lowest first. */
export const ACCEPTED_VOT = ['P2', 'P3', 'P4'];

/** The `claims` request parameter (OpenID Connect Core §5.5) asking for identity and address. */
export const CLAIMS_REQUEST = JSON.stringify({ userinfo: { [CORE_IDENTITY_CLAIM]: null, [ADDRESS_CLAIM]: null } });

/** A postal address as One Login gives it. */
export interface PostalAddress {
  subBuildingName?: string;
  buildingName?: string;
  buildingNumber?: string;
  streetName?: string;
  addressLocality?: string;
  postalCode?: string;
  addressCountry?: string;
  validFrom?: string;
  validUntil?: string;
}

/** Where the identity service's signing keys are and who it is. */
export interface IdentityVerification {
  issuer: string;
  jwks: JWTVerifyGetKey;
}

export function remoteIdentityKeys(issuer: string, jwksUrl: string): IdentityVerification {
  return { issuer, jwks: createRemoteJWKSet(new URL(jwksUrl)) };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length <= 200 ? v : undefined);

/** One address's first line as registers keep it ("Flat 2, 14 Mill Lane"). */
export function addressLineOf(a: PostalAddress): string {
  const street = [a.buildingNumber, a.streetName].filter((x) => x).join(' ');
  return [a.subBuildingName, a.buildingName, street].filter((x) => x).join(', ');
}

/**
 * The verified identity in a One Login style answer: the core identity JWT checked (signature by
 * the identity service, issuer, audience this client, subject the ID token's, not expired), its
 * name and birth date, and the current address. Anything missing or wrong is refused: the portal
 * never matches on an identity it could not check.
 */
export async function verifiedIdentity(userinfo: Record<string, unknown>, opts: { sub: string; clientId: string; verification: IdentityVerification; vot?: unknown }): Promise<ClaimedIdentity> {
  const vot = typeof opts.vot === 'string' ? opts.vot : JSON.stringify(opts.vot);
  if (opts.vot !== undefined && !ACCEPTED_VOT.includes(vot)) throw new OnceOnlyError('forbidden', `the identity provider proved this identity only to level ${vot.slice(0, 10)}`, { field: 'id_token.vot', expected: ACCEPTED_VOT.join(', ') });
  const jwt = userinfo[CORE_IDENTITY_CLAIM];
  if (typeof jwt !== 'string') throw new OnceOnlyError('forbidden', 'the identity provider gave no verified identity', { field: `userinfo.${CORE_IDENTITY_CLAIM}`, expected: 'a signed core identity JWT' });
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(jwt, opts.verification.jwks, { issuer: opts.verification.issuer, audience: opts.clientId, subject: opts.sub, algorithms: ['ES256'] }));
  } catch (e) {
    throw new OnceOnlyError('invalid_signature', `the core identity JWT does not verify: ${(e as Error).message.slice(0, 120)}`, { field: `userinfo.${CORE_IDENTITY_CLAIM}` });
  }
  if (typeof payload['vot'] !== 'string' || !ACCEPTED_VOT.includes(payload['vot'])) throw new OnceOnlyError('forbidden', 'the core identity is not proved to medium confidence', { field: 'coreIdentity.vot', expected: ACCEPTED_VOT.join(', ') });
  const subject = (payload['vc'] as { credentialSubject?: { name?: { nameParts?: { type?: string; value?: string }[] }[]; birthDate?: { value?: string }[] } } | undefined)?.credentialSubject;
  const parts = subject?.name?.[0]?.nameParts ?? [];
  const given = parts.filter((p) => p.type === 'GivenName').map((p) => str(p.value)).filter((x) => x).join(' ');
  const family = parts.filter((p) => p.type === 'FamilyName').map((p) => str(p.value)).filter((x) => x).join(' ');
  const birthDate = str(subject?.birthDate?.[0]?.value);
  if (!given || !family || !birthDate) throw new OnceOnlyError('forbidden', 'the verified identity lacks a name or a birth date', { field: 'coreIdentity.vc.credentialSubject', expected: 'name and birthDate' });
  const addresses = Array.isArray(userinfo[ADDRESS_CLAIM]) ? (userinfo[ADDRESS_CLAIM] as PostalAddress[]) : [];
  const current = addresses.find((a) => typeof a === 'object' && a !== null && a.validUntil === undefined);
  return {
    givenName: given,
    familyName: family,
    birthDate,
    address: current ? { line: addressLineOf(current), town: str(current.addressLocality) ?? '', postcode: str(current.postalCode) ?? '' } : null,
  };
}
