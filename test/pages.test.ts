// /dashboard and /demo in a real headless Chromium (Debian's, driven by
// playwright-core): the dashboard shows what the server reports and follows a
// change; the demo page receives a push sent by the test and sends one
// itself. Screenshots (laptop and phone) go to .tap/artifacts/.

import t from 'tap';
import type { Page } from 'playwright-core';
import { SignJWT } from 'jose';
import { Client, postJson, startServer, stats } from './helpers/server';
import { launch, open, screenshot } from './helpers/chromium';

const PHONE = { width: 390, height: 844 };

const text = (page: Page, selector: string): Promise<string> => page.locator(selector).innerText();

// Code run in the page is given as text: the tests are compiled without the DOM's types.

/** True when the page needs no sideways scrolling (wide tables scroll inside their own box). */
const fitsWidth = (page: Page): Promise<boolean> => page.evaluate('document.documentElement.scrollWidth <= window.innerWidth');

/** Waits until element `id` shows `value`. */
const shows = (page: Page, id: string, value: string): Promise<unknown> => page.waitForFunction(`document.getElementById(${JSON.stringify(id)}).textContent === ${JSON.stringify(value)}`);

t.test('dashboard: the server\'s numbers, following a change; an API key goes into every request', async (t) => {
  const server = await startServer({ shards: 2 });
  t.teardown(() => server.stop());
  const browser = await launch(t);
  const { page, errors } = await open(browser, `${server.http}/dashboard`);
  await page.locator('#ready.ok').waitFor();
  t.equal(await text(page, '#ready'), 'ready');
  t.equal(await text(page, '#connections'), '0');
  t.equal(await page.locator('#shards tbody tr').count(), 2, 'one row per shard');

  const client = await Client.open(server.wsUrl);
  t.teardown(() => client.close());
  await client.join('dash');
  await shows(page, 'connections', '1');
  t.equal(await text(page, '#groups'), '1');
  for (let i = 0; i < 5; i++) await postJson(`${server.http}/push`, { to: ['dash'], content: `d${i}` });
  await client.waitFrames(6);
  const s = await stats(server);
  const shard = s.shards.findIndex((x) => x.clients === 1);
  const row = page.locator(`#shards tr[data-shard="${shard}"] td`);
  await page.waitForFunction(`document.querySelector('#shards tr[data-shard="${shard}"]')?.children[5]?.textContent === '5'`);
  t.equal(await row.nth(1).innerText(), 'up');
  t.equal(await row.nth(2).innerText(), '1', 'the shard holding the connection, as /stats says');
  t.equal(await row.nth(5).innerText(), String(s.shards[shard]!.delivered), 'delivered, as /stats says');
  await screenshot(page, 'dashboard');

  // The key dialog: every request from then on carries the key.
  await page.click('#key-button');
  await page.fill('#key-input', 's3cret');
  const sent = page.waitForRequest((req) => req.url().endsWith('/metrics') && req.headers()['authorization'] === 'Bearer s3cret');
  await page.click('#key-save');
  await sent;
  t.pass('GET /metrics carries Authorization: Bearer <key>');

  const phone = await open(browser, `${server.http}/dashboard`, PHONE);
  await shows(phone.page, 'connections', '1');
  t.ok(await fitsWidth(phone.page), 'on a phone the page needs no sideways scrolling');
  await screenshot(phone.page, 'dashboard-phone');
  t.same([...errors, ...phone.errors], [], 'no script or loading errors');
});

t.test('demo: joined at once, receives a push from the test, sends one from the page', async (t) => {
  const server = await startServer({ shards: 2 });
  t.teardown(() => server.stop());
  const browser = await launch(t);
  const { page, errors } = await open(browser, `${server.http}/demo`);
  await page.locator('#status.ok').waitFor();
  const card = await page.inputValue('#card-id');
  t.match(await text(page, '#status'), `joined ${card}`);

  const res = await postJson(`${server.http}/push`, { to: [card], content: 'from the test <b>not bold</b>' });
  t.equal(res.status, 200);
  await page.locator('#feed .push', { hasText: 'from the test' }).waitFor();
  t.equal(await page.locator('#feed .push').first().innerText(), 'from the test <b>not bold</b>', 'shown as text, never as HTML');

  // Another member of the group (a plain WebSocket client) gets what the page sends.
  const other = await Client.open(server.wsUrl);
  t.teardown(() => other.close());
  await other.join(card);
  await page.fill('#push-content', 'from the page');
  await page.click('#send');
  await page.locator('#push-result', { hasText: 'accepted (200)' }).waitFor();
  await page.locator('#feed .push', { hasText: 'from the page' }).waitFor();
  await other.waitFrames(2);
  t.same(other.data(1), ['from the page'], 'the push went through the HTTP API to every member');
  t.match(await text(page, '#curl'), `curl -X POST ${server.http}/push -d '{"from":"demo","to":["${card}"],"content":"from the page"}'`);
  await screenshot(page, 'demo');

  const phone = await open(browser, `${server.http}/demo`, PHONE);
  await phone.page.locator('#status.ok').waitFor();
  t.ok(await fitsWidth(phone.page), 'on a phone the page needs no sideways scrolling');
  await screenshot(phone.page, 'demo-phone');
  t.same([...errors, ...phone.errors], [], 'no script or loading errors');
});

t.test('demo with signed joins on: the refused join says what to do; a token pasted into the page joins', async (t) => {
  const secret = 'pages-join-secret-0123456789abcdef01234567';
  const server = await startServer({ shards: 1, sets: [`auth.join_secret=${secret}`] });
  t.teardown(() => server.stop());
  const browser = await launch(t);
  const { page } = await open(browser, `${server.http}/demo`);
  await page.locator('#feed .error', { hasText: 'signed joins are on' }).waitFor();
  const card = await page.inputValue('#card-id');
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(card).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
  await page.fill('#join-token', token);
  await page.click('#join');
  await page.locator('#status.ok').waitFor();
  t.match(await text(page, '#status'), `joined ${card}`);
  t.equal((await postJson(`${server.http}/push`, { to: [card], content: 'signed and delivered' })).status, 200);
  await page.locator('#feed .push', { hasText: 'signed and delivered' }).waitFor();
});
