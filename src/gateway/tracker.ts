/**
 * @module gateway/tracker
 * Every use of a person's data, from every register, as the citizen portal shows it and
 * `onceonly tracker` prints it. It acts as the portal's subsystem on the portal's own gateway:
 * for each agreement in the global configuration that lets that subsystem read a register's
 * usage records, it asks that register's data-usage service through the exchange, then checks
 * each record against its transparency-log entry and checkpoint (signed with the register
 * gateway's key from the configuration, and cosigned by a quorum of the other gateways as
 * witnesses) and merges the answers, newest first.
 */
import { request } from 'undici';
import { today } from '../core/dates.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { encodeIdPath, parseSubsystemId } from '../core/ids.ts';
import { parseId } from '../core/subjects.ts';
import { DATA_USAGE_SERVICE } from './metaservices.ts';
import { readHeldConfiguration } from './node.ts';
import { verifyAccessRecord, type AccessPage, type AccessRecord } from '../transparency/access.ts';
import type { InclusionProofDocument } from '../transparency/formats.ts';
import { DEFAULT_QUORUM, gatewayLogVerifier, witnessPolicy } from './witnessing.ts';

export interface TrackedRecord {
  record: AccessRecord;
  /** The record's inclusion proof and checkpoint, as the register gave them (a proof bundle). */
  proof: InclusionProofDocument;
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
export async function track(person: string, opts: { dir: string; client?: string; gatewayUrl?: string; quorum?: number; token?: string }): Promise<TrackerResult> {
  // A mistyped check character is refused as such, never answered "no recorded uses".
  parseId('person', person, 'PERSON-ID');
  const { conf, settings } = await readHeldConfiguration(opts.dir);
  const gw = parseSubsystemId(settings.id, 'id');
  const member = `${gw.instance}/${gw.memberClass}/${gw.memberCode}`;
  const date = today(new Date());
  const agreements = conf.agreements.filter((a) => {
    if (opts.client ? a.client !== opts.client : !a.client.startsWith(`${member}/`)) return false;
    return a.validFrom <= date && date <= a.validUntil && a.items.length > 0 && a.items.every((i) => /[uU]sageRecords$/.test(i));
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
        const credential = opts.token ?? process.env['ONCEONLY_CLIENT_TOKEN'];
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
          result.records.push({ record, proof, verified: v.ok, check: v.ok ? `included in the transparency log, cosigned by ${quorum > 0 ? `at least ${quorum} witnesses` : 'no witness required'}` : v.reason });
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

