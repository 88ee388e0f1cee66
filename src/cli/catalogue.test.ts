/**
 * @module cli/catalogue.test
 * `onceonly catalogue check|validate`: exit codes and output, through the exported run functions,
 * through commander, and once for real through bin/onceonly.js from another working directory.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { registerCatalogueCommands, runCatalogueCheck, runCatalogueValidate } from './catalogue.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const form = (name: string) => join(root, 'examples/forms', `${name}.yaml`);
const scratch = mkdtempSync(join(tmpdir(), 'onceonly-cli-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('check: a form that re-collects mastered data exits 1 and says which registry and agreement', () => {
  const out = runCatalogueCheck({ form: form('resident-parking-permit'), date: '2025-06-01' });
  assert.equal(out.exitCode, 1);
  assert.equal(out.stderr, '');
  assert.match(out.stdout, /6 of 8 questions ask for data a registry already masters/);
  assert.match(out.stdout, /first-name: "First name"\n {4}item: {6}person\.givenName/);
  assert.match(out.stdout, /master: {4}UK\/GOV\/GRO\/population\n {4}agreement: leeds-parking-population/);
  assert.match(out.stdout, /vehicle-registration: "Vehicle registration number" \(probably\)/);
  assert.match(out.stdout, /agreement: none in force/);
  assert.doesNotMatch(out.stdout, /email/);
});

test('check --json prints the report', () => {
  const out = runCatalogueCheck({ form: form('benefit-application'), date: '2025-06-01', json: true });
  assert.equal(out.exitCode, 1);
  const report = JSON.parse(out.stdout) as { ok: boolean; findings: { questionId: string }[] };
  assert.equal(report.ok, false);
  assert.equal(report.findings.length, 8);
});

test('check: a clean form exits 0', () => {
  const out = runCatalogueCheck({ form: form('contact-preferences') });
  assert.equal(out.exitCode, 0);
  assert.match(out.stdout, /OK: none of its 4 questions/);
});

test('check: invalid input exits 2 with the typed error on stderr', () => {
  const bad = join(scratch, 'bad-form.yaml');
  writeFileSync(bad, 'id: f\ntitle: t\nservice: UK/MUN/LEEDS/parking\nquestions:\n  - id: q\n    label: Email\n    item: person.email\n');
  let out = runCatalogueCheck({ form: bad });
  assert.equal(out.exitCode, 2);
  assert.equal(out.stdout, '');
  assert.match(out.stderr, /^error \(invalid_file\): .*bad-form\.yaml:7: .*question "q" names "person\.email"/);
  out = runCatalogueCheck({ form: bad, json: true });
  assert.equal((JSON.parse(out.stderr) as { detail: { field: string } }).detail.field, 'questions[0].item');
  out = runCatalogueCheck({ form: form('contact-preferences'), date: '2025-13-01' });
  assert.equal(out.exitCode, 2);
  assert.match(out.stderr, /invalid_date/);
  out = runCatalogueCheck({ form: join(scratch, 'missing.yaml') });
  assert.equal(out.exitCode, 2);
  const brokenCatalogue = join(scratch, 'catalogue.yaml');
  writeFileSync(brokenCatalogue, 'items:\n  - id: a.b\n    labl: x\n');
  out = runCatalogueCheck({ form: form('contact-preferences'), catalogue: brokenCatalogue });
  assert.equal(out.exitCode, 2);
  // Every problem of the file is listed, with its line.
  assert.match(out.stderr, /catalogue\.yaml:3: items\[0\]\.labl: unknown key "labl"/);
});

test('validate: the shipped files are valid; a broken one exits 2', () => {
  const ok = runCatalogueValidate();
  assert.equal(ok.exitCode, 0);
  assert.match(ok.stdout, /catalogue\.yaml: OK, 23 items mastered by 5 registries/);
  assert.match(ok.stdout, /agreements\.yaml: OK, 19 agreements/);
  const broken = join(scratch, 'agreements.yaml');
  writeFileSync(broken, 'agreements:\n  - id: x\n');
  const bad = runCatalogueValidate({ agreements: broken });
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /agreements\[0\]\.client: is required/);
});

test('the commander commands parse their options and set the exit code through the io', async () => {
  const captured = { stdout: '', stderr: '', code: -1 };
  const program = new Command().exitOverride();
  registerCatalogueCommands(program, {
    stdout: (t) => (captured.stdout += t),
    stderr: (t) => (captured.stderr += t),
    setExitCode: (c) => (captured.code = c),
  });
  await program.parseAsync(['catalogue', 'check', form('resident-parking-permit'), '--json', '--date', '2023-06-01'], { from: 'user' });
  assert.equal(captured.code, 1);
  const report = JSON.parse(captured.stdout) as { date: string; findings: { questionId: string; agreement: string | null }[] };
  assert.equal(report.date, '2023-06-01');
  assert.equal(report.findings.find((f) => f.questionId === 'vehicle-registration')?.agreement, 'leeds-parking-dvla-keeper-2021');
  captured.stdout = '';
  await program.parseAsync(['catalogue', 'validate'], { from: 'user' });
  assert.equal(captured.code, 0);
  assert.match(captured.stdout, /OK/);
});

test('bin/onceonly.js catalogue check works from any working directory', () => {
  const bin = join(root, 'bin/onceonly.js');
  const clean = spawnSync(process.execPath, [bin, 'catalogue', 'check', form('contact-preferences')], { cwd: scratch, encoding: 'utf8' });
  assert.equal(clean.status, 0, clean.stderr);
  assert.match(clean.stdout, /OK: none of its 4 questions/);
  const dirty = spawnSync(process.execPath, [bin, 'catalogue', 'check', form('resident-parking-permit'), '--json'], { cwd: scratch, encoding: 'utf8' });
  assert.equal(dirty.status, 1, dirty.stderr);
  assert.equal((JSON.parse(dirty.stdout) as { ok: boolean }).ok, false);
});
