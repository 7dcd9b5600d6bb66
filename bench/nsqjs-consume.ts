// What the nsqjs Reader costs per consumed message: CPU µs per message to
// receive and FIN a prefilled channel, in alternating child processes (one
// nsqd, refilled before every run):
//   stock       nsqjs 0.13.0, finish() per message, sockets corked per batch
//   tuned-each  with workers/processor/nsqjs-tuning.ts, still finish() per message
//   tuned       with it, and a batch FINed by finishAll() (as the processors do)
//
//   npm run build && node dist/bench/nsqjs-consume.js [--messages 300000] [--rounds 3]

import { fork } from 'node:child_process';
import { Reader, type Message } from 'nsqjs';
import { startNsqd } from './server-proc';

const TOPIC = 'consume';
const CHANNEL = 'c';

async function fill(http: string, n: number): Promise<void> {
  const body = Array.from({ length: 100 }, () => 'x'.repeat(40)).join('\n');
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < n) {
      sent += 100;
      const res = await fetch(`${http}/mpub?topic=${TOPIC}`, { method: 'POST', body });
      if (!res.ok) throw new Error(`mpub: ${res.status}`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

/** In a child: consume `n` messages, FIN once per turn as `finish` does it, and report. */
function consume(tcp: string, n: number, variant: string, finishBatch: ((msgs: readonly Message[]) => void) | null): void {
  // Messages nsqd sent past the n-th are still in flight when this child exits:
  // a short timeout gives them back to the next run soon.
  const reader = new Reader(TOPIC, CHANNEL, { nsqdTCPAddresses: [tcp], maxInFlight: 2500, outputBufferTimeout: 1, lookupdPollInterval: 1, messageTimeout: 1_000 });
  let got = 0;
  let start: NodeJS.CpuUsage | null = null;
  let batch: Message[] = [];
  const flush = (): void => {
    if (finishBatch !== null) {
      finishBatch(batch);
      batch = [];
      return;
    }
    const sockets = reader.readerRdy.connections.flatMap((c) => (c.conn.conn === undefined ? [] : [c.conn.conn]));
    for (const s of sockets) s.cork();
    for (const m of batch) m.finish();
    batch = [];
    process.nextTick(() => sockets.forEach((s) => s.uncork()));
  };
  reader.on('message', (m) => {
    start ??= process.cpuUsage();
    if (batch.length === 0) setImmediate(flush);
    batch.push(m);
    if (++got === n) {
      setTimeout(() => {
        const cpu = process.cpuUsage(start!);
        process.send!({ variant, messages: n, cpuUsPerMessage: Math.round(((cpu.user + cpu.system) / n) * 100) / 100 });
        process.exit(0);
      }, 100);
    }
  });
  reader.connect();
}

function run(tcp: string, n: number, variant: string): Promise<{ variant: string; cpuUsPerMessage: number }> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['--child', variant, tcp, String(n)]);
    child.once('message', (m: { variant: string; cpuUsPerMessage: number }) => resolve(m));
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`child exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    const tuning = args[1] === 'stock' ? null : await import('../workers/processor/nsqjs-tuning');
    consume(args[2]!, Number(args[3]), args[1]!, args[1] === 'tuned' ? tuning!.finishAll : null);
    return;
  }
  const opt = (name: string, dflt: number): number => {
    const i = args.indexOf(name);
    return i === -1 ? dflt : Number(args[i + 1]);
  };
  const n = opt('--messages', 300_000);
  const rounds = opt('--rounds', 3);
  const nsqd = await startNsqd(['--mem-queue-size=10000000', '--min-output-buffer-timeout=1ms']);
  try {
    await fetch(`${nsqd.http}/topic/create?topic=${TOPIC}`, { method: 'POST' });
    await fetch(`${nsqd.http}/channel/create?topic=${TOPIC}&channel=${CHANNEL}`, { method: 'POST' });
    const variants = ['stock', 'tuned-each', 'tuned'];
    const results: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v, []]));
    for (let r = 0; r < rounds; r++) {
      for (const variant of variants) {
        await fill(nsqd.http, n);
        const res = await run(nsqd.tcp, n, variant);
        results[variant]!.push(res.cpuUsPerMessage);
        process.stderr.write(`round ${r + 1} ${variant}: ${res.cpuUsPerMessage} µs CPU per message\n`);
      }
    }
    process.stdout.write(`${JSON.stringify({ messages: n, rounds, cpuUsPerMessage: results })}\n`);
  } finally {
    await nsqd.stop();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
