/**
 * `onceonly audit` on extracts whose columns differ from the register's (issue 11 §4): an extract
 * without a birth date is audited as `link` would link it, and a column kind present on one side
 * only is warned about on stderr and in the JSON figures.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { csvLine } from '../linkage/csv.ts';
import type { AuditResult } from '../audit/audit.ts';
import { runCli } from '../../test/support/cli.ts';

const tmp = mkdtempSync(join(tmpdir(), 'onceonly-audit-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = join(tmp, 'data');
const extracts = join(tmp, 'extracts');

/** The GP extract rewritten with `edit` applied to its header and rows. */
function rewrite(name: string, edit: (header: string[], rows: string[][]) => [string[], string[][]]): string {
  const [header, ...rows]: string[][] = parse(readFileSync(join(extracts, 'gp-practice.csv'), 'utf8'), { relax_column_count: true });
  const [h, r] = edit(header!, rows);
  const file = join(tmp, name);
  writeFileSync(file, [h, ...r].map((row) => csvLine(row)).join(''));
  return file;
}

describe('onceonly audit with columns the register does not share', () => {
  before(async () => {
    const gen = await runCli(['registry', 'generate', '--people', '1500', '--data', data, '--extracts', extracts], tmp);
    assert.equal(gen.status, 0, gen.stderr);
  });

  test('an extract without a birth date is audited, with a warning, and an email column only it has is warned about', async () => {
    const file = rewrite('gp-no-dob.csv', (h, rows) => {
      const dob = h.indexOf('birth_date');
      assert.ok(dob >= 0, `the GP extract has a birth date: ${h.join(',')}`);
      const drop = (r: string[]): string[] => r.filter((_, c) => c !== dob);
      return [[...drop(h), 'email'], rows.map((r, i) => [...drop(r), `person${i}@example.org`])];
    });
    const json = join(tmp, 'no-dob.json');
    const run = await runCli(['audit', file, '--data', data, '--agency', 'GP', '--out-html', join(tmp, 'no-dob.html'), '--out-json', json], tmp);
    assert.equal(run.status, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /no blocking rule/);
    assert.match(run.stderr, /warning: GP: "[^"]*gp-no-dob\.csv" has no date of birth column, which the register has/);
    assert.match(run.stderr, /warning: GP: .*has a column of the kind email \("email"\) and .* has none: it is not compared/);
    const report = JSON.parse(readFileSync(json, 'utf8')) as AuditResult['report'];
    const gp = report.agencies[0]!;
    assert.ok(gp.linked > gp.rows / 2, `${gp.linked} of ${gp.rows} linked without a birth date`);
    assert.ok(gp.warnings.length >= 2, JSON.stringify(gp.warnings));
  });

  test('a column name of 100,000 characters is cut in the message', async () => {
    const long = `x${'y'.repeat(100_000)}`;
    const file = rewrite('gp-long.csv', (h, rows) => [h.map((c, i) => (i === 0 ? c : i === 1 ? long : c)), rows]);
    const run = await runCli(['audit', file, '--data', data, '--id', `${long}z`, '--out-html', join(tmp, 'long.html'), '--out-json', join(tmp, 'long.json')], tmp);
    assert.equal(run.status, 2, run.stderr);
    assert.ok(run.stderr.length < 5_000, `the message is ${run.stderr.length} characters long`);
    assert.match(run.stderr, /no column named "xy+…" \(100,002 characters\)/);
  });
});
