#!/usr/bin/env node
// README's screenshots (docs/dashboard.png, docs/demo.png): the dashboard
// after 20 s of a light load (200 connections in 50 groups, ~1,000 pushes/s),
// the demo page after it sent a push. Needs a build (npm run build) and
// Debian's chromium (scripts/ops-deps.sh). Ports 23451-23452.
//
//   node scripts/readme-screenshots.js
const { join } = require('path');
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const WebSocket = require('ws');
const ROOT = join(__dirname, '..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const ws = 23451, http = 23452;
  const srv = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js'), '--config', join(ROOT, 'config.ini'), '--set', 'server.host=127.0.0.1', '--set', `server.ws_port=${ws}`, '--set', `gateway.port=${http}`, '--set', 'grpc.addr=off', '--set', 'log.level=warn'], { stdio: 'inherit' });
  for (let i = 0; i < 100; i++) { try { if ((await fetch(`http://127.0.0.1:${http}/readyz`)).ok) break; } catch {} await sleep(100); }
  const clients = [];
  for (let i = 0; i < 200; i++) {
    const c = new WebSocket(`ws://127.0.0.1:${ws}/ws`);
    await new Promise((r) => c.on('open', r));
    c.send(JSON.stringify({ event: 'join', data: { card_id: `u${i % 50}` } }));
    clients.push(c);
  }
  let go = true;
  (async () => { let n = 0; while (go) { await Promise.all(Array.from({ length: 20 }, () => fetch(`http://127.0.0.1:${http}/push`, { method: 'POST', body: JSON.stringify({ to: [`u${n++ % 50}`], content: `news ${n}` }) }))); await sleep(10); } })();
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(`http://127.0.0.1:${http}/dashboard`);
  await sleep(22000);
  await page.screenshot({ path: join(ROOT, 'docs', 'dashboard.png') });
  go = false;
  const demo = await browser.newPage({ viewport: { width: 1200, height: 820 } });
  await demo.goto(`http://127.0.0.1:${http}/demo`);
  await demo.locator('#status.ok').waitFor();
  await demo.fill('#push-content', 'hello from the demo page');
  await demo.click('#send');
  await demo.locator('#feed .push', { hasText: 'hello from the demo page' }).waitFor();
  await demo.screenshot({ path: join(ROOT, 'docs', 'demo.png') });
  await browser.close();
  for (const c of clients) c.close();
  srv.kill('SIGTERM');
})().catch((e) => { console.error(e); process.exit(1); });
