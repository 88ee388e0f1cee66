/**
 * Issue 11 §4: an extract that lacks a column kind the register has (a date of birth) is audited,
 * not refused with "no blocking rule can be applied", and the report says what was missing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generate } from '../registry/generate.ts';
import { runAudit } from './audit.ts';
import { AGENCIES, makeExtracts } from './extracts.ts';
import { registerFromRecords } from './register.ts';
import type { Table } from '../linkage/types.ts';

const register = registerFromRecords(generate({ people: 1500, seed: 4 }));
// The GP practice's profile: patient_id, given_name, family_name, birth_date, address_line_1, town, postcode.
const { extracts } = makeExtracts(register, { seed: 2, agencies: [AGENCIES[2]!] });
const gp = extracts[0]!;

/** The extract without the columns named. */
function without(drop: readonly string[]): Table {
  const keep = gp.header.flatMap((h, c) => (drop.includes(h) ? [] : [c]));
  return {
    source: `gp-without-${drop.join('-')}.csv`,
    columns: keep.map((c) => gp.header[c]!),
    ids: gp.rows.map((r) => r[0]!),
    rows: gp.rows.map((r) => keep.map((c) => (r[c] === '' ? null : r[c]!))),
  };
}

describe('an extract without a date of birth', () => {
  test('is audited, most rows linked, with a warning naming the missing column', () => {
    const full = runAudit(register, [{ agency: 'GP', table: without([]) }]).report.agencies[0]!;
    const noDob = runAudit(register, [{ agency: 'GP', table: without(['birth_date']) }]).report.agencies[0]!;
    assert.equal(noDob.rows, full.rows);
    // Names and an address still place most people; without the date some are left ambiguous or unfound.
    assert.ok(noDob.linked >= 0.8 * full.linked, `linked ${noDob.linked} of ${noDob.rows} without a date of birth, ${full.linked} with`);
    assert.ok(noDob.warnings.some((w) => /has no date of birth column, which the register has/.test(w)), noDob.warnings.join('\n'));
    assert.ok(!full.warnings.some((w) => /date of birth/.test(w)), full.warnings.join('\n'));
  });

  test('and without an address either is still audited on names alone, with both warnings', () => {
    const names = runAudit(register, [{ agency: 'GP', table: without(['birth_date', 'address_line_1', 'postcode']) }]).report.agencies[0]!;
    assert.equal(names.rows, gp.rows.length);
    assert.ok(names.warnings.some((w) => /no date of birth column/.test(w)));
    assert.ok(names.warnings.some((w) => /no postcode column/.test(w)));
  });
});
