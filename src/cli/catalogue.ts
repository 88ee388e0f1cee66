/**
 * @module cli/catalogue
 * `onceonly catalogue check FORM` and `onceonly catalogue validate`. The work is done by
 * {@link runCatalogueCheck} and {@link runCatalogueValidate}, which return the exit code and the
 * text to print instead of touching the process, so they can be tested directly; only the
 * commander actions write to stdout/stderr and set the exit code.
 *
 * Exit codes follow the convention of linters, because `catalogue check` is meant for CI:
 * 0 clean, 1 the form re-collects mastered data, 2 the input itself is invalid.
 */
import type { Command } from 'commander';
import { isOnceOnlyError } from '../core/errors.ts';
import { parseIsoDate, today } from '../core/dates.ts';
import { DEFAULT_CATALOGUE_FILE, loadCatalogue } from '../catalogue/catalogue.ts';
import { DEFAULT_AGREEMENTS_FILE, loadAgreements } from '../catalogue/agreements.ts';
import { checkForm, loadForm, type FormReport } from '../catalogue/forms.ts';

/** The outcome of a CLI command: what to print and how to exit. */
export interface CliOutcome {
  /** 0 clean, 1 findings, 2 invalid input. */
  exitCode: 0 | 1 | 2;
  stdout: string;
  stderr: string;
}

/** Options of `catalogue check`. */
export interface CatalogueCheckOptions {
  /** Path of the form definition file. */
  form: string;
  catalogue?: string;
  agreements?: string;
  json?: boolean;
  /** `YYYY-MM-DD`; default today. */
  date?: string;
}

/** Options of `catalogue validate`. */
export interface CatalogueValidateOptions {
  catalogue?: string;
  agreements?: string;
  json?: boolean;
}

/** Where the commander actions send their output; replaceable for tests. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  setExitCode: (code: number) => void;
}

const processIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  setExitCode: (c) => {
    process.exitCode = c;
  },
};

/** Formats a typed error for stderr: the message, then every problem with file and line. */
function errorText(e: unknown, json: boolean): string {
  if (!isOnceOnlyError(e)) throw e;
  if (json) return `${JSON.stringify(e.toJSON(), null, 2)}\n`;
  const lines = [`error (${e.type}): ${e.message}`];
  const problems = e.detail['problems'];
  if (Array.isArray(problems) && problems.length > 1) {
    for (const p of problems as { message: string; line?: number }[]) {
      const where = e.detail.file !== undefined ? `${e.detail.file}${p.line !== undefined ? `:${p.line}` : ''}: ` : '';
      lines.push(`  ${where}${p.message}`);
    }
  } else if (e.detail.expected !== undefined) {
    lines.push(`  expected: ${e.detail.expected}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The human form of a report. */
export function formatReport(report: FormReport): string {
  const out: string[] = [];
  out.push(`Form ${report.form} "${report.title}" of ${report.service}, checked against agreements in force on ${report.date}.`);
  if (report.ok) {
    out.push(`OK: none of its ${report.questions} questions asks for data a registry already masters.`);
    return `${out.join('\n')}\n`;
  }
  const reusable = report.findings.filter((f) => f.agreement !== null).length;
  out.push(
    `${report.findings.length} of ${report.questions} questions ask for data a registry already masters` +
      ` (${reusable} can be re-used under an agreement in force that day):`,
  );
  for (const f of report.findings) {
    out.push('');
    out.push(`  ${f.questionId}: "${f.label}"${f.certainty === 'probably' ? ' (probably)' : ''}`);
    out.push(`    item:      ${f.item} (${f.itemLabel}, ${f.classification})${f.matched !== undefined ? `, matched "${f.matched}"` : ''}`);
    out.push(`    master:    ${f.owner}`);
    out.push(`    agreement: ${f.agreement ?? 'none in force'}`);
    out.push(`    advice:    ${f.advice}`);
  }
  return `${out.join('\n')}\n`;
}

/** Runs `catalogue check`: loads the files, checks the form, returns the exit code and output. */
export function runCatalogueCheck(opts: CatalogueCheckOptions): CliOutcome {
  const json = opts.json === true;
  try {
    const date = opts.date === undefined ? today() : parseIsoDate(opts.date, '--date');
    const catalogue = loadCatalogue(opts.catalogue ?? DEFAULT_CATALOGUE_FILE);
    const agreements = loadAgreements(opts.agreements ?? DEFAULT_AGREEMENTS_FILE, catalogue);
    const form = loadForm(opts.form, catalogue);
    const report = checkForm(form, catalogue, agreements, date);
    return {
      exitCode: report.ok ? 0 : 1,
      stdout: json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report),
      stderr: '',
    };
  } catch (e) {
    return { exitCode: 2, stdout: '', stderr: errorText(e, json) };
  }
}

/** Runs `catalogue validate`: loads and checks the catalogue and the agreements. */
export function runCatalogueValidate(opts: CatalogueValidateOptions = {}): CliOutcome {
  const json = opts.json === true;
  try {
    const catalogueFile = opts.catalogue ?? DEFAULT_CATALOGUE_FILE;
    const agreementsFile = opts.agreements ?? DEFAULT_AGREEMENTS_FILE;
    const catalogue = loadCatalogue(catalogueFile);
    const agreements = loadAgreements(agreementsFile, catalogue);
    const items = catalogue.list();
    const owners = new Set(items.map((i) => i.owner));
    const inForce = agreements.inForce(today()).length;
    const summary = {
      catalogue: { file: catalogueFile, items: items.length, owners: owners.size },
      agreements: { file: agreementsFile, agreements: agreements.list().length, inForceToday: inForce },
    };
    const text =
      `${catalogueFile}: OK, ${items.length} items mastered by ${owners.size} registries\n` +
      `${agreementsFile}: OK, ${summary.agreements.agreements} agreements, ${inForce} in force today\n`;
    return { exitCode: 0, stdout: json ? `${JSON.stringify(summary, null, 2)}\n` : text, stderr: '' };
  } catch (e) {
    return { exitCode: 2, stdout: '', stderr: errorText(e, json) };
  }
}

function emit(io: CliIo, outcome: CliOutcome): void {
  if (outcome.stdout !== '') io.stdout(outcome.stdout);
  if (outcome.stderr !== '') io.stderr(outcome.stderr);
  io.setExitCode(outcome.exitCode);
}

/** Adds `catalogue check` and `catalogue validate` to the program. */
export function registerCatalogueCommands(program: Command, io: CliIo = processIo): void {
  const cmd = program.command('catalogue').description('the catalogue of data items and the register of data-sharing agreements');
  cmd
    .command('check')
    .description('list the questions of a form that ask for data a registry already masters (exit 1 if any, 2 on invalid input)')
    .argument('<form>', 'form definition file (.yaml, .yml or .json)')
    .option('--catalogue <file>', 'catalogue file', DEFAULT_CATALOGUE_FILE)
    .option('--agreements <file>', 'agreements file', DEFAULT_AGREEMENTS_FILE)
    .option('--date <YYYY-MM-DD>', 'check against the agreements in force on this day (default today)')
    .option('--json', 'print the report as JSON')
    .action((form: string, o: { catalogue: string; agreements: string; date?: string; json?: boolean }) => {
      emit(io, runCatalogueCheck({ form, catalogue: o.catalogue, agreements: o.agreements, json: o.json === true, ...(o.date !== undefined ? { date: o.date } : {}) }));
    });
  cmd
    .command('validate')
    .description('check the catalogue and the agreements files (exit 2 on problems)')
    .option('--catalogue <file>', 'catalogue file', DEFAULT_CATALOGUE_FILE)
    .option('--agreements <file>', 'agreements file', DEFAULT_AGREEMENTS_FILE)
    .option('--json', 'print the summary or the error as JSON')
    .action((o: { catalogue: string; agreements: string; json?: boolean }) => {
      emit(io, runCatalogueValidate({ catalogue: o.catalogue, agreements: o.agreements, json: o.json === true }));
    });
}
