// Bad input gets a documented answer (error code, close code, HTTP status) and
// harms neither the other connections nor the process.

import { request } from 'node:http';
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { get, pipeline } from './helpers/raw-http';
import { Client, getJson, postJson, startServer, type Running } from './helpers/server';

let server: Running;
let bystander: Client;

t.before(async () => {
  server = await startServer({ shards: 2, sets: ['server.max_payload=1024', 'push.max_id_length=32', 'push.max_content=100', 'gateway.max_body=4096', 'push.max_recipients=5'] });
  bystander = await Client.open(server.wsUrl);
  await bystander.join('bystander');
});

t.teardown(async () => {
  await server.stop();
});

// After every bad input the bystander still gets pushes: nothing else was harmed.
t.afterEach(async () => {
  const n = bystander.frames.length;
  const res = await postJson(`${server.http}/push`, { to: ['bystander'], content: 'still here' });
  if (res.status !== 200) throw new Error(`push after bad input failed: ${JSON.stringify(res)}`);
  await bystander.waitFrames(n + 1);
});

async function expectClose(t: Test, send: (c: Client) => void, code: number, reason: string): Promise<void> {
  const c = await Client.open(server.wsUrl);
  send(c);
  t.equal(await c.closed, code, `close code ${code}`);
  t.equal(c.closeReason, reason);
}

t.test('websocket: malformed JSON closes with 4000 PUSH_ERR_WS_BAD_JSON', (t) => expectClose(t, (c) => c.send('{"event":'), 4000, 'PUSH_ERR_WS_BAD_JSON'));
t.test('websocket: JSON without an event string closes with 4000', (t) => expectClose(t, (c) => c.send('[1,2]'), 4000, 'PUSH_ERR_WS_BAD_JSON'));
t.test('websocket: unknown event closes with 4001 PUSH_ERR_WS_UNKNOWN_EVENT', (t) => expectClose(t, (c) => c.send({ event: 'subscribe' }), 4001, 'PUSH_ERR_WS_UNKNOWN_EVENT'));
t.test('websocket: binary frame closes with 1003 PUSH_ERR_WS_BINARY', (t) => expectClose(t, (c) => c.ws.send(Buffer.from([1, 2, 3]), { binary: true }), 1003, 'PUSH_ERR_WS_BINARY'));
t.test('websocket: frame over max_payload closes with 1009 PUSH_ERR_WS_TOO_LARGE', (t) =>
  expectClose(t, (c) => c.send({ event: 'ping', pad: 'x'.repeat(1500) }), 1009, 'PUSH_ERR_WS_TOO_LARGE'));

t.test('websocket: invalid joins get an error frame and the connection stays', async (t) => {
  const c = await Client.open(server.wsUrl);
  const bad = [
    { event: 'join' },
    { event: 'join', data: 'x' },
    { event: 'join', data: { app_id: 'a' } },
    { event: 'join', data: { card_id: '' } },
    { event: 'join', data: { card_id: 42 } },
    { event: 'join', data: { card_id: 'ok', app_id: 7 } },
    { event: 'join', data: { card_id: 'x'.repeat(33) } },
  ];
  for (const [i, frame] of bad.entries()) {
    c.send(frame);
    await c.waitFrames(i + 1);
    const reply = JSON.parse(c.frames[i]!);
    t.equal(reply.type, 2, `${JSON.stringify(frame)} -> error frame`);
    t.equal(reply.code, 'PUSH_ERR_WS_JOIN_INVALID');
  }
  await c.join('x'.repeat(32));
  t.equal(c.closeCode, null, 'still open');
  await c.close();
});

t.test('http: invalid JSON is 400 PUSH_ERR_BAD_JSON', async (t) => {
  const res = await postJson(`${server.http}/push`, '{"to": [');
  t.equal(res.status, 400);
  t.equal(res.body.error, 'PUSH_ERR_BAD_JSON');
  t.equal(res.body.code, 3, 'gRPC INVALID_ARGUMENT in "code", like grpc-gateway');
});

t.test('http: request shape errors are 400 with their code', async (t) => {
  const cases: [unknown, string][] = [
    [[1, 2], 'PUSH_ERR_INVALID_REQUEST'],
    ['"text"', 'PUSH_ERR_INVALID_REQUEST'],
    [{ content: 'x' }, 'PUSH_ERR_EMPTY_TO'],
    [{ to: [], content: 'x' }, 'PUSH_ERR_EMPTY_TO'],
    [{ to: 'c1', content: 'x' }, 'PUSH_ERR_INVALID_REQUEST'],
    [{ to: ['c1'], content: 42 }, 'PUSH_ERR_INVALID_REQUEST'],
    [{ to: ['c1'], content: { a: 1 } }, 'PUSH_ERR_INVALID_REQUEST'],
    [{ to: ['c1'], appID: 3, content: 'x' }, 'PUSH_ERR_INVALID_REQUEST'],
    [{ to: [''], content: 'x' }, 'PUSH_ERR_BAD_ID'],
    [{ to: [5], content: 'x' }, 'PUSH_ERR_BAD_ID'],
    [{ to: ['x'.repeat(33)], content: 'x' }, 'PUSH_ERR_BAD_ID'],
    [{ to: ['a', 'b', 'c', 'd', 'e', 'f'], content: 'x' }, 'PUSH_ERR_TOO_MANY_RECIPIENTS'],
    [{ to: ['c1'], content: 'é'.repeat(51) }, 'PUSH_ERR_CONTENT_TOO_LARGE'],
  ];
  for (const [body, code] of cases) {
    const res = await postJson(`${server.http}/push`, typeof body === 'string' ? body : JSON.stringify(body));
    t.equal(res.status, 400, `${JSON.stringify(body)} -> 400`);
    t.equal(res.body.error, code, `${JSON.stringify(body)} -> ${code}`);
  }
});

t.test('http: body over gateway.max_body is 413 PUSH_ERR_BODY_TOO_LARGE', async (t) => {
  const big = JSON.stringify({ to: ['c1'], content: 'x'.repeat(5000) });
  const res = await postJson(`${server.http}/push`, big);
  t.equal(res.status, 413);
  t.equal(res.body.error, 'PUSH_ERR_BODY_TOO_LARGE');
  // Chunked upload with no Content-Length: caught while reading, answered
  // before the client finished sending (the server reads and drops the rest,
  // then closes the connection).
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(`${server.http}/push`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject); // a reset after the 413 arrived is a no-op here
    for (let i = 0; i < 10; i++) req.write('x'.repeat(1000));
    req.end();
  });
  t.equal(status, 413);
});

t.test('http: malformed requests are 400 PUSH_ERR_BAD_HTTP, and the connection closes', async (t) => {
  const bad: [string, string][] = [
    ['no target', 'GET\r\n\r\n'],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\n\r\n'],
    ['target not starting with /', 'GET nope HTTP/1.1\r\n\r\n'],
    ['header without a colon', 'GET / HTTP/1.1\r\nHost test\r\n\r\n'],
    ['folded header line', 'GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n'],
    ['bare LF', 'GET / HTTP/1.1\nHost: a\r\n\r\n'],
    ['two different Content-Length', 'POST /push HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}'],
    ['Content-Length and Transfer-Encoding', 'POST /push HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}'],
    ['Transfer-Encoding gzip', 'POST /push HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n'],
    ['Content-Length not a number', 'POST /push HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n'],
    ['bad chunk size', 'POST /push HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['chunk data without CRLF', 'POST /push HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n'],
  ];
  for (const [what, req] of bad) {
    const r = await pipeline(server.httpPort, [req]);
    t.equal(r.finals[0]?.status, 400, `${what}: 400`);
    t.equal(JSON.parse(r.finals[0]?.body ?? '{}').error, 'PUSH_ERR_BAD_HTTP', `${what}: PUSH_ERR_BAD_HTTP`);
    t.equal(r.closed, true, `${what}: closed`);
  }
});

t.test('http: a head over 16 KiB or with over 100 headers is 431 PUSH_ERR_HEADERS_TOO_LARGE', async (t) => {
  const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`X-H${i}`, 'v']));
  for (const [what, req] of [['17 KB header', get('/system', { 'X-Pad': 'p'.repeat(17_000) })], ['101 headers', get('/system', many)]] as const) {
    const r = await pipeline(server.httpPort, [req]);
    t.equal(r.finals[0]?.status, 431, what);
    t.equal(JSON.parse(r.finals[0]?.body ?? '{}').error, 'PUSH_ERR_HEADERS_TOO_LARGE', what);
    t.equal(r.closed, true, `${what}: closed`);
  }
});

t.test('http: a request head that trickles in does not hold the connection: closed after the 10 s idle time', async (t) => {
  const socket = connect({ port: server.httpPort, host: '127.0.0.1' });
  const head = `GET /system HTTP/1.1\r\nHost: test\r\nX-Slow: ${'s'.repeat(200)}`;
  let sent = 0;
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString()));
  socket.on('error', () => undefined);
  // One byte every 200 ms: far below any size limit, never the end of a head.
  const timer = setInterval(() => {
    if (sent < head.length) socket.write(head[sent++]!);
  }, 200);
  const closedBy = await new Promise<string>((resolve) => {
    socket.on('close', () => resolve('server'));
    setTimeout(() => resolve('test'), 20_000);
  });
  clearInterval(timer);
  socket.destroy();
  t.equal(closedBy, 'server', 'the server closed it');
  t.ok(sent < head.length, `while the head was still arriving (${sent} of ${head.length} bytes)`);
  t.equal(answer, '', 'without an answer: no request was read');
});

t.test('http: a chunked push (with a chunk extension and a trailer) is accepted', async (t) => {
  const n = bystander.frames.length;
  const body = JSON.stringify({ to: ['bystander'], content: 'chunked' });
  const chunks = `5;ext=1\r\n${body.slice(0, 5)}\r\n${(body.length - 5).toString(16)}\r\n${body.slice(5)}\r\n0\r\nX-Trailer: t\r\n\r\n`;
  const r = await pipeline(server.httpPort, [`POST /push HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`], { finals: 1 });
  t.equal(r.finals[0]?.status, 200);
  await bystander.waitFrames(n + 1);
  t.equal(bystander.data(n).at(-1), 'chunked');
});

t.test('http: unknown routes are 404, wrong methods 405 with Allow', async (t) => {
  const missing = await getJson(`${server.http}/nope`);
  t.equal(missing.status, 404);
  t.equal(missing.body.error, 'PUSH_ERR_NOT_FOUND');
  const wrong = await fetch(`${server.http}/push`);
  t.equal(wrong.status, 405);
  t.equal(wrong.headers.get('allow'), 'POST, OPTIONS');
  t.equal(((await wrong.json()) as { error: string }).error, 'PUSH_ERR_METHOD_NOT_ALLOWED');
  const wrong2 = await fetch(`${server.http}/system`, { method: 'POST', body: '{}' });
  t.equal(wrong2.status, 405);
});

t.test('http: queries without cardID are 400 PUSH_ERR_MISSING_CARD_ID', async (t) => {
  for (const path of ['/isOnline', '/group', '/group?cardID=']) {
    const res = await getJson(`${server.http}${path}`);
    t.equal(res.status, 400, path);
    t.equal(res.body.error, 'PUSH_ERR_MISSING_CARD_ID');
  }
});

t.test('http: CORS as gopusher: preflight 204 and headers on answers', async (t) => {
  const pre = await fetch(`${server.http}/push`, { method: 'OPTIONS' });
  t.equal(pre.status, 204);
  t.equal(pre.headers.get('access-control-allow-origin'), '*');
  t.equal(pre.headers.get('access-control-allow-methods'), 'POST, GET, OPTIONS');
  const res = await fetch(`${server.http}/system`, { headers: { origin: 'http://example.test' } });
  t.equal(res.headers.get('access-control-allow-origin'), '*');
  const bad = await fetch(`${server.http}/push`, { method: 'POST', body: '{', headers: { origin: 'http://example.test' } });
  t.equal(bad.headers.get('access-control-allow-origin'), '*', 'errors carry CORS headers too');
  const noOrigin = await fetch(`${server.http}/system`);
  t.equal(noOrigin.headers.get('access-control-allow-origin'), null, 'no Origin (not a browser): no CORS headers');
});

t.test('http: welcome at /', async (t) => {
  const res = await getJson(`${server.http}/`);
  t.equal(res.status, 200);
  t.equal(res.body.msg, 'welcome to socket server');
});

t.test('websocket port: only /ws upgrades', async (t) => {
  const ws = new WebSocket(`ws://127.0.0.1:${server.wsPort}/other`);
  const err = await new Promise<Error>((resolve) => ws.once('error', resolve));
  t.match(err.message, /404/);
});
