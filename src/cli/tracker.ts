/**
 * @module cli/tracker
 * `onceonly tracker PERSON-ID --dir GATEWAY_DIR`: every use of a person's data, from every
 * register, verified (gateway/tracker), as the citizen portal shows it.
 */
import type { Command } from 'commander';
import { track } from '../gateway/tracker.ts';
import { DEFAULT_QUORUM } from '../gateway/witnessing.ts';
import { action, intOption } from './common.ts';

/** Registers `onceonly tracker`. */
export function registerTrackerCommand(program: Command): void {
  program
    .command('tracker')
    .description('every use of a person\'s data, from every register, verified against the registers\' transparency logs')
    .argument('<person-id>', 'population-register id, P-#########-#')
    .requiredOption('--dir <dir>', 'the citizen portal\'s gateway directory (its configuration and client port)')
    .option('--client <subsystem>', 'the portal subsystem to act as (default: any of the gateway\'s member with a tracker agreement)')
    .option('--quorum <n>', `witness cosignatures each register's checkpoint must carry (default ${DEFAULT_QUORUM})`, intOption('quorum', 0, 32))
    .option('--json', 'print the records as JSON')
    .action(action(async (person: string, o: { dir: string; client?: string; json?: boolean; quorum?: number }) => {
      const r = await track(person, o);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      } else {
        for (const a of r.asked) process.stdout.write(`${a.provider}: ${a.error ? `not answered (${a.error})` : `${a.records} record(s)`}\n`);
        for (const { record: x, verified, check } of r.records) {
          // A notification (Tell Us Once) is told as such: the organisation was told of a change, it did not ask.
          const what = x.notice ? `was told of a ${x.notice.type} change (${x.items.join(', ')}; event ${x.notice.eventId}) by` : `read ${x.items.length ? x.items.join(', ') : 'whether the record exists'} from`;
          process.stdout.write(`${x.at}  ${x.client} ${what} ${x.provider} for ${x.purpose} (agreement ${x.agreement}; ${x.legalBasis})  [${verified ? 'verified' : `NOT VERIFIED: ${check}`}]\n`);
        }
        if (r.records.length === 0) process.stdout.write('no recorded uses\n');
      }
      if (r.records.some((x) => !x.verified) || r.asked.some((a) => a.error)) process.exitCode = 1;
    }));
}
