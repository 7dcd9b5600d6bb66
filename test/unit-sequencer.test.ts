// Sequencer (workers/shard/sequencer.ts), in-process: "processors" post
// DeliverBatch and SkipFrame frames over real MessageChannels, the shard end
// feeds them to the sequencer as workers/shard/worker.ts does, and the test checks
// what is delivered, in which order, from which port.

import t from 'tap';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Sequencer } from '../workers/shard/sequencer';
import { F_DELIVER, F_SKIP, type DeliverBatch, type ProcessorFrame } from '../shared/frames';
import type { Teardown } from './helpers/ports';

function batch(seq: number): DeliverBatch {
  return { t: F_DELIVER, seq, buf: new ArrayBuffer(0), ends: new Uint32Array(0), apps: [], cards: [], offs: new Uint32Array(1), msgs: new Uint32Array(0), samples: null, bcast: null };
}

interface Harness {
  readonly seq: Sequencer;
  /** Sequence numbers delivered, in order. */
  readonly delivered: number[];
  /** Index of the processor port each delivery came from. */
  readonly from: number[];
  /** Processor p sends task `n`'s batch. */
  deliver(p: number, n: number): void;
  /** Processor p sends a skip for task `n`. */
  skip(p: number, n: number): void;
  /** Resolves once the shard end dispatched every frame sent so far. */
  settle(): Promise<void>;
}

function shard(t: Teardown, firstSeq: number, gates: number, processors = 2): Harness {
  const delivered: number[] = [];
  const from: number[] = [];
  const shardEnds: MessagePort[] = [];
  const procEnds: MessagePort[] = [];
  let sent = 0;
  let received = 0;
  let waiters: (() => void)[] = [];
  const seq = new Sequencer(firstSeq, gates, (b, port) => {
    delivered.push(b.seq);
    from.push(shardEnds.indexOf(port));
  });
  for (let p = 0; p < processors; p++) {
    const { port1, port2 } = new MessageChannel();
    procEnds.push(port1);
    shardEnds.push(port2);
    // As workers/shard/inbox.ts fromProcessor.
    port2.on('message', (f: ProcessorFrame) => {
      if (f.t === F_DELIVER) seq.push(f.seq, f, port2);
      else if (f.t === F_SKIP) seq.push(f.seq, null, port2);
      if (++received === sent) {
        const w = waiters;
        waiters = [];
        for (const fn of w) fn();
      }
    });
    t.teardown(() => port1.close());
  }
  return {
    seq,
    delivered,
    from,
    deliver(p, n) {
      sent++;
      procEnds[p]!.postMessage(batch(n));
    },
    skip(p, n) {
      sent++;
      procEnds[p]!.postMessage({ t: F_SKIP, seq: n });
    },
    settle() {
      if (received === sent) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}

t.test('delivers in task order across ports; early frames wait for the gap to fill', async (t) => {
  const h = shard(t, 0, 0);
  h.deliver(0, 2);
  h.deliver(0, 4);
  h.deliver(1, 3);
  await h.settle();
  t.same(h.delivered, [], 'nothing before task 0');
  t.equal(h.seq.waitingFor, 0);
  h.deliver(0, 0);
  await h.settle();
  t.same(h.delivered, [0], 'task 0, then waits for 1');
  t.equal(h.seq.waitingFor, 1);
  h.deliver(1, 1);
  await h.settle();
  t.same(h.delivered, [0, 1, 2, 3, 4], 'the gap filled: everything held goes, in order');
  t.same(h.from, [0, 1, 0, 1, 0], 'each batch with the port it came on (acks go back there)');
  t.equal(h.seq.waitingFor, -1, 'nothing held');
});

t.test('a held frame is not skipped on a timer', async (t) => {
  const h = shard(t, 0, 0);
  h.deliver(1, 1);
  h.deliver(1, 2);
  await h.settle();
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.same(h.delivered, [], 'still held after 300 ms');
  t.equal(h.seq.waitingFor, 0, 'still waiting for task 0');
  h.deliver(0, 0);
  await h.settle();
  t.same(h.delivered, [0, 1, 2]);
});

t.test('skips move the sequencer on without delivering', async (t) => {
  const h = shard(t, 0, 0);
  h.deliver(1, 1);
  h.skip(1, 2);
  h.deliver(1, 3);
  await h.settle();
  t.same(h.delivered, []);
  h.skip(0, 0);
  await h.settle();
  t.same(h.delivered, [1, 3], 'skips 0 and 2 delivered nothing, and held nothing up');
  h.skip(0, 0);
  h.skip(0, 3);
  h.deliver(0, 5);
  await h.settle();
  t.same(h.delivered, [1, 3], 'a repeated skip of a past task does not advance the sequencer');
  t.equal(h.seq.waitingFor, 4);
  h.skip(1, 4);
  await h.settle();
  t.same(h.delivered, [1, 3, 5]);
});

t.test('gap() from the main thread releases what waits behind it', async (t) => {
  const h = shard(t, 0, 0);
  h.deliver(0, 1);
  h.deliver(1, 2);
  await h.settle();
  h.seq.gap(0);
  t.same(h.delivered, [1, 2], 'released at once');
  h.seq.gap(3);
  h.deliver(0, 4);
  await h.settle();
  t.same(h.delivered, [1, 2, 4], 'a gap declared ahead is passed when reached');

  // A gap declared for a number whose real frame is already held does not replace it.
  h.deliver(1, 6);
  await h.settle();
  h.seq.gap(6);
  h.seq.gap(5);
  t.same(h.delivered, [1, 2, 4, 6], 'the held real frame of 6 was delivered, not dropped');
  h.seq.gap(2);
  t.same(h.delivered, [1, 2, 4, 6], 'a gap for a past number changes nothing');
  t.equal(h.seq.waitingFor, -1);
});

t.test('a real frame arriving after a gap was declared for it is delivered late, not dropped', async (t) => {
  const h = shard(t, 0, 0);
  h.seq.gap(0);
  h.deliver(0, 1);
  await h.settle();
  t.same(h.delivered, [1]);
  h.deliver(1, 0);
  await h.settle();
  t.same(h.delivered, [1, 0], 'task 0 came after all: delivered late');
  t.same(h.from, [0, 1]);

  // Gap declared while the number is ahead, real frame arrives before it is reached.
  h.seq.gap(3);
  h.deliver(0, 3);
  await h.settle();
  t.same(h.delivered, [1, 0], 'held behind 2');
  h.deliver(1, 2);
  await h.settle();
  t.same(h.delivered, [1, 0, 2, 3], 'the real frame won over the declared gap');
});

t.test('duplicates of delivered tasks do not move the sequencer', async (t) => {
  const h = shard(t, 0, 0);
  h.deliver(0, 0);
  h.deliver(0, 1);
  h.deliver(0, 3);
  await h.settle();
  t.same(h.delivered, [0, 1]);
  h.deliver(1, 1);
  await h.settle();
  // Late frames are never dropped (they may be a re-send the shard never acknowledged).
  t.same(h.delivered, [0, 1, 1], 'a second batch 1 is delivered late');
  t.equal(h.seq.waitingFor, 2, 'and 3 still waits for 2');
  h.skip(1, 1);
  await h.settle();
  t.equal(h.seq.waitingFor, 2, 'a skip of a delivered task does not count as 2');
  h.deliver(1, 2);
  await h.settle();
  t.same(h.delivered, [0, 1, 1, 2, 3]);
});

t.test('gated: nothing until every gate opened, then late frames sorted, then in-order ones', async (t) => {
  const h = shard(t, 10, 2, 3);
  t.equal(h.seq.open, false);
  h.deliver(0, 7);
  h.deliver(0, 3);
  h.skip(0, 4); // a late skip: nothing to deliver
  h.deliver(1, 12);
  h.skip(1, 11);
  h.deliver(1, 5);
  h.deliver(2, 10); // == firstSeq: still held while gated
  await h.settle();
  h.seq.gap(13);
  t.same(h.delivered, [], 'nothing while gated');
  h.seq.openGate();
  t.same(h.delivered, [], 'one of two gates open: still nothing');
  t.equal(h.seq.open, false);
  h.seq.openGate();
  t.equal(h.seq.open, true);
  t.same(h.delivered, [3, 5, 7, 10, 12], 'late frames sorted by seq, then 10..13 in order (11 skipped, 13 a gap)');
  t.same(h.from, [0, 1, 0, 2, 1], 'each from its own port');
  h.seq.openGate();
  t.same(h.delivered, [3, 5, 7, 10, 12], 'extra openGate() is a no-op');

  h.deliver(2, 8);
  h.deliver(2, 15);
  await h.settle();
  t.same(h.delivered, [3, 5, 7, 10, 12, 8], 'a late frame after opening is delivered at once; 15 waits for 14');
  h.deliver(0, 14);
  await h.settle();
  t.same(h.delivered, [3, 5, 7, 10, 12, 8, 14, 15]);
});

t.test('gated: a gap at firstSeq waits for the gates too', async (t) => {
  const h = shard(t, 0, 1);
  h.deliver(0, 1);
  await h.settle();
  h.seq.gap(0);
  t.same(h.delivered, [], 'gap(0) while gated releases nothing');
  h.seq.openGate();
  t.same(h.delivered, [1]);
});

t.test('gated: a real frame replaces a gap declared while gated', async (t) => {
  const h = shard(t, 0, 1);
  h.seq.gap(0);
  h.deliver(0, 0);
  await h.settle();
  h.seq.openGate();
  t.same(h.delivered, [0]);
});
