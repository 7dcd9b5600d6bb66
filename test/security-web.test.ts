// What a browser on another site can do: with server.allowed_origins set,
// other origins can't open WebSockets (403) or use the gateway (403), and
// CORS answers name the allowed origin instead of "*"; never
// Access-Control-Allow-Credentials. Without the list (drop-in) every origin
// gets gopusher's "*". Either way a POST from a page (with Origin) must be
// application/json, which a page can't send cross-site without the browser
// asking first; callers that send no Origin (curl -d, backends) are unchanged.

import t from 'tap';
import { Client, startServer } from './helpers/server';
import { refusedUpgrade } from './helpers/security';

t.test('server.allowed_origins: WebSocket upgrades, gateway requests, CORS answers', async (t) => {
  const s = await startServer({ grpc: false, sets: ['server.allowed_origins=https://app.example.com, *.example.org'] });
  t.teardown(() => s.stop());
  for (const origin of ['https://evil.example.net', 'https://example.org', 'https://app.example.com.evil.net', 'null']) {
    const r = await refusedUpgrade(s.wsUrl, { origin });
    t.same([r.status, r.body.error], [403, 'PUSH_ERR_ORIGIN_DENIED'], `WebSocket from ${origin}`);
  }
  for (const opts of [{ origin: 'https://app.example.com' }, { origin: 'http://a.b.example.org:8443' }, {}] as { origin?: string }[]) {
    const c = await Client.open(s.wsUrl, opts);
    await c.join('c1');
    t.pass(`WebSocket from ${opts.origin ?? 'no Origin (not a browser)'}`);
    await c.close();
  }

  const denied = await fetch(`${s.http}/system`, { headers: { origin: 'https://evil.example.net' } });
  t.same([denied.status, ((await denied.json()) as any).error, denied.headers.get('access-control-allow-origin')], [403, 'PUSH_ERR_ORIGIN_DENIED', null], 'gateway: another origin');
  const pre = await fetch(`${s.http}/push`, { method: 'OPTIONS', headers: { origin: 'https://evil.example.net' } });
  t.equal(pre.status, 403, 'preflight from another origin');
  const ok = await fetch(`${s.http}/system`, { headers: { origin: 'https://app.example.com' } });
  t.same([ok.status, ok.headers.get('access-control-allow-origin'), ok.headers.get('vary'), ok.headers.get('access-control-allow-credentials')],
    [200, 'https://app.example.com', 'Origin', null], 'an allowed origin is named, never with credentials');
  const push = await fetch(`${s.http}/push`, { method: 'POST', headers: { origin: 'https://app.example.com', 'content-type': 'application/json' }, body: '{"to":["c1"],"content":"x"}' });
  t.equal(push.status, 200, 'a JSON push from an allowed origin');
  t.equal((await fetch(`${s.http}/system`)).status, 200, 'no Origin: not a browser, not checked');
});

t.test('drop-in CORS and content types: "*" without credentials; non-JSON bodies from pages refused', async (t) => {
  const s = await startServer({ shards: 1, grpc: false });
  t.teardown(() => s.stop());
  const pre = await fetch(`${s.http}/push`, { method: 'OPTIONS', headers: { origin: 'https://any.example' } });
  t.same([pre.status, pre.headers.get('access-control-allow-origin'), pre.headers.get('access-control-allow-credentials')], [204, '*', null]);
  const body = '{"to":["c1"],"content":"x"}';
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '']) {
    const headers: Record<string, string> = { origin: 'https://any.example' };
    if (type !== '') headers['content-type'] = type;
    const res = await fetch(`${s.http}/push`, { method: 'POST', headers, body: Buffer.from(body) });
    const json = (await res.json()) as any;
    t.same([res.status, json.error, res.headers.get('access-control-allow-origin')], [415, 'PUSH_ERR_CONTENT_TYPE', '*'], `from a page as ${type || 'no content type'}`);
  }
  const json = await fetch(`${s.http}/push`, { method: 'POST', headers: { origin: 'https://any.example', 'content-type': 'application/json; charset=utf-8' }, body });
  t.equal(json.status, 200, 'from a page as application/json');
  const curl = await fetch(`${s.http}/push`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
  t.equal(curl.status, 200, 'curl -d (a form type, no Origin) still works');
});
