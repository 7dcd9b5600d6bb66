// HTTP/1.1 pipelining on the gateway: every pipelined request is answered, in
// request order, whether its answer is immediate or comes later (a shard round
// trip, nsqd's acknowledgement); a request refused by the HTTP layer closes the
// connection, and nothing after it runs.

import t, { type Test } from 'tap';
import { Nsqd } from './helpers/nsqd';
import { get, pipeline, post, type Answer } from './helpers/raw-http';
import { Client, startServer, until, type Running } from './helpers/server';

/**
 * NSQ with one processor thread: nsqd does not order messages across consumer
 * connections (README, Delivery guarantees), and these tests check delivery order.
 */
const nsqSets = (nsqd: Nsqd): string[] => ['queue.driver=nsq', `queue.nsqd_tcp=${nsqd.tcp}`, 'queue.warmup=0', 'processor.threads=1'];

const push = (card: string, content: string, headers: Record<string, string> = {}): string => post('/push', JSON.stringify({ to: [card], content }), headers);

/** One request of each kind the gateway has, with a check that an answer is that request's. */
const KINDS: [string, (a: Answer) => boolean][] = [
  [get('/system'), (a) => 'cpuNum' in JSON.parse(a.body)],
  [get('/isOnline?cardID=alice'), (a) => JSON.parse(a.body).result === 'yes'],
  [get('/group?cardID=alice'), (a) => JSON.parse(a.body).clientNum === 1],
  [get('/stats'), (a) => Array.isArray(JSON.parse(a.body).shards)],
  [get('/'), (a) => JSON.parse(a.body).server === 'pusher'],
  [get('/isOnline?cardID=nobody'), (a) => JSON.parse(a.body).result === 'no'],
  [get('/group?cardID=nobody'), (a) => JSON.parse(a.body).clientNum === -1],
  [post('/push/batch', JSON.stringify({ pushes: [{ to: ['nobody'], content: 'b' }] })), (a) => JSON.parse(a.body).accepted === 1],
];

/** KINDS with a push to alice after each, so pushes sit behind every kind of answer. */
function mixed(tag: string): { parts: string[]; checks: ((a: Answer) => boolean)[]; contents: string[] } {
  const parts: string[] = [];
  const checks: ((a: Answer) => boolean)[] = [];
  const contents: string[] = [];
  for (const [i, [req, check]] of KINDS.entries()) {
    parts.push(req, push('alice', `${tag}-${i}`));
    checks.push(check, (a) => JSON.parse(a.body).code === 0);
    contents.push(`${tag}-${i}`);
  }
  return { parts, checks, contents };
}

function expectInOrder(t: Test, finals: Answer[], checks: ((a: Answer) => boolean)[], what: string): void {
  t.equal(finals.length, checks.length, `${what}: every request answered`);
  t.same(finals.map((a) => a.status), checks.map(() => 200), `${what}: all 200`);
  t.ok(finals.every((a, i) => checks[i]!(a)), `${what}: each answer is its own request's, in request order`);
}

async function withAlice(t: Test, sets: string[]): Promise<{ server: Running; alice: Client }> {
  const server = await startServer({ shards: 2, sets });
  t.teardown(() => server.stop());
  const alice = await Client.open(server.wsUrl);
  t.teardown(() => alice.close());
  await alice.join('alice');
  return { server, alice };
}

/** Until the NSQ queue takes pushes (the producer connects, with its channel, just after start-up: pushes before it are 503). */
async function nsqConnected(server: Running): Promise<void> {
  await until(async () => (await pipeline(server.httpPort, [get('/stats')], { finals: 1 })).finals[0]?.body.includes('"connected":true') === true, 'nsq connected');
}

/** Pushes through a fresh connection and waits for it: anything pushed to alice before it has arrived by then. */
async function fence(server: Running, alice: Client, tag: string): Promise<string[]> {
  const r = await pipeline(server.httpPort, [push('alice', tag)], { finals: 1 });
  if (r.finals[0]?.status !== 200) throw new Error(`fence push failed: ${JSON.stringify(r)}`);
  while (!alice.data(1).includes(tag)) await alice.waitFrames(alice.frames.length + 1);
  return alice.data(1);
}

for (const driver of ['memory', 'nsq'] as const) {
  t.test(`${driver} driver: every kind of request pipelined in one write is answered in order`, async (t) => {
    const sets: string[] = [];
    if (driver === 'nsq') {
      const nsqd = await Nsqd.create(t);
      sets.push(...nsqSets(nsqd));
    }
    const { server, alice } = await withAlice(t, sets);
    if (driver === 'nsq') await nsqConnected(server);

    const one = mixed('one');
    const r = await pipeline(server.httpPort, one.parts, { finals: one.checks.length });
    expectInOrder(t, r.finals, one.checks, 'one write');
    t.equal(r.closed, false, 'the connection stays open');

    // The same requests arriving one by one while earlier answers are still on their way.
    const apart = mixed('apart');
    const r2 = await pipeline(server.httpPort, apart.parts, { finals: apart.checks.length, gapMs: 1 });
    expectInOrder(t, r2.finals, apart.checks, '1 ms apart');

    // Split at every byte: the parser keeps its place across reads.
    const bytes = mixed('bytes');
    const all = Buffer.from(bytes.parts.join(''));
    const r3 = await pipeline(server.httpPort, Array.from(all, (b) => Buffer.from([b])), { finals: bytes.checks.length, gapMs: 0 });
    expectInOrder(t, r3.finals, bytes.checks, 'one byte per write');

    const delivered = await fence(server, alice, `${driver}-fence`);
    t.same(delivered.slice(0, -1), [...one.contents, ...apart.contents, ...bytes.contents], 'every push delivered once, in order');
  });
}

t.test('nsq driver: 300 pipelined pushes are all answered and delivered in order', async (t) => {
  const nsqd = await Nsqd.create(t);
  const { server, alice } = await withAlice(t, nsqSets(nsqd));
  await nsqConnected(server);
  const contents = Array.from({ length: 300 }, (_, i) => `n${i}`);
  const r = await pipeline(server.httpPort, contents.map((c) => push('alice', c)), { finals: contents.length });
  t.equal(r.finals.length, contents.length);
  t.ok(r.finals.every((a) => a.status === 200), 'all 200');
  t.same((await fence(server, alice, 'end')).slice(0, -1), contents);
});

t.test('3,000 requests in one burst (over the 1,024 a connection may have waiting): reading pauses and resumes, all answered', async (t) => {
  const { server } = await withAlice(t, []);
  const n = 3000;
  const r = await pipeline(server.httpPort, Array.from({ length: n }, (_, i) => get(i % 2 === 0 ? '/isOnline?cardID=alice' : '/')), { finals: n, timeoutMs: 30_000 });
  t.equal(r.finals.length, n);
  t.ok(r.finals.every((a, i) => (i % 2 === 0 ? JSON.parse(a.body).result === 'yes' : JSON.parse(a.body).server === 'pusher')), 'in order');
});

t.test('a client that half-closes after pipelining still gets every answer', async (t) => {
  const { server } = await withAlice(t, []);
  const r = await pipeline(server.httpPort, [get('/system'), get('/isOnline?cardID=alice'), push('nobody', 'x')], { halfClose: true });
  t.same(r.finals.map((a) => a.status), [200, 200, 200]);
  t.equal(r.closed, true, 'then the server ends the connection');
});

t.test('refused before running: nothing after a refused request runs, and the connection closes', async (t) => {
  const { server, alice } = await withAlice(t, ['gateway.max_body=4096']);
  const cases: [string, string, number, string][] = [
    ['malformed request', 'NOT HTTP AT ALL\r\n\r\n', 400, 'PUSH_ERR_BAD_HTTP'],
    ['over-limit body', post('/push', JSON.stringify({ to: ['alice'], content: 'x'.repeat(5000) })), 413, 'PUSH_ERR_BODY_TOO_LARGE'],
    ['head over 16 KiB', get('/system', { 'X-Pad': 'p'.repeat(17_000) }), 431, 'PUSH_ERR_HEADERS_TOO_LARGE'],
  ];
  for (const [what, bad, status, code] of cases) {
    const r = await pipeline(server.httpPort, [push('alice', `${what}-before`), get('/system'), bad, push('alice', `${what}-after`), get('/system')]);
    t.same(r.finals.map((a) => a.status), [200, 200, status], `${what}: answered up to the refusal`);
    t.equal(JSON.parse(r.finals[2]!.body).error, code, `${what}: ${code}`);
    t.equal(r.finals[2]!.headers.connection, 'close', `${what}: the refusal says the connection closes`);
    t.equal(r.closed, true, `${what}: closed`);
    const delivered = await fence(server, alice, `${what}-fence`);
    t.same(delivered.slice(-2), [`${what}-before`, `${what}-fence`], `${what}: the push after the refusal never ran`);
  }
});

t.test('Connection: close ends the connection after that answer; later requests do not run', async (t) => {
  const { server, alice } = await withAlice(t, []);
  const r = await pipeline(server.httpPort, [push('alice', 'last', { Connection: 'close' }), push('alice', 'never')]);
  t.same(r.finals.map((a) => a.status), [200]);
  t.equal(r.finals[0]!.headers.connection, 'close');
  t.equal(r.closed, true);
  t.same((await fence(server, alice, 'fence')).slice(-2), ['last', 'fence']);
});
