/**
 * @module consent/test-helpers
 * Shared by the consent and preview tests: a settable clock, agreements of every kind the stores
 * must tell apart, and an assertion on typed errors.
 */
import assert from 'node:assert/strict';
import type { Agreement } from '../catalogue/agreements.ts';
import { isOnceOnlyError, type ErrorType, type OnceOnlyError } from '../core/errors.ts';
import { makeId } from '../core/subjects.ts';

/** A clock the test moves by hand. */
export class TestClock {
  #t: number;
  constructor(start = '2026-03-01T10:00:00.000Z') {
    this.#t = Date.parse(start);
  }
  now = (): Date => new Date(this.#t);
  advance(ms: number): void {
    this.#t += ms;
  }
  /** An instant `ms` from now, ISO. */
  in(ms: number): string {
    return new Date(this.#t + ms).toISOString();
  }
}

export const HOUR = 3_600_000;
export const MINUTE = 60_000;

export const ALICE = makeId('person', 1234);
export const BOB = makeId('person', 5678);

const base = {
  provider: 'UK/GOV/DWP/disability',
  history: [],
  services: [],
  events: [],
  legalBasis: "UK GDPR Art. 6(1)(a) and Art. 9(2)(a): the resident's explicit consent (synthetic)",
  validFrom: '2024-01-01',
  validUntil: '2029-12-31',
  previewRequired: false,
};

/** Needs consent. */
export const BLUE_BADGE: Agreement = {
  ...base,
  id: 'leeds-parking-blue-badge',
  client: 'UK/MUN/LEEDS/parking',
  items: ['person.disabilityStatus', 'person.givenName', 'person.familyName'],
  purpose: { id: 'blue-badge-concession', description: 'Grant a free resident permit to a disabled resident who asks for it.' },
  consentRequired: true,
};

/** Needs consent, same provider, another client and purpose. */
export const DWP_CARE: Agreement = {
  ...base,
  id: 'dwp-care-disability',
  client: 'UK/GOV/DWP/benefits',
  items: ['person.disabilityStatus'],
  purpose: { id: 'carers-allowance', description: 'Decide a claim for carer\'s allowance.' },
  consentRequired: true,
};

/** Relies on a public task, not on consent. */
export const PUBLIC_TASK: Agreement = {
  ...base,
  id: 'dwp-benefits-disability',
  client: 'UK/GOV/DWP/benefits',
  items: ['person.disabilityStatus'],
  purpose: { id: 'benefit-entitlement', description: 'Decide and pay benefits.' },
  legalBasis: 'Social Security Administration Act 1992 (synthetic)',
  consentRequired: false,
};

/** Needs consent, but ended. */
export const ENDED: Agreement = { ...BLUE_BADGE, id: 'leeds-old-blue-badge', validFrom: '2019-01-01', validUntil: '2020-12-31' };

/** Needs a preview. */
export const PREVIEWED: Agreement = {
  ...base,
  id: 'leeds-parking-preview',
  client: 'UK/MUN/LEEDS/parking',
  provider: 'UK/GOV/GRO/population',
  items: ['person.givenName', 'person.familyName', 'person.address'],
  purpose: { id: 'resident-parking-permit', description: 'Check that an applicant for a resident parking permit lives in the permit zone.' },
  legalBasis: 'Road Traffic Regulation Act 1984, s.45 (synthetic)',
  consentRequired: false,
  previewRequired: true,
};

export const AGREEMENTS = new Map([BLUE_BADGE, DWP_CARE, PUBLIC_TASK, ENDED, PREVIEWED].map((a) => [a.id, a]));

/** Awaits `p`, asserts it rejects with an OnceOnlyError of `type`, and returns the error. */
export async function rejectsWith(p: Promise<unknown>, type: ErrorType, field?: string): Promise<OnceOnlyError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isOnceOnlyError(e), `expected an OnceOnlyError ${type}, got ${String(e)}`);
    assert.equal(e.type, type, e.message);
    if (field !== undefined) assert.equal(e.detail.field, field, `detail.field of ${type}`);
    return e;
  }
  assert.fail(`expected ${type} to be thrown`);
}
