/**
 * @module cli/tracker
 * `onceonly tracker PERSON-ID --dir GATEWAY_DIR`: every use of a person's data, from every
 * register, as the citizen portal will show it. It acts as the portal's subsystem on the portal's
 * own gateway: for each agreement in the global configuration that lets that subsystem read a
 * register's usage records, it asks that register's data-usage service through the exchange, then
 * checks each record against its transparency-log entry and checkpoint (signed with the register
 * gateway's key from the configuration, and cosigned by a quorum of the other gateways as
 * witnesses) and merges the answers, newest first.
 */
import type { Command } from 'commander';
import { request } from 'undici';
import { today } from '../core/dates.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { encodeIdPath, parseSubsystemId } from '../core/ids.ts';
import { parseId } from '../core/subjects.ts';
import { DATA_USAGE_SERVICE } from '../gateway/metaservices.ts';
import { readHeldConfiguration } from '../gateway/node.ts';
import { verifyAccessRecord, type AccessPage, type AccessRecord } from '../transparency/access.ts';
import { action, intOption } from './common.ts';
import { DEFAULT_QUORUM, gatewayLogVerifier, witnessPolicy } from '../gateway/witnessing.ts';


export interface TrackedRecord {
  record: AccessRecord;
  /** Whether the record matched its log entry and the entry's proof its signed tree head. */
  verified: boolean;
  check: string;
}

export interface TrackerResult {
  person: string;
  asked: { provider: string; agreement: string; records: number; error?: string }[];
  records: TrackedRecord[];
}

/** Asks every register the portal may ask, verifies and merges. */
export async function track(person: string, opts: { dir: string; client?: string; gatewayUrl?: string; quorum?: number }): Promise<TrackerResult> {
  // A mistyped check character is refused as such, never answered "no recorded uses".
  parseId('person', person, 'PERSON-ID');
  const { conf, settings } = await readHeldConfiguration(opts.dir);
  const gw = parseSubsystemId(settings.id, 'id');
  const member = `${gw.instance}/${gw.memberClass}/${gw.memberCode}`;
  const date = today(new Date());
  const agreements = conf.agreements.filter((a) => {
    if (opts.client ? a.client !== opts.client : !a.client.startsWith(`${member}/`)) return false;
    return a.validFrom <= date && date <= a.validUntil && a.items.every((i) => /[uU]sageRecords$/.test(i));
  });
  if (agreements.length === 0) throw new OnceOnlyError('no_agreement', `no agreement in force lets ${opts.client ?? `a subsystem of ${member}`} read usage records`, { field: '--client', expected: 'a subsystem with a data-tracker agreement' });
  const base = opts.gatewayUrl ?? `http://${settings.client.host}:${settings.client.port}`;
  const quorum = opts.quorum ?? DEFAULT_QUORUM;
  const result: TrackerResult = { person, asked: [], records: [] };
  for (const a of agreements) {
    let page = 1;
    let fetched = 0;
    try {
      for (;;) {
        const url = `${base}/r1/${encodeIdPath(a.provider)}/${DATA_USAGE_SERVICE}/${person}?items=${a.items.join(',')}&page=${page}&pageSize=100`;
        // The portal system's own credential at its gateway, when the gateway authenticates it (gateway/isauth).
        const credential = process.env['ONCEONLY_CLIENT_TOKEN'];
        const res = await request(url, { headers: { accept: 'application/json', 'x-road-client': encodeIdPath(a.client), 'x-onceonly-purpose': a.purpose.id, 'x-onceonly-agreement': a.id, ...(credential ? { authorization: `Bearer ${credential}` } : {}) } });
        const body = (await res.body.json()) as AccessPage & { gateway: string; type?: string; message?: string; onceonly?: { type?: string } };
        if (res.statusCode !== 200) throw new OnceOnlyError('provider_unreachable', `${a.provider} answered ${res.statusCode}: ${body.type ?? ''}${body.onceonly?.type ? ` (${body.onceonly.type})` : ''} ${body.message ?? ''}`.trim());
        const key = gatewayLogVerifier(conf, body.gateway);
        // The register's own signature is not enough: a quorum of other organisations' gateways
        // must have cosigned the checkpoint, or the register could show this person a log
        // nobody else sees (one without the records it would rather hide, or rolled back).
        const policy = witnessPolicy(conf, body.gateway, quorum);
        for (const { record, proof } of body.records) {
          // Never another person's record: a register answering for someone else is an error, not data.
          if (record.person !== person) throw new OnceOnlyError('response_not_allowed', `${a.provider} answered a record of another person`);
          const v = key ? verifyAccessRecord(record, proof, key, policy) : { ok: false as const, reason: `gateway ${body.gateway} is not in the global configuration`, details: [] };
          result.records.push({ record, verified: v.ok, check: v.ok ? `included in the transparency log, cosigned by ${quorum > 0 ? `at least ${quorum} witnesses` : 'no witness required'}` : v.reason });
        }
        fetched += body.records.length;
        if (page * body.pageSize >= body.total || body.records.length === 0) break;
        page++;
      }
      result.asked.push({ provider: a.provider, agreement: a.id, records: fetched });
    } catch (e) {
      result.asked.push({ provider: a.provider, agreement: a.id, records: fetched, error: e instanceof Error ? e.message : String(e) });
    }
  }
  result.records.sort((x, y) => (x.record.at < y.record.at ? 1 : x.record.at > y.record.at ? -1 : 0));
  return result;
}

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
