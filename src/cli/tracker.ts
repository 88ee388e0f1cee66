/**
 * @module cli/tracker
 * `onceonly tracker PERSON-ID --dir GATEWAY_DIR`: every use of a person's data, from every
 * register, as the citizen portal will show it. It acts as the portal's subsystem on the portal's
 * own gateway: for each agreement in the global configuration that lets that subsystem read a
 * register's usage records, it asks that register's data-usage service through the exchange, then
 * checks each record against its transparency-log entry and signed tree head (with the register
 * gateway's key from the configuration) and merges the answers, newest first.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { request } from 'undici';
import { verifyGlobalConfiguration } from '../central/conf.ts';
import { today } from '../core/dates.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { encodeIdPath, parseSubsystemId } from '../core/ids.ts';
import { ConfClient } from '../gateway/confclient.ts';
import { DATA_USAGE_SERVICE } from '../gateway/metaservices.ts';
import { openGatewayStore, readAnchor, readSettings } from '../gateway/node.ts';
import { verifyAccessRecord, type AccessPage, type AccessRecord } from '../transparency/access.ts';
import type { GlobalConfiguration } from '../central/types.ts';
import { reportError } from './common.ts';

const PERSON_ID = /^P-\d{9}-[0-9X]$/;

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

async function heldConfiguration(dir: string): Promise<{ conf: GlobalConfiguration; settings: ReturnType<typeof readSettings> }> {
  const settings = readSettings(dir);
  const store = await openGatewayStore(dir, process.env['DATABASE_URL'] || undefined);
  try {
    const client = new ConfClient({ db: store.db, gatewayId: settings.id, anchor: readAnchor(join(dir, 'anchor.json')), verify: verifyGlobalConfiguration });
    await client.loadStored();
    const conf = client.held();
    if (!conf) throw new OnceOnlyError('global_conf_expired', `gateway ${settings.id} holds no global configuration yet`, { field: '--dir', expected: 'the directory of a gateway that has run' });
    return { conf, settings };
  } finally {
    await store.close();
  }
}

/** Asks every register the portal may ask, verifies and merges. */
export async function track(person: string, opts: { dir: string; client?: string; gatewayUrl?: string }): Promise<TrackerResult> {
  if (!PERSON_ID.test(person)) throw new OnceOnlyError('invalid_identifier', `${person} is not a population-register id`, { field: 'PERSON-ID', expected: 'P-#########-# (nine digits and a check character)' });
  const { conf, settings } = await heldConfiguration(opts.dir);
  const gw = parseSubsystemId(settings.id, 'id');
  const member = `${gw.instance}/${gw.memberClass}/${gw.memberCode}`;
  const date = today(new Date());
  const agreements = conf.agreements.filter((a) => {
    if (opts.client ? a.client !== opts.client : !a.client.startsWith(`${member}/`)) return false;
    return a.validFrom <= date && date <= a.validUntil && a.items.every((i) => /[uU]sageRecords$/.test(i));
  });
  if (agreements.length === 0) throw new OnceOnlyError('no_agreement', `no agreement in force lets ${opts.client ?? `a subsystem of ${member}`} read usage records`, { field: '--client', expected: 'a subsystem with a data-tracker agreement' });
  const base = opts.gatewayUrl ?? `http://${settings.client.host}:${settings.client.port}`;
  const keyOf = new Map(conf.gateways.map((g) => [g.id, g.signingKey]));
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
        const key = keyOf.get(body.gateway);
        for (const { record, proof } of body.records) {
          // Never another person's record: a register answering for someone else is an error, not data.
          if (record.person !== person) throw new OnceOnlyError('response_not_allowed', `${a.provider} answered a record of another person`);
          const v = key ? verifyAccessRecord(record, proof, key) : { ok: false as const, reason: `gateway ${body.gateway} is not in the global configuration`, details: [] };
          result.records.push({ record, verified: v.ok, check: v.ok ? 'included in the signed transparency log' : v.reason });
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
    .option('--json', 'print the records as JSON')
    .action(async (person: string, o: { dir: string; client?: string; json?: boolean }) => {
      try {
        const r = await track(person, o);
        if (o.json) {
          process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        } else {
          for (const a of r.asked) process.stdout.write(`${a.provider}: ${a.error ? `not answered (${a.error})` : `${a.records} record(s)`}\n`);
          for (const { record: x, verified, check } of r.records) {
            process.stdout.write(`${x.at}  ${x.client} read ${x.items.length ? x.items.join(', ') : 'whether the record exists'} from ${x.provider} for ${x.purpose} (agreement ${x.agreement}; ${x.legalBasis})  [${verified ? 'verified' : `NOT VERIFIED: ${check}`}]\n`);
          }
          if (r.records.length === 0) process.stdout.write('no recorded uses\n');
        }
        if (r.records.some((x) => !x.verified) || r.asked.some((a) => a.error)) process.exitCode = 1;
      } catch (e) {
        process.exitCode = reportError(e);
      }
    });
}
