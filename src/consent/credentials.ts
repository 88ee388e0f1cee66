/**
 * @module consent/credentials
 * People's credentials at a provider gateway, until citizen sign-in (OpenID Connect at the portal)
 * replaces them: the operator issues each person a random credential, once, and the gateway keeps
 * only its SHA-256 (`person-credentials.json`, `[{digest, person}]`; the older `{token, person}` form
 * is read too). The person uses it to manage their consents and to see and decide on a preview; an
 * agency that asked for a release never holds it.
 *
 * It proves possession of a string, not who someone is: a stand-in, not a design to keep.
 */
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Type } from 'typebox';
import { sha256, safeEqual } from '../core/crypto.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { checker } from '../core/schema.ts';
import { parseId } from '../core/subjects.ts';

/** One credential: whoever presents the token whose digest this is acts as `person`. */
export interface PersonCredential {
  /** The credential itself (older files and tests), or… */
  token?: string;
  /** …its SHA-256, base64url (what the gateway keeps). */
  digest?: string;
  person: string;
}

/** The file a gateway keeps people's credential digests in, and the name it had before. */
export const CREDENTIALS_FILE = 'person-credentials.json';
const OLD_FILE = 'consent-credentials.json';

const CredentialsFile = Type.Array(
  Type.Union([
    Type.Object({ digest: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }), person: Type.String() }, { additionalProperties: false }),
    Type.Object({ token: Type.String({ minLength: 16, maxLength: 512 }), person: Type.String() }, { additionalProperties: false }),
  ]),
  { maxItems: 1_000_000 },
);
const checkFile = checker(CredentialsFile, 'credentials', 'invalid_file');

/** Looks up the person a credential belongs to, in constant time per entry. */
export class PersonCredentials {
  readonly #entries: { digest: string; person: string }[];

  constructor(list: readonly PersonCredential[]) {
    this.#entries = list.map((c, i) => ({ digest: c.digest ?? sha256(c.token ?? ''), person: parseId('person', c.person, `credentials[${i}].person`) }));
  }

  get size(): number {
    return this.#entries.length;
  }

  /** The person `credential` belongs to, or undefined. Every entry is compared, so timing tells nothing. */
  personFor(credential: string | undefined): string | undefined {
    if (credential === undefined || credential.length < 16 || credential.length > 512) return undefined;
    const digest = sha256(credential);
    let person: string | undefined;
    for (const c of this.#entries) if (safeEqual(c.digest, digest)) person = c.person;
    return person;
  }

  /** The person of an `Authorization: Bearer <credential>` header (RFC 6750 §2.1), or undefined. */
  personForHeader(header: string | undefined): string | undefined {
    const m = typeof header === 'string' ? /^Bearer ([^\s]{1,512})$/i.exec(header) : null;
    return m ? this.personFor(m[1]) : undefined;
  }
}

/** Reads a gateway directory's credentials (none when the file does not exist). */
export function readPersonCredentials(dir: string): PersonCredentials {
  const file = [join(dir, CREDENTIALS_FILE), join(dir, OLD_FILE)].find((f) => existsSync(f));
  if (!file) return new PersonCredentials([]);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new OnceOnlyError('invalid_file', `${file} is not JSON: ${(e as Error).message}`, { file });
  }
  try {
    return new PersonCredentials(checkFile(v, file));
  } catch (e) {
    const err = e as OnceOnlyError;
    throw new OnceOnlyError('invalid_file', err.message, { ...err.detail, file, expected: '[{"digest": "<sha256, base64url>", "person": "P-…"}]' });
  }
}

/** Issues a new credential for `person` in a gateway directory; returns it (shown once, never stored). */
export function issuePersonCredential(dir: string, person: string): string {
  const id = parseId('person', person, 'person');
  const file = join(dir, CREDENTIALS_FILE);
  const old = join(dir, OLD_FILE);
  const source = existsSync(file) ? file : existsSync(old) ? old : undefined;
  const list = source ? checkFile(JSON.parse(readFileSync(source, 'utf8')), source) : [];
  const token = randomBytes(24).toString('base64url');
  // Only digests are written; older entries holding the credential itself are converted.
  const next = [...list.map((c) => ('digest' in c ? c : { digest: sha256(c.token), person: c.person })), { digest: sha256(token), person: id }];
  writeFileSync(file, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return token;
}
