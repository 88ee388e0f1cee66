/**
 * @module cli/demo
 * `onceonly demo`: starts everything on loopback and says where. With `--json`, stdout carries
 * exactly one JSON line (endpoints and example requests) once everything answers; all human
 * messages go to stderr so scripts can read stdout as it is.
 */
import type { Command } from 'commander';
import { startDemo } from '../demo/demo.ts';
import { generateWithProgress } from './registry.ts';
import { intOption, reportError } from './common.ts';

interface DemoCliOptions {
  data: string;
  port: number;
  people: number;
  json?: boolean;
}

/** Registers `onceonly demo`. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('start the catalogue, the register of agreements and three registries with synthetic data on loopback')
    .option('--data <dir>', 'data directory for the embedded store (ignored when DATABASE_URL is set)', 'data')
    .option('--port <base>', 'first port; services take consecutive ports (0: any free ports)', intOption('port', 0, 65_530), 8400)
    .option('--people <n>', 'people to generate on first start', intOption('people', 1, 10_000_000), 10_000)
    .option('--json', 'print one JSON line describing the endpoints and example requests once ready')
    .action(async (opts: DemoCliOptions) => {
      const say = (line: string): void => {
        process.stderr.write(`${line}\n`);
      };
      try {
        const demo = await startDemo({
          dataDir: opts.data,
          basePort: opts.port,
          people: opts.people,
          databaseUrl: process.env['DATABASE_URL'],
          generate: (store, people) => generateWithProgress(store, people, 1),
          say,
        });
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ endpoints: demo.endpoints, examples: demo.examples, extracts: demo.extracts, tellUsOnce: demo.tellUsOnce, portal: demo.portal })}\n`);
        } else {
          const out = process.stdout;
          out.write('\nonceonly demo is running (Ctrl-C to stop)\n\n');
          for (const e of demo.endpoints) out.write(`  ${e.name.padEnd(17)} ${e.url.padEnd(24)} ${e.role}\n`);
          out.write('\nTry:\n');
          for (const ex of demo.examples) {
            const h = Object.entries(ex.headers).filter(([k]) => k !== 'accept').map(([k, v]) => ` -H '${k}: ${v}'`).join('');
            const m = ex.method === 'GET' ? '' : ` -X ${ex.method}`;
            const b = ex.body !== undefined ? ` -d '${JSON.stringify(ex.body)}'` : '';
            out.write(`  # ${ex.description}\n  curl -s${m}${h}${b} '${ex.url}'\n`);
          }
          const acc = demo.portal.accounts[0];
          if (acc) out.write(`\nSign in to the citizen portal at ${demo.portal.url} as ${acc.username} (password ${acc.password}); the one-time code:\n  ${demo.portal.codeCommand}\n`);
          out.write(`\nCheck a form for questions that re-collect mastered data:\n  npx onceonly catalogue check examples/forms/resident-parking-permit.yaml\n`);
          out.write(`\nAudit three agencies' copies of the register (extracts in ${demo.extracts.dir}):\n  ${demo.extracts.command}\n\n`);
        }
        let stopping = false;
        const stop = (signal: string): void => {
          if (stopping) return;
          stopping = true;
          say(`${signal}: stopping`);
          demo.stop().then(
            () => process.exit(0),
            (e: unknown) => process.exit(reportError(e)),
          );
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      } catch (e) {
        // Exit rather than set the code: servers started before the failure would keep the
        // process alive, and a demo that failed to start must not look as if it were running.
        process.exit(reportError(e));
      }
    });
}
