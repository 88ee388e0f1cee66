/**
 * @module cli/consent
 * `onceonly consent give|list|withdraw|receipt`: the operator of a provider gateway records,
 * lists and withdraws a person's consent and issues signed receipts, on the gateway's own store
 * (`--dir`, or PostgreSQL when DATABASE_URL is set, as `gateway serve` uses it). The citizen
 * portal will do the same through the consent API; this is for the operator and for the demo.
 *
 * The agreements are the ones of the newest global configuration the gateway holds (verified
 * against its anchor), limited to those its member provides: consent is recorded where release is
 * decided.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Agreement } from '../catalogue/agreements.ts';
import { verifyGlobalConfiguration } from '../central/conf.ts';
import { loadPrivateKey } from '../core/crypto.ts';
import { parseIsoDate, parseInstant } from '../core/dates.ts';
import { OnceOnlyError } from '../core/errors.ts';
import { parseSubsystemId } from '../core/ids.ts';
import { ConsentStore, DPV_STATE, consentLogRecord, type Consent } from '../consent/consent.ts';
import { ConfClient } from '../gateway/confclient.ts';
import { openGatewayStore, readAnchor, readSettings, transparencyLogId } from '../gateway/node.ts';
import { TransparencyLog } from '../transparency/log.ts';
import type { Store } from '../store/db.ts';
import { action } from './common.ts';

// node.ts keeps its file names private; these are the same names in the gateway directory.
const ANCHOR_FILE = 'anchor.json';
const SIGNING_KEY_FILE = 'signing.key.pem';

interface Gw {
  id: string;
  store: Store;
  consents: ConsentStore;
}

/** Opens a gateway directory's store with the agreements its newest configuration lists. */
async function withGateway<T>(dir: string, fn: (gw: Gw) => Promise<T>): Promise<T> {
  const settings = readSettings(dir);
  const anchor = readAnchor(join(dir, ANCHOR_FILE));
  const gw = parseSubsystemId(settings.id, 'id');
  const member = `${gw.instance}/${gw.memberClass}/${gw.memberCode}`;
  const store = await openGatewayStore(dir, process.env['DATABASE_URL'] || undefined);
  try {
    const conf = new ConfClient({ db: store.db, gatewayId: settings.id, anchor, verify: verifyGlobalConfiguration });
    await conf.loadStored();
    const held = conf.held();
    if (!held) {
      throw new OnceOnlyError('global_conf_expired', `gateway ${settings.id} holds no global configuration yet`, { field: '--dir', expected: 'a gateway that has run `onceonly gateway serve` at least once' });
    }
    const byId = new Map<string, Agreement>();
    for (const a of held.agreements) {
      const p = parseSubsystemId(a.provider, 'agreement.provider');
      if (`${p.instance}/${p.memberClass}/${p.memberCode}` === member) byId.set(a.id, a);
    }
    // The same transparency log the running gateway appends consent events to.
    const signingKey = loadPrivateKey(readFileSync(join(dir, SIGNING_KEY_FILE), 'utf8'));
    const tlog = new TransparencyLog({ db: store.db, dialect: store.dialect, logId: transparencyLogId(settings.id), signingKey });
    const consents = new ConsentStore({ db: store.db, agreements: (id) => byId.get(id), onEvent: async (event, tx) => void (await tlog.appendIn(tx, [consentLogRecord(event, settings.id)])) });
    return await fn({ id: settings.id, store, consents });
  } finally {
    await store.close();
  }
}

/** `--expires` as an instant: a date means "to the end of that day (UTC)". */
function expiryOf(o: { expires?: string; for?: string }, now = new Date()): string {
  if ((o.expires === undefined) === (o.for === undefined)) {
    throw new OnceOnlyError('invalid_expiry', 'say until when: --expires DATE|INSTANT or --for DURATION (one of them)', { field: '--expires', expected: 'e.g. --expires 2027-03-31 or --for 90d' });
  }
  if (o.for !== undefined) {
    const m = /^(\d{1,5})([dhm])$/.exec(o.for);
    if (!m) throw new OnceOnlyError('invalid_expiry', '--for must be a number with d (days), h (hours) or m (minutes)', { field: '--for', expected: 'e.g. 90d, 12h, 30m' });
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm'];
    return new Date(now.getTime() + Number(m[1]) * unit).toISOString();
  }
  const text = o.expires!;
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return new Date(Date.parse(`${parseIsoDate(text, '--expires')}T00:00:00.000Z`) + 86_400_000).toISOString();
  return parseInstant(text, '--expires');
}

function describe(c: Consent, now = new Date()): string {
  const inForce = c.state === 'given' && c.expiresAt !== null && c.expiresAt > now.toISOString();
  const lines = [
    `${c.id}  ${c.state} (${DPV_STATE[c.state]})${inForce ? ', in force' : ''}`,
    `  person ${c.person}; controller ${c.controller}; agreement ${c.agreement}`,
    `  purpose ${c.purpose.id}: ${c.purpose.description}`,
    `  items ${c.items.join(', ')}`,
    `  given ${c.givenAt ?? '-'}; expires ${c.expiresAt ?? '-'}`,
    ...c.history.map((h) => `  ${h.seq}. ${h.at} ${h.from ?? '(new)'} -> ${h.to} by ${h.actor}`),
  ];
  return `${lines.join('\n')}\n`;
}

function out(json: boolean | undefined, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text);
}

/** Registers `onceonly consent`. */
export function registerConsentCommands(program: Command): void {
  const consent = program.command('consent').description('citizens\' consent records on a provider gateway (ISO/IEC TS 27560)');

  consent
    .command('give')
    .description('record that a person gives consent under an agreement that requires it')
    .requiredOption('--dir <dir>', 'the provider gateway\'s directory')
    .requiredOption('--person <id>', 'the person, e.g. P-000001234-7')
    .requiredOption('--agreement <id>', 'the agreement (flagged consentRequired)')
    .option('--items <list>', 'comma-separated items (default: all of the agreement\'s)')
    .option('--expires <when>', 'until when: a date (to the end of that day, UTC) or an ISO 8601 instant')
    .option('--for <duration>', 'or for how long from now: 90d, 12h, 30m')
    .option('--json', 'print the record as JSON')
    .action(action(async (o: { dir: string; person: string; agreement: string; items?: string; expires?: string; for?: string; json?: boolean }) => {
      const expiresAt = expiryOf(o);
      const items = o.items?.split(',').map((s) => s.trim()).filter(Boolean);
      const c = await withGateway(o.dir, (gw) => gw.consents.give({ person: o.person, agreement: o.agreement, ...(items ? { items } : {}), expiresAt, actor: 'operator' }));
      out(o.json, c, `consent given: ${describe(c)}`);
    }));

  consent
    .command('list')
    .description('a person\'s consent records, newest first, with their history')
    .requiredOption('--dir <dir>', 'the provider gateway\'s directory')
    .requiredOption('--person <id>', 'the person')
    .option('--json', 'print JSON')
    .action(action(async (o: { dir: string; person: string; json?: boolean }) => {
      const list = await withGateway(o.dir, (gw) => gw.consents.list(o.person));
      out(o.json, list, list.length ? list.map((c) => describe(c)).join('') : `no consent records for ${o.person}\n`);
    }));

  consent
    .command('withdraw')
    .description('withdraw a given consent: the gateway refuses the very next request relying on it')
    .argument('<id>', 'the consent id')
    .requiredOption('--dir <dir>', 'the provider gateway\'s directory')
    .option('--person <id>', 'refuse unless the consent is this person\'s')
    .option('--json', 'print the record as JSON')
    .action(action(async (id: string, o: { dir: string; person?: string; json?: boolean }) => {
      const c = await withGateway(o.dir, (gw) => gw.consents.withdraw(id, { actor: 'operator', ...(o.person !== undefined ? { person: o.person } : {}) }));
      out(o.json, c, `consent withdrawn: ${describe(c)}`);
    }));

  consent
    .command('receipt')
    .description('a consent receipt signed with the gateway\'s key (JSON with the receipt, its compact JWS and the public key)')
    .argument('<id>', 'the consent id')
    .requiredOption('--dir <dir>', 'the provider gateway\'s directory')
    .option('--out <file>', 'write it to a file instead of stdout')
    .action(action(async (id: string, o: { dir: string; out?: string }) => {
      const keyFile = join(o.dir, SIGNING_KEY_FILE);
      let key;
      try {
        key = loadPrivateKey(readFileSync(keyFile, 'utf8'));
      } catch (e) {
        throw new OnceOnlyError('invalid_file', `cannot read the gateway's signing key: ${e instanceof Error ? e.message : String(e)}`, { file: keyFile, expected: 'the signing.key.pem written by `onceonly gateway init`' });
      }
      const signed = await withGateway(o.dir, (gw) => gw.consents.receipt(id, key, { issuer: gw.id }));
      const text = `${JSON.stringify(signed, null, 2)}\n`;
      if (o.out) {
        writeFileSync(o.out, text);
        process.stdout.write(`receipt ${signed.receipt.receiptId} for consent ${id} written to ${o.out}\n`);
      } else {
        process.stdout.write(text);
      }
    }));
}
