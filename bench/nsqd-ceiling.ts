// How fast nsqd itself moves messages on this box, without pusher: the
// ceiling of every NSQ bench line. One nsqd (the bench's flags: durable,
// --mem-queue-size=0, unless --nsqd-arg says otherwise), one producer (our
// MPUB connection, 4 MPUBs of 500 bodies in flight), and, in a child process,
// one consumer (nsqjs Reader tuned as the processors run it, a turn's messages
// FINed together by finishAll, RDY 2500). Three phases, each reported with
// nsqd's CPU-s per 100k:
//
//   publish  only the producer, for --duration s: accepted/s, and how fast
//            nsqd's topic pump moves them into the channel (the pump rate)
//   drain    only the consumer, emptying that channel
//   both     producer and consumer together, for --duration s (at --rate
//            messages/s, 0 = as fast as nsqd acknowledges)
//
//   npm run build && node dist/bench/nsqd-ceiling.js [--duration 10] [--rate R] [--nsqd-arg --mem-queue-size=10000000]

import { fork, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Reader, type Message } from 'nsqjs';
import { encodeMpub, NsqWriter } from '../src/queue/nsq-writer';
import { joinNsqdArgs } from './options';
import { sampleProc, type ProcSample } from './proc-stats';
import { startNsqd, type Nsqd } from './server-proc';

const TOPIC = 'ceiling';
const CHANNEL = 'c';
const MPUB_BODIES = 500;
const MPUBS_IN_FLIGHT = 4;
/** About the size of an encoded PushRequest from the push scenario. */
const BODY = Buffer.alloc(120, 'x');

interface ChannelCounts {
  topicDepth: number;
  /** Messages nsqd's topic pump put into the channel, ever. */
  channelPut: number;
  channelDepth: number;
  inFlight: number;
}

async function counts(nsqd: Nsqd): Promise<ChannelCounts> {
  const res = await fetch(`${nsqd.http}/stats?format=json&topic=${TOPIC}`);
  const stats = (await res.json()) as { topics: { depth: number; channels: { channel_name: string; message_count: number; depth: number; in_flight_count: number }[] }[] };
  const t = stats.topics[0]!;
  const c = t.channels.find((ch) => ch.channel_name === CHANNEL)!;
  return { topicDepth: t.depth, channelPut: c.message_count, channelDepth: c.depth, inFlight: c.in_flight_count };
}

/**
 * Publishes until `untilMs` (performance.now()), as fast as nsqd acknowledges
 * or at `rate` messages/s; resolves with the count acknowledged.
 */
function publish(nsqd: Nsqd, untilMs: number, rate = 0): Promise<number> {
  const [host, port] = nsqd.tcp.split(':');
  const bodies = new Array<Uint8Array>(MPUB_BODIES).fill(BODY);
  const frame = encodeMpub(TOPIC, bodies, BODY.length * MPUB_BODIES);
  const start = performance.now();
  return new Promise((resolve, reject) => {
    let acked = 0;
    let out = 0;
    const writer = new NsqWriter(host!, Number(port), { heartbeatInterval: 5, idleTimeout: 15 }, {
      ready: () => {
        for (let i = 0; i < MPUBS_IN_FLIGHT; i++) send();
      },
      closed: (reason) => reject(new Error(`producer: ${reason}`)),
    });
    const send = (): void => {
      if (performance.now() >= untilMs) {
        if (out === 0) {
          writer.close();
          resolve(acked);
        }
        return;
      }
      const ahead = (acked + (out + 1) * MPUB_BODIES) / rate - (performance.now() - start) / 1000;
      if (rate > 0 && ahead > 0) {
        setTimeout(send, ahead * 1000);
        return;
      }
      out++;
      writer.publish(frame, (err) => {
        out--;
        if (err !== null) reject(err);
        acked += MPUB_BODIES;
        send();
      });
    };
    writer.connect();
  });
}

async function waitFor(nsqd: Nsqd, done: (c: ChannelCounts) => boolean): Promise<{ counts: ChannelCounts; at: number }> {
  for (;;) {
    const c = await counts(nsqd);
    if (done(c)) return { counts: c, at: performance.now() };
    await new Promise((r) => setTimeout(r, 20));
  }
}

function cpuPer100k(a: ProcSample, b: ProcSample, messages: number): number {
  return Math.round(((b.cpuS - a.cpuS) / messages) * 1e5 * 100) / 100;
}

/** The child: consumes until told to stop, FINs once per turn; reports what it consumed. */
async function consumer(tcp: string): Promise<void> {
  const { finishAll } = await import('../workers/processor/nsqjs-tuning');
  const reader = new Reader(TOPIC, CHANNEL, { nsqdTCPAddresses: [tcp], maxInFlight: 2500, outputBufferTimeout: 1, lookupdPollInterval: 1 });
  let got = 0;
  let batch: Message[] = [];
  const flush = (): void => {
    finishAll(batch);
    batch = [];
  };
  reader.on('message', (m) => {
    if (batch.length === 0) setImmediate(flush);
    batch.push(m);
    got++;
  });
  reader.on('nsqd_connected', () => process.send!({ connected: true }));
  process.on('message', () => {
    const cpu = process.cpuUsage();
    process.send!({ got, cpuS: (cpu.user + cpu.system) / 1e6 }, () => process.exit(0));
  });
  reader.connect();
}

function startConsumer(tcp: string): Promise<ChildProcess> {
  const child = fork(__filename, ['--child', tcp]);
  return new Promise((resolve) => child.once('message', () => resolve(child)));
}

function stopConsumer(child: ChildProcess): Promise<{ got: number; cpuS: number }> {
  return new Promise((resolve) => {
    child.once('message', (m: { got: number; cpuS: number }) => resolve(m));
    child.send('stop');
  });
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return consumer(process.argv[3]!);
  const { values } = parseArgs({ args: joinNsqdArgs(process.argv.slice(2)), options: { duration: { type: 'string', default: '10' }, rate: { type: 'string', default: '0' }, 'nsqd-arg': { type: 'string', multiple: true, default: [] } } });
  const durationMs = Number(values.duration) * 1000;
  const nsqd = await startNsqd(values['nsqd-arg']);
  const pid = nsqd.pid!;
  try {
    await fetch(`${nsqd.http}/topic/create?topic=${TOPIC}`, { method: 'POST' });
    await fetch(`${nsqd.http}/channel/create?topic=${TOPIC}&channel=${CHANNEL}`, { method: 'POST' });

    // publish: producer alone; the pump keeps moving the topic's backlog into the channel after it stops.
    let t0 = performance.now();
    let cpu0 = sampleProc(pid)!;
    const published = await publish(nsqd, t0 + durationMs);
    const publishedAt = performance.now();
    const pumped = await waitFor(nsqd, (c) => c.topicDepth === 0 && c.channelPut >= published);
    let cpu1 = sampleProc(pid)!;
    const publishPhase = {
      acceptedPerS: Math.round(published / ((publishedAt - t0) / 1000)),
      pumpPerS: Math.round(published / ((pumped.at - t0) / 1000)),
      nsqdCpuSecPer100k: cpuPer100k(cpu0, cpu1, published),
    };
    process.stderr.write(`publish: ${JSON.stringify(publishPhase)}\n`);

    // drain: consumer alone.
    let child = await startConsumer(nsqd.tcp);
    t0 = performance.now();
    cpu0 = sampleProc(pid)!;
    const drained = await waitFor(nsqd, (c) => c.channelDepth === 0 && c.inFlight === 0);
    cpu1 = sampleProc(pid)!;
    let consumed = await stopConsumer(child);
    const drainPhase = {
      deliveredPerS: Math.round(consumed.got / ((drained.at - t0) / 1000)),
      nsqdCpuSecPer100k: cpuPer100k(cpu0, cpu1, consumed.got),
      consumerCpuUsPerMessage: Math.round((consumed.cpuS / consumed.got) * 1e6 * 100) / 100,
    };
    process.stderr.write(`drain: ${JSON.stringify(drainPhase)}\n`);

    // both: producer and consumer together; delivered counted over the publishing window.
    child = await startConsumer(nsqd.tcp);
    const before = await counts(nsqd);
    t0 = performance.now();
    cpu0 = sampleProc(pid)!;
    const both = await publish(nsqd, t0 + durationMs, Number(values.rate));
    const end = performance.now();
    cpu1 = sampleProc(pid)!;
    consumed = await stopConsumer(child);
    const after = await counts(nsqd);
    const bothPhase = {
      acceptedPerS: Math.round(both / ((end - t0) / 1000)),
      deliveredPerS: Math.round(consumed.got / ((end - t0) / 1000)),
      topicBacklogAtEnd: after.topicDepth - before.topicDepth,
      nsqdCpuSecPer100k: cpuPer100k(cpu0, cpu1, consumed.got),
    };
    process.stderr.write(`both: ${JSON.stringify(bothPhase)}\n`);
    process.stdout.write(`${JSON.stringify({ nsqdArgs: values['nsqd-arg'], durationS: durationMs / 1000, rate: Number(values.rate), publish: publishPhase, drain: drainPhase, both: bothPhase })}\n`);
  } finally {
    await nsqd.stop();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
