// The load-balancing chain a cluster runs behind, with the real parts: nodes
// registered in etcd in gopusher's layout (key /gopusher/<listenKey>/<address>,
// value "<address> weight=1", each on its own lease), confd (watch mode, etcdv3)
// rendering nginx's upstream from them with a template like gopusher operators
// use, nginx proxying WebSocket clients to two real pusher nodes. Removing a
// node's key takes it out of nginx. The test writes the keys itself: it checks
// the tools and helpers, not pusher's own registration.

import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { Confd } from './helpers/confd';
import { Etcd } from './helpers/etcd';
import { Nginx, websocketLocation } from './helpers/nginx';
import { Client, getJson, startServer, until, type Running } from './helpers/server';

const LISTEN_KEY = 'cluster-tools';
const PREFIX = `/gopusher/${LISTEN_KEY}/`;

const UPSTREAM_TEMPLATE = `upstream pusher {
{{range gets "${PREFIX}*"}}    server {{.Value}};
{{end}}}
`;

/** Starts pusher nodes side by side; each one that started is stopped by the teardown, even if another failed. */
async function nodes(t: Test, n: number): Promise<Running[]> {
  const started = await Promise.allSettled(Array.from({ length: n }, () => startServer({ shards: 1, sets: ['processor.threads=1'] })));
  const running: Running[] = [];
  for (const r of started) {
    if (r.status === 'fulfilled') {
      t.teardown(() => r.value.stop());
      running.push(r.value);
    }
  }
  const failed = started.find((r) => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  return running;
}

const address = (node: Running): string => `127.0.0.1:${node.wsPort}`;

/** Opens `cards.length` clients through nginx one after another, each joined to its card. */
async function joinThrough(nginx: Nginx, cards: string[]): Promise<Client[]> {
  const clients: Client[] = [];
  for (const card of cards) {
    const c = await Client.open(`ws://127.0.0.1:${nginx.port}/ws`);
    clients.push(c);
    await c.join(card);
  }
  return clients;
}

/** The cards that `node` holds a connection for. */
async function heldBy(node: Running, cards: string[]): Promise<string[]> {
  const held: string[] = [];
  for (const card of cards) {
    if ((await getJson(`${node.http}/group?cardID=${card}`)).body.clientNum > 0) held.push(card);
  }
  return held;
}

t.test('confd keeps nginx upstream in step with the nodes in etcd', async (t) => {
  const etcd = await Etcd.create(t);
  const [a, b] = (await nodes(t, 2)) as [Running, Running];

  const leases = await Promise.all([etcd.grantLease(30), etcd.grantLease(30)]);
  await etcd.put(PREFIX + address(a), `${address(a)} weight=1`, leases[0]);
  await etcd.put(PREFIX + address(b), `${address(b)} weight=1`, leases[1]);
  const registered = await etcd.list(PREFIX);
  t.same(registered.map((kv) => kv.value).sort(), [`${address(a)} weight=1`, `${address(b)} weight=1`].sort());
  t.ok(registered.every((kv) => kv.lease !== null && leases.includes(kv.lease)), 'each key is on its node\'s lease');
  t.ok((await etcd.leaseTtl(leases[0]!)) > 0, 'the lease is alive');

  const nginx = await Nginx.create(t, { start: false, http: 'include upstream.conf;', server: websocketLocation('pusher') });
  const upstream = nginx.path('upstream.conf');
  // confd renders before nginx runs (nginx needs the file): that first reload fails, harmlessly.
  const confd = await Confd.create(t, {
    etcd: etcd.url,
    templates: [{ name: 'pusher', template: UPSTREAM_TEMPLATE, dest: upstream, keys: [PREFIX], reloadCmd: nginx.reloadCommand() }],
  });
  t.match(readFileSync(upstream, 'utf8'), `server ${address(a)} weight=1;`);
  t.match(readFileSync(upstream, 'utf8'), `server ${address(b)} weight=1;`);
  await nginx.start();

  const first = ['first-0', 'first-1', 'first-2', 'first-3'];
  const before = await joinThrough(nginx, first);
  const [onA, onB] = [await heldBy(a, first), await heldBy(b, first)];
  t.equal(onA.length + onB.length, first.length, 'every client reached one node');
  t.ok(onA.length > 0 && onB.length > 0, `nginx spread the clients over both nodes (a: ${onA}, b: ${onB})`);

  // Node a leaves: its key goes, confd re-renders and reloads nginx.
  const reloads = nginx.reloads();
  const updates = confd.updates(upstream);
  t.equal(await etcd.del(PREFIX + address(a)), 1, 'node a\'s key deleted');
  await until(async () => confd.updates(upstream) > updates && nginx.reloads() > reloads, 'confd re-rendered and nginx reloaded');
  t.notMatch(readFileSync(upstream, 'utf8'), address(a));
  t.match(readFileSync(upstream, 'utf8'), `server ${address(b)} weight=1;`);

  const second = ['second-0', 'second-1', 'second-2', 'second-3'];
  const after = await joinThrough(nginx, second);
  t.same(await heldBy(a, second), [], 'no new client reaches the removed node');
  t.same(await heldBy(b, second), second, 'every new client reaches the remaining node');

  // Revoking a lease (what a node does on shutdown) deletes its key.
  await etcd.revokeLease(leases[1]!);
  t.equal(await etcd.get(PREFIX + address(b)), null, 'revoking the lease deleted node b\'s key');
  t.equal(await etcd.leaseTtl(leases[1]!), -1, 'the lease is gone');
  // With no node left, confd writes an empty upstream; `nginx -s reload` checks the config
  // first and refuses it (confd logs the error), so the running nginx keeps the last one.
  await until(async () => confd.output().includes('no servers are inside upstream'), 'the reload command refused the empty upstream');
  t.equal(nginx.reloads(), reloads + 1, 'nginx was not reloaded');
  t.equal((await fetch(`${nginx.url}/`)).status, 404, 'nginx still serves');

  await Promise.all([...before, ...after].map((c) => c.close()));
});
