/**
 * @module cli/portal
 * `onceonly portal code --data DIR --account USER`: the one-time code the demo identity
 * provider expects now for one of its synthetic test accounts (what an authenticator app holding
 * the account's secret would show).
 */
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OnceOnlyError } from '../core/errors.ts';
import { totp } from '../portal/totp.ts';
import { action } from './common.ts';

export function registerPortalCommands(program: Command): void {
  const portal = program.command('portal').description('the citizen portal and the demo identity provider');
  portal
    .command('code')
    .description('the current one-time code of a demo test account (as its authenticator app would show)')
    .requiredOption('--data <dir>', 'the demo\'s data directory')
    .requiredOption('--account <username>', 'a username from demo --json (portal.accounts)')
    .action(action((o: { data: string; account: string }) => {
      const file = join(o.data, 'issuer', 'test-accounts.json');
      if (!existsSync(file)) throw new OnceOnlyError('not_found', `no demo test accounts in ${o.data}: start the demo first`, { field: '--data', expected: 'the demo\'s data directory' });
      const accounts = (JSON.parse(readFileSync(file, 'utf8')) as { accounts: { username: string; totpSecret: string }[] }).accounts;
      const a = accounts.find((x) => x.username === o.account);
      if (!a) throw new OnceOnlyError('not_found', `no test account ${JSON.stringify(o.account.slice(0, 40))}`, { field: '--account', expected: accounts.map((x) => x.username).join(', ') });
      process.stdout.write(`${totp(Buffer.from(a.totpSecret, 'base64url'))}\n`);
    }));
}
