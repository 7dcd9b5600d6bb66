// Cluster mode with the real parts, as a gopusher cluster runs: three pusher
// nodes registering themselves in etcd (etcd.enable), confd rendering nginx's
// upstream from their keys with deploy/cluster's template, nginx spreading
// WebSocket clients over them, and NSQ behind (nsqd found through
// nsqlookupd, one channel per node, so every node consumes every push).
// One cluster is built once and taken through its life: spread, pushes and
// cluster-wide counts, a node that hangs, SIGTERM, SIGKILL, an etcd that
// comes back without its data. A short lease (3 s) keeps the SIGKILL wait short.

import t, { type Test } from 'tap';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Confd } from './helpers/confd';
import { Etcd } from './helpers/etcd';
import { Nginx, websocketLocation } from './helpers/nginx';
import { Nsqd, Nsqlookupd } from './helpers/nsqd';
import { Client, getJson, postJson, ROOT, startServer, until, type Running } from './helpers/server';

const LISTEN_KEY = 'pusher'; // the one deploy/cluster's template reads
const PREFIX = `/gopusher/${LISTEN_KEY}/`;
const NODES_PREFIX = `/pusher/${LISTEN_KEY}/nodes/`;
const TOPIC = 'cluster-test';
const TTL_S = 3;
const TEMPLATE = readFileSync(join(ROOT, 'deploy', 'cluster', 'confd', 'templates', 'pusher-upstream.tmpl'), 'utf8');
const RpcClient = (grpc.loadPackageDefinition(protoLoader.loadSync(join(ROOT, 'proto', 'rpc.proto'), { keepCase: true, longs: Number, defaults: true })) as any).proto.Rpc as typeof grpc.Client;

const address = (n: Running): string => `127.0.0.1:${n.wsPort}`;

interface Cluster {
  etcd: Etcd;
  nsqd: Nsqd;
  lookupd: Nsqlookupd;
  nginx: Nginx;
  confd: Confd;
  nodes: Running[];
  upstream: string;
}

function nodeSets(etcd: Etcd, lookupd: Nsqlookupd, i: number): string[] {
  return [
    'etcd.enable=true', `etcd.endpoints=127.0.0.1:${etcd.clientPort}`, `etcd.ttl=${TTL_S}`, 'etcd.query_timeout=300',
    'queue.driver=nsq', 'queue.nsqd_tcp=', `queue.lookupd_http=${lookupd.http}`, `queue.topic=${TOPIC}`, `queue.channel=node-${i}`, 'queue.warmup=0',
    'processor.threads=1',
  ];
}

async function startNodes(t: Test, etcd: Etcd, lookupd: Nsqlookupd, n: number): Promise<Running[]> {
  const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => startServer({ shards: 1, sets: nodeSets(etcd, lookupd, i) })));
  const running: Running[] = [];
  for (const r of started) {
    if (r.status === 'fulfilled') {
      t.teardown(() => r.value.stop('SIGKILL'));
      running.push(r.value);
    }
  }
  const failed = started.find((r) => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return running;
}

async function cluster(t: Test): Promise<Cluster> {
  const [etcd, lookupd] = await Promise.all([Etcd.create(t), Nsqlookupd.create(t)]);
  const nsqd = await Nsqd.create(t, { lookupd });
  // The topic exists before anything is pushed, so that nsqlookupd can point every node's consumer at it.
  t.equal((await fetch(`${nsqd.http}/topic/create?topic=${TOPIC}`, { method: 'POST' })).status, 200);
  const nodes = await startNodes(t, etcd, lookupd, 3);
  // Each node consumes its own channel (found through nsqlookupd) before anything is pushed.
  await until(async () => (await Promise.all(nodes.map((_, i) => nsqd.channel(TOPIC, `node-${i}`)))).every((c) => c !== null), 'every node consumes its channel', 20_000);
  await until(async () => (await etcd.list(PREFIX)).length === 3, 'every node registered');
  const nginx = await Nginx.create(t, { start: false, http: 'include upstream.conf;', server: websocketLocation('pusher_ws') });
  const upstream = nginx.path('upstream.conf');
  const confd = await Confd.create(t, {
    etcd: etcd.url,
    templates: [{ name: 'pusher-upstream', template: TEMPLATE, dest: upstream, keys: [PREFIX], reloadCmd: nginx.reloadCommand() }],
  });
  await nginx.start();
  return { etcd, nsqd, lookupd, nginx, confd, nodes, upstream };
}

/** Opens a client through nginx and joins it to `card`. */
async function joinThrough(c: Cluster, card: string): Promise<Client> {
  const client = await Client.open(`ws://127.0.0.1:${c.nginx.port}/ws`);
  await client.join(card);
  return client;
}

/** The node that holds `card`'s connection (asked with scope=node). */
async function holder(nodes: Running[], card: string): Promise<Running | undefined> {
  for (const n of nodes) if ((await getJson(`${n.http}/group?cardID=${card}&scope=node`)).body.clientNum > 0) return n;
  return undefined;
}

/** Waits until nginx runs a config rendered without `node` (confd re-rendered, the reload took effect). */
async function leftNginx(c: Cluster, node: Running, reloadsBefore: number): Promise<void> {
  await until(async () => !readFileSync(c.upstream, 'utf8').includes(address(node)) && c.nginx.reloads() > reloadsBefore, `${address(node)} left nginx's upstream`);
}

function unary(rpc: any, method: string, req: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    rpc[method](req, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, reply: unknown) => (err ? reject(err) : resolve(reply)));
  });
}

t.test('a cluster behind nginx, through its life', async (t) => {
  const c = await cluster(t);
  const [a, b, z] = c.nodes as [Running, Running, Running];

  await t.test('each node is registered in gopusher\'s layout, on a lease, with its node record', async (t) => {
    const keys = await c.etcd.list(PREFIX);
    t.same(keys.map((kv) => kv.key).sort(), c.nodes.map((n) => PREFIX + address(n)).sort());
    for (const kv of keys) t.equal(kv.value, `${kv.key.slice(PREFIX.length)} weight=1`, `${kv.key}: "<address> weight=1"`);
    t.ok(keys.every((kv) => kv.lease !== null), 'every key is on a lease');
    const lease = keys[0]!.lease!;
    t.ok((await c.etcd.leaseTtl(lease)) > 0 && (await c.etcd.leaseTtl(lease)) <= TTL_S, `the lease has etcd.ttl = ${TTL_S} s`);
    const records = await c.etcd.list(NODES_PREFIX);
    t.same(records.map((kv) => JSON.parse(kv.value)).sort((x, y) => x.ws.localeCompare(y.ws)),
      c.nodes.map((n) => ({ ws: address(n), http: `127.0.0.1:${n.httpPort}`, grpc: `127.0.0.1:${n.grpcPort}` })).sort((x, y) => x.ws.localeCompare(y.ws)));
    for (const r of records) t.equal(r.lease, keys.find((kv) => kv.key === PREFIX + r.key.slice(NODES_PREFIX.length))?.lease, `${r.key} is on its node's lease`);
    for (const n of c.nodes) t.match(readFileSync(c.upstream, 'utf8'), `server ${address(n)} weight=1;`, `confd rendered ${address(n)} into nginx's upstream`);
  });

  // Six clients through nginx, two per node (round robin), and one client per node joined to "all".
  const clients = new Map<string, Client>();
  const allOn = new Map<Running, Client>();
  await t.test('clients through nginx land on every node', async (t) => {
    for (let i = 0; i < 6; i++) clients.set(`card-${i}`, await joinThrough(c, `card-${i}`));
    const held = new Map<Running, string[]>();
    for (const card of clients.keys()) {
      const n = await holder(c.nodes, card);
      t.ok(n, `${card} is on a node`);
      if (n !== undefined) held.set(n, [...(held.get(n) ?? []), card]);
    }
    t.equal(held.size, 3, `nginx spread the clients over the three nodes (${[...held.values()].map((v) => v.join(',')).join(' | ')})`);
    for (const n of c.nodes) {
      const all = await Client.open(n.wsUrl);
      await all.join('all');
      allOn.set(n, all);
    }
  });

  await t.test('one push, through any node, reaches the members on every node', async (t) => {
    for (const [i, via] of c.nodes.entries()) {
      const members = [...allOn.values()];
      const before = members.map((m) => m.frames.length);
      t.same((await postJson(`${via.http}/push`, { to: ['all', 'card-0'], content: `hello-${i}` })).body, { code: 0, message: 'ok' });
      await Promise.all(members.map((m, j) => m.waitFrames(before[j]! + 1)));
      for (const [j, m] of members.entries()) t.equal(m.data().at(-1), `hello-${i}`, `the member on node ${j} got the push sent through node ${i}`);
    }
    await clients.get('card-0')!.waitFrames(4);
    t.same(clients.get('card-0')!.data(1), ['hello-0', 'hello-1', 'hello-2'], 'card-0 got each push once, in order');
  });

  await t.test('cluster-wide answers over HTTP and gRPC; scope=node keeps the local one', async (t) => {
    for (const n of c.nodes) {
      t.same((await getJson(`${n.http}/group?cardID=all`)).body, { clientNum: 3, nodes: 3, nodesAnswered: 3 }, `${address(n)}: group all`);
      t.same((await getJson(`${n.http}/group?cardID=all&scope=node`)).body, { clientNum: 1 }, `${address(n)}: scope=node`);
      t.same((await getJson(`${n.http}/isOnline?cardID=card-5`)).body, { result: 'yes', nodes: 3, nodesAnswered: 3 });
      t.same((await getJson(`${n.http}/group?cardID=nobody`)).body, { clientNum: -1, nodes: 3, nodesAnswered: 3 }, '-1 when no node has the group');
      const sys = (await getJson(`${n.http}/system`)).body;
      // groupNum sums each node's groups: "all" has members on three nodes and counts three times.
      t.match(sys, { clientNum: 9, groupNum: 9, nodes: 3, nodesAnswered: 3 }, `${address(n)}: system sums the nodes`);
    }
    const rpc: any = new RpcClient(`127.0.0.1:${a.grpcPort}`, grpc.credentials.createInsecure());
    t.teardown(() => rpc.close());
    t.match(await unary(rpc, 'System', {}), { clientNum: 9, nodes: 3, nodesAnswered: 3 });
    t.same(await unary(rpc, 'Group', { cardID: 'all' }), { clientNum: 3, nodes: 3, nodesAnswered: 3 });
    t.same(await unary(rpc, 'Group', { cardID: 'all', scope: 'node' }), { clientNum: 1, nodes: 0, nodesAnswered: 0 });
    t.same(await unary(rpc, 'IsOnline', { cardID: 'nobody' }), { result: 'no', nodes: 3, nodesAnswered: 3 });
  });

  await t.test('cluster-wide counts follow joins and closes', async (t) => {
    const extra = await joinThrough(c, 'all');
    t.equal((await getJson(`${a.http}/group?cardID=all`)).body.clientNum, 4, 'a join anywhere counts');
    await extra.close();
    await until(async () => (await getJson(`${b.http}/group?cardID=all`)).body.clientNum === 3, 'a close anywhere counts');
    const gone = clients.get('card-3')!;
    clients.delete('card-3');
    await gone.close();
    await until(async () => (await getJson(`${z.http}/isOnline?cardID=card-3`)).body.result === 'no', 'card-3 offline everywhere');
    t.match((await getJson(`${z.http}/system`)).body, { clientNum: 8, nodes: 3, nodesAnswered: 3 });
  });

  await t.test('a node that does not answer is reported missing; the answer does not wait for it', async (t) => {
    // Frozen: its sockets accept (the kernel's backlog), nothing answers. Well within the lease's 3 s.
    z.proc.kill('SIGSTOP');
    try {
      t.same((await getJson(`${a.http}/group?cardID=all`)).body, { clientNum: 2, nodes: 3, nodesAnswered: 2 });
      t.match((await getJson(`${b.http}/system`)).body, { nodes: 3, nodesAnswered: 2 });
    } finally {
      z.proc.kill('SIGCONT');
    }
    t.same((await getJson(`${a.http}/group?cardID=all`)).body, { clientNum: 3, nodes: 3, nodesAnswered: 3 }, 'counted again once it answers');
  });

  /** Clients a node held, closed by it, reconnect through nginx and join again; all must land elsewhere. */
  async function reconnect(t: Test, node: Running, cards: string[], others: Running[]): Promise<void> {
    for (const card of cards) {
      const old = clients.get(card)!;
      await old.closed;
      clients.set(card, await joinThrough(c, card));
      t.ok(await holder(others, card), `${card} reconnected through nginx to another node`);
    }
    const before = cards.map((k) => clients.get(k)!.frames.length);
    await postJson(`${others[0]!.http}/push`, { to: cards, content: `after-${node.wsPort}` });
    await Promise.all(cards.map((k, i) => clients.get(k)!.waitFrames(before[i]! + 1)));
    for (const k of cards) t.equal(clients.get(k)!.data().at(-1), `after-${node.wsPort}`, `${k} gets the next push`);
  }

  /** The cards (of clients opened through nginx) that `node` holds. */
  async function cardsOn(node: Running): Promise<string[]> {
    const out: string[] = [];
    for (const card of clients.keys()) if ((await holder([node], card)) !== undefined) out.push(card);
    return out;
  }

  await t.test('SIGTERM: the key goes at once, nginx stops routing there, its clients come back through nginx', async (t) => {
    const cards = await cardsOn(b);
    t.ok(cards.length > 0, `node b holds ${cards}`);
    const reloads = c.nginx.reloads();
    t.equal(await b.stop('SIGTERM'), 0, 'b exits 0');
    t.equal(await c.etcd.get(PREFIX + address(b)), null, 'its key was gone when it exited (lease revoked)');
    t.equal(await c.etcd.get(NODES_PREFIX + address(b)), null, 'its node record too');
    t.match(b.output(), 'etcd registration revoked');
    await leftNginx(c, b, reloads);
    t.equal(await allOn.get(b)!.closed, 1001, 'its clients were closed with 1001 (going away)');
    await reconnect(t, b, cards, [a, z]);
    await until(async () => (await getJson(`${a.http}/system`)).body.nodes === 2, 'the cluster answers count two nodes');
    t.match((await getJson(`${a.http}/system`)).body, { nodes: 2, nodesAnswered: 2 });
  });

  await t.test('SIGKILL: the key expires with the lease, then the same holds', async (t) => {
    const cards = await cardsOn(z);
    t.ok(cards.length > 0, `node z holds ${cards}`);
    const reloads = c.nginx.reloads();
    await z.stop('SIGKILL');
    t.not(await c.etcd.get(PREFIX + address(z)), null, 'its key outlives it until the lease expires');
    t.same((await getJson(`${a.http}/group?cardID=all`)).body, { clientNum: 1, nodes: 2, nodesAnswered: 1 }, 'meanwhile it is reported missing');
    await until(async () => (await c.etcd.get(PREFIX + address(z))) === null, 'its key expired', (TTL_S + 3) * 1000);
    t.equal(await c.etcd.get(NODES_PREFIX + address(z)), null, 'its node record too');
    await leftNginx(c, z, reloads);
    await reconnect(t, z, cards, [a]);
    t.match((await getJson(`${a.http}/system`)).body, { nodes: 1, nodesAnswered: 1 });
  });

  await t.test('etcd comes back without its data: the node registers again', async (t) => {
    await c.etcd.stop('SIGTERM');
    rmSync(c.etcd.dataDir, { recursive: true, force: true });
    // Away longer than the lease: the node's keys are gone, yet it serves, and stays ready.
    await new Promise((r) => setTimeout(r, (TTL_S + 2) * 1000));
    t.equal((await getJson(`${a.http}/readyz`)).status, 200, 'still ready while etcd is away');
    await c.etcd.start();
    await until(async () => (await c.etcd.get(PREFIX + address(a))) === `${address(a)} weight=1` && (await c.etcd.get(NODES_PREFIX + address(a))) !== null,
      'a registered again, with its node record', (TTL_S + 5) * 1000);
    const warnings = a.output().split('\n').filter((l) => l.includes('PUSH_ERR_ETCD_UNAVAILABLE'));
    t.equal(warnings.length, 1, `one warning for the outage:\n${warnings.join('\n')}`);
    t.match(a.output(), /etcd reachable again downMs=\d+/);
    const before = clients.get('card-0')!.frames.length;
    t.same((await postJson(`${a.http}/push`, { to: ['card-0'], content: 'still serving' })).body, { code: 0, message: 'ok' });
    await clients.get('card-0')!.waitFrames(before + 1);
    t.equal(clients.get('card-0')!.data().at(-1), 'still serving');
  });

  await Promise.all([...clients.values(), ...allOn.values()].map((cl) => cl.close()));
});

t.test('etcd unreachable at start-up: the node serves, warns once, registers when etcd comes', async (t) => {
  const etcd = await Etcd.create(t, { start: false });
  const node = await startServer({ shards: 1, sets: ['processor.threads=1', 'etcd.enable=true', `etcd.endpoints=127.0.0.1:${etcd.clientPort}`, `etcd.ttl=${TTL_S}`] });
  t.teardown(() => node.stop('SIGKILL'));
  const client = await Client.open(node.wsUrl);
  await client.join('early');
  t.same((await postJson(`${node.http}/push`, { to: ['early'], content: 'served' })).body, { code: 0, message: 'ok' });
  await client.waitFrames(2);
  t.same((await getJson(`${node.http}/group?cardID=early`)).body, { clientNum: 1, nodes: 1, nodesAnswered: 1 }, 'answers for the one node it knows');
  // Registration retries once a second: let a few retries fail.
  await until(async () => node.output().includes('PUSH_ERR_ETCD_UNAVAILABLE'), 'the warning');
  const unready = await getJson(`${node.http}/readyz`);
  t.equal(unready.status, 503, 'not ready while it is not in etcd (nginx would not route to it anyway)');
  t.equal(unready.body.checks?.etcd, 'not registered in etcd yet');
  await new Promise((r) => setTimeout(r, 2_500));
  await etcd.start();
  await until(async () => (await etcd.get(`${PREFIX}${address(node)}`)) !== null, 'registered once etcd came');
  await until(async () => (await getJson(`${node.http}/readyz`)).status === 200, 'ready once registered');
  t.equal(node.output().split('PUSH_ERR_ETCD_UNAVAILABLE').length - 1, 1, 'one warning for the whole outage');
  t.equal(node.proc.exitCode, null, 'still running');
  await client.close();
  t.equal(await node.stop('SIGTERM'), 0);
  t.equal(await etcd.get(`${PREFIX}${address(node)}`), null, 'revoked on shutdown');
});

t.test('API keys on: the nodes ask each other with their shared key', async (t) => {
  const etcd = await Etcd.create(t);
  const key = 'cluster-shared-key-0123456789';
  const sets = (): string[] => [
    'processor.threads=1', 'etcd.enable=true', `etcd.endpoints=127.0.0.1:${etcd.clientPort}`, `etcd.ttl=${TTL_S}`, 'etcd.query_timeout=2000',
    `auth.api_keys=${key}`, 'gateway.rate_limit=2',
  ];
  const nodes = await Promise.all([0, 1].map(() => startServer({ shards: 1, sets: sets() })));
  for (const n of nodes) t.teardown(() => n.stop('SIGKILL'));
  const client = await Client.open(nodes[1]!.wsUrl);
  await client.join('far');
  const ask = async (path: string, auth: string | null): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${nodes[0]!.http}${path}`, { headers: auth === null ? {} : { authorization: `Bearer ${auth}` } });
    return { status: res.status, body: await res.json() };
  };
  await until(async () => (await ask('/system', key)).body.nodes === 2, 'the nodes found each other');
  // The key's budget on the other node is spent by a caller there: its answers to this node are not (they are part of one request).
  await new Promise((r) => setTimeout(r, 1_100));
  const spent = await Promise.all(Array.from({ length: 6 }, () => fetch(`${nodes[1]!.http}/stats`, { headers: { authorization: `Bearer ${key}` } })));
  t.ok(spent.some((r) => r.status === 429), 'the other node limits the key');
  t.same((await ask('/group?cardID=far', key)).body, { clientNum: 1, nodes: 2, nodesAnswered: 2 }, 'the other node answered this node\'s key');
  t.same((await ask('/isOnline?cardID=far', key)).body, { result: 'yes', nodes: 2, nodesAnswered: 2 });
  t.equal((await ask('/group?cardID=far', null)).status, 401, 'a caller without the key is still refused');
  t.equal((await ask('/group?cardID=far', 'wrong')).status, 401);
  await client.close();
});
