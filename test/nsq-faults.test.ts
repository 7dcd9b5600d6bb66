// The delivery promise with queue.driver = nsq, under load and faults: a shard
// crash, pusher itself restarted while pushes keep arriving, nsqd killed with
// SIGKILL. Every push nsqd acknowledged reaches every member that is connected
// when it is delivered (at least once), but for what a killed nsqd had in
// flight to us and we never received (bounded: see that test).

import t from 'tap';
import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import { ownerOf } from '../shared/hash';
import { Nsqd } from './helpers/nsqd';
import { cpuHog, missingPushes, PushStream } from './helpers/load';
import { Client, ROOT, postJson, startServer, stats, until, type Running } from './helpers/server';

const TOPIC = 'pusher';
const PushRequest = protobuf.loadSync(join(ROOT, 'proto', 'rpc.proto')).lookupType('proto.PushRequest');

function nsqSets(nsqd: Nsqd, channel: string, warmup = 0): string[] {
  return ['queue.driver=nsq', `queue.warmup=${warmup}`, `queue.nsqd_tcp=${nsqd.tcp}`, `queue.topic=${TOPIC}`, `queue.channel=${channel}`];
}

async function consuming(server: Running): Promise<void> {
  await until(async () => (await stats(server)).queue.connected === true, 'the nsq queue is connected', 15_000);
}

t.test('nsq: a shard crash under load loses no accepted push for members on the other shard', async (t) => {
  cpuHog(t);
  const nsqd = await Nsqd.create(t);
  const server = await startServer({ shards: 2, sets: nsqSets(nsqd, 'crash') });
  t.teardown(() => server.stop());
  const cards = Array.from({ length: 12 }, (_, i) => `nsq-crash-${i}`);
  t.ok(cards.some((c) => ownerOf(c, 2) === 0) && cards.some((c) => ownerOf(c, 2) === 1), 'groups on both owners');
  const clients = await Promise.all(Array.from({ length: 48 }, () => Client.open(server.wsUrl)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await Promise.all(clients.map((c, i) => c.join(cards[i % cards.length]!)));
  await consuming(server);

  const stream = new PushStream(server, cards, 16);
  await stream.acceptedAtLeast(500);
  await postJson(`${server.http}/debug/crash?shard=0`, {});
  await until(async () => (await stats(server)).restarts[0] === 1, 'shard 0 restarted');
  await stream.acceptedAtLeast(stream.accepted.size + 1_000);
  await stream.stop();

  const survivors = clients.filter((c) => c.closeCode === null);
  t.ok(survivors.length > 0 && survivors.length < clients.length, `${clients.length - survivors.length} clients were on the crashed shard`);
  const members = new Map(survivors.map((c) => [c, cards[clients.indexOf(c) % cards.length]!]));
  t.same(await missingPushes(stream.accepted, members), [], `${survivors.length} survivors got all of the ${stream.accepted.size} accepted pushes for their groups`);
});

/** A client that joins its card again whenever its connection closes, retrying every `retryMs` (an app's backoff). */
class Member {
  readonly frames: string[] = [];
  private client: Client | null = null;
  private stopped = false;

  constructor(private readonly url: () => string, readonly card: string, private readonly retryMs: number) {}

  async connect(wait = false): Promise<void> {
    while (!this.stopped) {
      if (wait) await new Promise((r) => setTimeout(r, this.retryMs));
      wait = true;
      try {
        const c = await Client.open(this.url());
        await c.join(this.card);
        this.client = c;
        c.ws.on('message', (data: Buffer) => this.frames.push(data.toString()));
        void c.closed.then(() => this.connect(true));
        return;
      } catch {
        // Not back yet.
      }
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.client?.close();
  }
}

t.test('nsq: pusher restarted while pushes keep coming: the backlog waits for the clients to reconnect (warm-up)', async (t) => {
  const nsqd = await Nsqd.create(t);
  const channel = 'restart';
  let server = await startServer({ shards: 2, sets: nsqSets(nsqd, channel, 5) });
  const url = (): string => server.wsUrl;
  // Clients retry every 0.1–0.8 s, as apps with backoff do: they come back spread out.
  const members = Array.from({ length: 8 }, (_, i) => new Member(url, `restart-${i}`, 100 + 100 * i));
  await Promise.all(members.map((m) => m.connect()));
  t.teardown(() => Promise.all(members.map((m) => m.close())));
  await consuming(server);

  // Another producer (a gopusher node, say) keeps publishing to nsqd throughout.
  const published: string[] = [];
  let publishing = true;
  const producer = (async () => {
    for (let i = 0; publishing; i++) {
      const card = `restart-${i % 8}`;
      const content = `r-${i}`;
      await nsqd.pub(TOPIC, PushRequest.encode(PushRequest.create({ to: [card], content })).finish());
      published.push(content);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await until(async () => published.length >= 300, '300 pushes published');
  t.equal(await server.stop('SIGTERM'), 0);
  await until(async () => published.length >= 900, 'pushes published while pusher is down');
  server = await startServer({ shards: 2, sets: nsqSets(nsqd, channel, 5), wsPort: server.wsPort });
  t.teardown(() => server.stop());
  await until(async () => published.length >= 2_000, 'pushes published after the restart', 15_000);
  publishing = false;
  await producer;

  const accepted = new Map(published.map((content, i) => [content, `restart-${i % 8}`]));
  const missing = (): string[] => published.filter((content, i) => !members[i % 8]!.frames.includes(`{"type":1,"data":"${content}"}`));
  await until(async () => missing().length === 0, 'every published push delivered', 20_000).catch(() => undefined);
  t.same(missing(), [], `all ${accepted.size} pushes published before, during and after the restart were delivered`);
  const line = /consuming from nsqd .*warmupS=5 clients=(\d+)/.exec(server.output());
  t.equal(Number(line?.[1]), 8, 'consuming started after the warm-up, with the 8 clients back');
});

// What nsqd keeps when it is killed (README, "What survives nsqd going away"):
// every acknowledged message it had not yet handed to a consumer; of those it
// had (in flight), the ones the consumer never received are gone, at most the
// consumer's RDY (queue.max_in_flight). Everything else must arrive.
const KILL_IN_FLIGHT = 300;

t.test('nsq: nsqd killed with SIGKILL while a backlog waits in it (recommended flags): only what nsqd had in flight to us may be lost', async (t) => {
  const nsqd = await Nsqd.create(t);
  // One processor: batches arrive faster than it consumes, so a backlog waits in nsqd when it dies.
  const server = await startServer({ shards: 2, sets: [...nsqSets(nsqd, 'sigkill'), 'processor.threads=1', `queue.max_in_flight=${KILL_IN_FLIGHT}`] });
  t.teardown(() => server.stop());
  const cards = ['k0', 'k1', 'k2', 'k3'];
  const clients = await Promise.all(cards.map(() => Client.open(server.wsUrl)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await Promise.all(clients.map((c, i) => c.join(cards[i]!)));
  await consuming(server);

  const stream = new PushStream(server, cards, 4, 200);
  await stream.acceptedAtLeast(20_000);
  await nsqd.stop('SIGKILL');
  const beforeKill = new Set(stream.accepted.keys());
  await stream.rejectedAtLeast(10);
  await nsqd.start();
  await until(async () => (await stats(server)).queue.connected === true, 'the queue reconnects', 15_000);
  await stream.acceptedAtLeast(stream.accepted.size + 2_000);
  await stream.stop();
  const members = new Map(clients.map((c, i) => [c, cards[i]!]));
  const lost = new Set((await missingPushes(stream.accepted, members, 30_000)).map((m) => m.slice(m.indexOf(':') + 1)));
  t.ok(lost.size <= KILL_IN_FLIGHT, `${lost.size} of ${stream.accepted.size} acknowledged pushes lost: at most the ${KILL_IN_FLIGHT} nsqd may have had in flight`);
  t.same([...lost].filter((p) => !beforeKill.has(p)), [], 'every push acknowledged after the kill was delivered');
});
