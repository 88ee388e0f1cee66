/**
 * The portal in a real browser (issue 13): Debian's chromium driven by playwright-core. A person
 * signs in through the demo identity provider with a mouse and then with the keyboard alone,
 * sees their data and who used it, and signs out; every page on the way is scanned with axe-core
 * for WCAG 2.2 A and AA failures and must have none. With ONCEONLY_SCREENSHOTS set to a folder,
 * the main pages are saved there (docs/portal.md shows them).
 *
 * Skipped, saying so, where no chromium is installed (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AxeBuilder } from '@axe-core/playwright';
import SQLite from 'better-sqlite3';
import { chromium, type Browser, type Page } from 'playwright-core';
import { populate } from '../registry/populate.ts';
import { startDemo, type RunningDemo } from '../demo/demo.ts';
import { totp } from './totp.ts';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const SKIP = existsSync(CHROMIUM) ? false : `browser tests skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
const SHOTS = process.env['ONCEONLY_SCREENSHOTS'];
const WCAG = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];

const dir = mkdtempSync(join(tmpdir(), 'onceonly-browser-'));
let demo: RunningDemo;
let browser: Browser;

before(async () => {
  if (SKIP) return;
  demo = await startDemo({ dataDir: dir, basePort: 0, people: 300, generate: (store, people) => populate(store, { people, seed: 1 }) });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});
after(async () => {
  await browser?.close();
  await demo?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** No WCAG 2.2 A/AA violation on the page as it is now. */
async function accessible(page: Page, what: string): Promise<void> {
  const r = await new AxeBuilder({ page }).withTags(WCAG).analyze();
  assert.deepEqual(r.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`), [], `${what}: axe found violations`);
}

async function shot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

const code = (secret: string): string => totp(Buffer.from(secret, 'base64url'));

describe('citizen portal in a browser', { skip: SKIP }, () => {
  test('the scanner finds what it should: a page with an unlabelled field and an image without alt text fails', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.setContent('<!DOCTYPE html><html lang="en"><head><title>x</title></head><body><main><h1>x</h1><img src="data:,"><input type="text"></main></body></html>');
    const r = await new AxeBuilder({ page }).withTags(WCAG).analyze();
    const ids = r.violations.map((v) => v.id);
    assert.ok(ids.includes('image-alt') && ids.includes('label'), ids.join(', '));
    await context.close();
  });

  test('sign in, see your data and who used it, sign out: every page accessible', async () => {
    const account = demo.portal.accounts[0]!;
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(demo.portal.url);
    await accessible(page, 'start page');
    await shot(page, 'start');
    await page.getByRole('button', { name: 'Start now' }).click();
    await page.waitForURL(`${demo.portal.issuer}/**`);
    await accessible(page, 'identity provider sign-in');
    // A wrong code first: the error summary, as the Design System shows it.
    await page.getByLabel('Username').fill(account.username);
    await page.getByLabel('Password').fill(account.password);
    await page.getByLabel('Code from your authenticator app').fill('000000');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { name: 'There is a problem' }).waitFor();
    await accessible(page, 'identity provider sign-in with an error');
    await shot(page, 'issuer-error');
    await page.getByLabel('Password').fill(account.password);
    await page.getByLabel('Code from your authenticator app').fill(code(account.totpSecret));
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(`${demo.portal.url}/your-data`);
    assert.match(await page.locator('h1').innerText(), /Your data/);
    assert.match(await page.locator('main').innerText(), new RegExp(account.name));
    await accessible(page, 'your data');
    await shot(page, 'your-data');
    await page.getByRole('link', { name: 'Who has used your data' }).click();
    await page.waitForURL(`${demo.portal.url}/who-used-your-data`);
    assert.match(await page.locator('main').innerText(), /Verified/);
    await accessible(page, 'who has used your data');
    await shot(page, 'who-used-your-data');
    await page.getByRole('link', { name: 'How we found your record' }).click();
    await accessible(page, 'how we found your record');
    await shot(page, 'how-we-found-you');
    // Requests waiting for you: the benefits agency asks for details that need the person's yes.
    await page.goto(`${demo.portal.url}/who-used-your-data`);
    const href = (await page.locator('a[download]').first().getAttribute('href'))!;
    const person = ((await (await page.request.get(`${demo.portal.url}${href}`)).json()) as { record: { person: string } }).record.person;
    const dwp = demo.endpoints.find((e) => e.name === 'gateway-dwp')!.url;
    await fetch(`${dwp}/r1/UK/GOV/GRO/population/people/${person}?items=person.previousAddresses,person.nationality`, { headers: { accept: 'application/json', 'x-road-client': 'UK/GOV/DWP/benefits', 'x-onceonly-purpose': 'habitual-residence-test' } }).then((r) => r.text());
    await page.getByRole('link', { name: 'Requests waiting for you' }).click();
    await page.getByRole('heading', { name: /Department for Work and Pensions/ }).waitFor();
    await accessible(page, 'requests waiting for you');
    await shot(page, 'requests');
    await page.getByRole('button', { name: /^Approve/ }).click();
    await page.getByRole('heading', { name: 'You approved the request' }).waitFor();
    await accessible(page, 'request approved');
    // The agency asks again and is answered: its use of the data appears for the person.
    const retry = await fetch(`${dwp}/r1/UK/GOV/GRO/population/people/${person}?items=person.previousAddresses,person.nationality`, { headers: { accept: 'application/json', 'x-road-client': 'UK/GOV/DWP/benefits', 'x-onceonly-purpose': 'habitual-residence-test' } });
    assert.equal(retry.status, 200, await retry.text());
    await page.getByRole('link', { name: 'Who has used your data' }).click();
    await page.getByRole('heading', { name: /^Department for Work and Pensions/ }).first().waitFor();
    assert.match(await page.locator('main').innerText(), /Read Previous addresses, Nationality/);
    // Your permissions: give one, then see it given, with its history and receipt.
    await page.getByRole('link', { name: 'Your permissions' }).click();
    await accessible(page, 'your permissions');
    await page.getByRole('button', { name: /Give permission for 12 months/ }).click();
    await page.getByText('Withdraw permission').waitFor();
    await accessible(page, 'your permissions, one given');
    await shot(page, 'permissions');
    const leeds = demo.endpoints.find((e) => e.name === 'gateway-leeds')!.url;
    const councilRead = (): Promise<Response> => fetch(`${leeds}/r1/UK/GOV/GRO/population/people/${person}?items=person.birthDate`, { headers: { accept: 'application/json', 'x-road-client': 'UK/MUN/LEEDS/parking', 'x-onceonly-purpose': 'senior-concession' } });
    assert.equal((await councilRead()).status, 200);
    // Withdrawn: the council's next request is refused.
    await page.getByRole('button', { name: /Withdraw permission/ }).click();
    await page.getByText('Withdrawn').first().waitFor();
    await accessible(page, 'your permissions, one withdrawn');
    const refused = await councilRead();
    assert.equal(((await refused.json()) as { onceonly?: { type?: string } }).onceonly?.type, 'consent_required');
    // Report a move: the postcode, a wrong answer (the error summary), then the address and date.
    await page.getByRole('link', { name: 'Report a change' }).first().click();
    await accessible(page, 'report a change');
    await page.getByRole('link', { name: 'Report a change of address' }).click();
    await accessible(page, 'new postcode');
    const db = new SQLite(join(dir, 'onceonly.sqlite'), { readonly: true });
    const postcode = JSON.parse((db.prepare("SELECT value FROM fact WHERE item = 'address.postcode' AND superseded_at IS NULL ORDER BY subject LIMIT 1 OFFSET 3").get() as { value: string }).value) as string;
    db.close();
    await page.getByLabel('What is your new postcode?').fill(postcode);
    await page.getByRole('button', { name: 'Find address' }).click();
    await accessible(page, 'choose your new address');
    await page.getByRole('button', { name: 'Report my move' }).click();
    await page.getByRole('heading', { name: 'There is a problem' }).waitFor();
    await accessible(page, 'choose your new address, with errors');
    await shot(page, 'report-a-move-errors');
    await page.getByRole('radio').first().check();
    const today = new Date();
    await page.getByLabel('Day').fill(String(today.getUTCDate()));
    await page.getByLabel('Month').fill(String(today.getUTCMonth() + 1));
    await page.getByLabel('Year').fill(String(today.getUTCFullYear()));
    await page.getByRole('button', { name: 'Report my move' }).click();
    await page.getByRole('heading', { name: 'Change reported' }).waitFor();
    await accessible(page, 'change reported');
    await shot(page, 'change-reported');
    for (const [path, what] of [['/accessibility', 'accessibility statement'], ['/privacy', 'privacy notice']] as const) {
      await page.goto(`${demo.portal.url}${path}`);
      await accessible(page, what);
    }
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${demo.portal.url}/signed-out`);
    await accessible(page, 'signed out');
    // The session is gone: the data page asks to sign in again.
    const back = await page.goto(`${demo.portal.url}/your-data`);
    assert.equal(back?.status(), 401);
    await accessible(page, 'signed-out problem page');
    await context.close();
  });

  test('the sign-in journey with the keyboard alone', async () => {
    const account = demo.portal.accounts[1]!;
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(demo.portal.url);
    // Tab from the top of the page to the start button, as a keyboard user would.
    let found = false;
    for (let i = 0; i < 30 && !found; i++) {
      await page.keyboard.press('Tab');
      found = (await page.locator(':focus').innerText().catch(() => '')).trim().startsWith('Start now');
    }
    assert.ok(found, 'the start button is reachable with Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${demo.portal.issuer}/**`);
    const focusOn = async (id: string): Promise<void> => {
      for (let i = 0; i < 30; i++) {
        if ((await page.locator(':focus').getAttribute('id').catch(() => null)) === id) return;
        await page.keyboard.press('Tab');
      }
      assert.fail(`#${id} is not reachable with Tab`);
    };
    await focusOn('username');
    await page.keyboard.type(account.username);
    await focusOn('password');
    await page.keyboard.type(account.password);
    await focusOn('code');
    await page.keyboard.type(code(account.totpSecret));
    await page.keyboard.press('Enter');
    await page.waitForURL(`${demo.portal.url}/your-data`);
    assert.match(await page.locator('main').innerText(), new RegExp(account.name));
    await context.close();
  });
});
