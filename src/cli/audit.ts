/**
 * @module cli/audit
 * `onceonly audit EXTRACT.csv...`: the duplication audit of agencies' extracts against the
 * population register in the store (SQLite under --data, or PostgreSQL when DATABASE_URL is set).
 * Writes the HTML report and the same figures as JSON; prints a short summary. Progress and
 * warnings go to stderr.
 */
import { RegistryRepository } from '../registry/repository.ts';
import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { OnceOnlyError } from '../core/errors.ts';
import { runAudit, DEFAULT_COSTS, type ExtractInput } from '../audit/audit.ts';
import { agencyFromFile, loadCosts, readExtractFile } from '../audit/input.ts';
import { registerFromStore } from '../audit/register.ts';
import { renderHtml } from '../audit/report.ts';
import { writeTextFile } from '../core/files.ts';
import { populationStatus } from '../registry/populate.ts';
import { action, openCliStore } from './common.ts';
import { checkOutputs } from './outputs.ts';
import { shown } from '../linkage/shown.ts';

interface AuditCliOptions {
  agency: string[];
  id?: string;
  registry: string;
  data: string;
  outHtml: string;
  outJson: string;
  costs?: string;
  threshold: string;
  margin: string;
}

/*
 * Options are checked in the action rather than by commander's argument parsers: a parser's plain
 * Error escapes commander as a stack trace, and bad input is a typed error with exit code 2.
 */
function probability(v: string): number {
  const n = Number(v);
  if (!/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(v) || !(n > 0 && n <= 1)) {
    throw new OnceOnlyError('invalid_request', `--threshold must be a probability above 0 and at most 1, got ${JSON.stringify(v)}`, { field: '--threshold', expected: 'a number above 0 and at most 1, e.g. 0.5' });
  }
  return n;
}

function bits(v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(n)) {
    throw new OnceOnlyError('invalid_request', `--margin must be a number of bits, zero or more, got ${JSON.stringify(v)}`, { field: '--margin', expected: 'a number of bits, zero or more, e.g. 3' });
  }
  return n;
}

/** Registers `onceonly audit`. */
export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description('link agencies\' extracts (CSV) to the population register and report the copies they hold: duplicates, stale and conflicting values, people exposed, yearly cost')
    .argument('<extracts...>', 'CSV files, one per agency')
    .option('--agency <name>', 'the agency of each file, in order (repeat once per file); default: from the file name', (v: string, acc: string[]) => [...acc, v], [])
    .option('--id <column>', 'the column holding each row\'s record id (default: the first column)')
    .option('--registry <name>', 'the register to audit against', 'population')
    .option('--data <dir>', 'data directory of the embedded store (ignored when DATABASE_URL is set)', 'data')
    .option('--out-html <file>', 'where to write the HTML report', 'audit-report.html')
    .option('--out-json <file>', 'where to write the figures as JSON', 'audit-report.json')
    .option('--costs <file>', `yearly costs as JSON or YAML: {currency, perRecord, perItem: {givenName, familyName, birthDate, address, postcode}, perDiscrepancy}; default ${DEFAULT_COSTS.currency} figures in docs/audit.md`)
    .option('--threshold <p>', 'match probability at which a register person is a candidate for a row', '0.5')
    .option('--margin <bits>', 'how far ahead of the runner-up (log2 of the odds ratio) the best candidate must be to be taken', '3')
    // A usage error (a missing or unknown option) is bad input too: exit code 2, as reportError gives.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .action(action(async (files: string[], opts: AuditCliOptions) => {
      const threshold = probability(opts.threshold);
      const margin = bits(opts.margin);
      if (opts.registry !== 'population') {
        throw new OnceOnlyError('invalid_request', `the audit runs against the population register, not ${shown(opts.registry)}`, { field: '--registry', expected: 'population' });
      }
      if (opts.agency.length > 0 && opts.agency.length !== files.length) {
        throw new OnceOnlyError('invalid_request', `${opts.agency.length} --agency names for ${files.length} files`, { field: '--agency', expected: 'one --agency per file, in the same order, or none' });
      }
      checkOutputs([['--out-html', opts.outHtml], ['--out-json', opts.outJson]], [...files.map((f) => ['an extract', f] as const), ['--costs', opts.costs]]);
      const agencies = files.map((file, i) => opts.agency[i] ?? agencyFromFile(file));
      const twice = agencies.find((a, i) => agencies.indexOf(a) !== i);
      if (twice !== undefined) {
        throw new OnceOnlyError('invalid_request', `two extracts are named ${shown(twice)}`, { field: opts.agency.length ? '--agency' : 'extracts', expected: 'a different agency name per extract (give --agency once per file)' });
      }
      // Without DATABASE_URL the store is SQLite under --data: a folder that does not exist is a
      // mistyped path, and opening it would create an empty store there.
      if (!process.env['DATABASE_URL']) {
        let isDir = false;
        try {
          isDir = statSync(opts.data).isDirectory();
        } catch {
          isDir = false;
        }
        if (!isDir) throw new OnceOnlyError('not_found', `the data folder ${opts.data} does not exist`, { field: '--data', expected: 'the folder of a store filled by `onceonly registry generate` (or the demo)' });
      }
      const costs = opts.costs ? loadCosts(opts.costs) : DEFAULT_COSTS;
      // Every extract is read before the register, so a bad file is reported at once.
      const extracts: ExtractInput[] = files.map((file, i) => {
        const { table, warnings, lines } = readExtractFile(file, opts.id);
        for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
        return { agency: agencies[i]!, table, lines };
      });
      const store = await openCliStore(opts);
      try {
        const status = await populationStatus(store);
        if (!status.loaded || status.people === 0) {
          throw new OnceOnlyError('not_found', `the store at ${store.location} holds no population register`, { field: '--data', expected: 'a store filled by `onceonly registry generate` (or the demo)' });
        }
        process.stderr.write(`reading the population register (${status.people} people) from ${store.location}\n`);
        const register = await registerFromStore(new RegistryRepository(store.db), { source: `population register at ${store.location}` });
        let last = '';
        const result = runAudit(register, extracts, {
          threshold,
          margin,
          costs,
          onProgress: (agency) => {
            if (agency !== last) process.stderr.write(`linking ${agency}\n`);
            last = agency;
          },
        });
        const report = result.report;
        for (const ag of report.agencies) for (const w of ag.warnings) process.stderr.write(`warning: ${ag.agency}: ${w}\n`);
        writeTextFile(opts.outJson, `${JSON.stringify(report, null, 2)}\n`);
        writeTextFile(opts.outHtml, renderHtml(report));
        const t = report.total;
        const out = process.stdout;
        for (const a of report.agencies) {
          out.write(`${a.agency}: ${a.rows} rows, ${a.linked} linked, ${a.unmatched} not found, ${a.ambiguous} ambiguous, ${a.duplicateRows} duplicate rows\n`);
        }
        out.write(`${t.peopleHeld} people held in redundant copies (${t.peopleHeldBySeveral} by two or more agencies); estimated yearly cost ${t.cost.total.toFixed(2)} ${report.settings.costs.currency}\n`);
        out.write(`report: ${opts.outHtml}\nfigures: ${opts.outJson}\n`);
      } finally {
        await store.close();
      }
    }));
}
