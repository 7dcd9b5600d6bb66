// Processor thread (a Piscina worker): decodes batches of queue bodies
// (protobuf PushRequest), renders each message's WebSocket payload once, and
// sends one DeliverBatch per owner shard straight to that shard over a
// MessagePort. A batch is done when the shards acknowledged delivery.
//
// Batches come two ways. With the embedded queue the main thread consumes and
// runs them here as Piscina tasks, numbered as it dispatched them. With NSQ
// this thread consumes its own share of the channel (nsqjs Reader, started by
// the main thread after warm-up), numbers its batches itself and answers nsqd
// (FIN/REQ): consumed messages never touch the main thread.

import { MessageChannel, parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../shared/log';
import { SeqState } from '../../shared/seq-state';
import type { MainToProcessor, ProcessorHello, ProcessorInit, ProcessorToMain, ProcessTask } from '../../shared/frames';
import { P_ROUTED, P_UNDECODABLE, processorRegion } from '../../shared/counters';
import { ShardLinks } from './shard-links';
import { route, type Routed } from './router';
import { NsqConsumer } from './nsq-consumer';

const init = workerData as ProcessorInit;
const log = createLogger('processor', init.logLevel, init.logFormat);
const seqs = new SeqState(init.seqBuffer);
const links = new ShardLinks(init.shards, init.shardWaitMs);
/** This thread's slot in SeqState and in the counters, given by the main thread after hello. */
let slot = -1;
let counters: Float64Array = new Float64Array(0);
/**
 * Piscina may hand this thread a task before the main thread's answer to
 * hello arrives (a busy box): such a task waits for the slot, or its routing
 * would be counted nowhere and its number owned by no thread.
 */
let slotGiven: () => void;
const hasSlot = new Promise<void>((resolve) => (slotGiven = resolve));
let consumer: NsqConsumer | null = null;

// Piscina gives a worker no port of its own: make one and hand the other end
// to the main thread, which sends the shard ports and commands through it.
const control = new MessageChannel();
const toMain = control.port1;
toMain.on('message', (msg: MainToProcessor) => {
  switch (msg.t) {
    case 'slot':
      slot = msg.slot;
      counters = processorRegion(init.counters, slot);
      slotGiven();
      return;
    case 'shard-port':
      links.attach(msg.shard, msg.port, msg.firstSeq);
      return;
    case 'consume':
      consumer ??= new NsqConsumer(msg.options, init.batchSize, init.latencySample, counters, deliverConsumed, log);
      return;
    case 'stop':
      void stopConsuming(msg.deadline);
      return;
    case 'crash':
      setImmediate(() => {
        throw new Error(`crash requested for processor slot ${slot}`);
      });
  }
});
toMain.unref();
const hello: ProcessorHello = { t: 'processor-hello', control: control.port2 };
parentPort!.postMessage(hello, [control.port2]);

function reply(msg: ProcessorToMain): void {
  toMain.postMessage(msg);
}

async function stopConsuming(deadline: number): Promise<void> {
  const unsettled = consumer === null ? 0 : await consumer.stop(deadline);
  reply({ t: 'stopped', unsettled });
}

/**
 * Routes task `seq` and sends its frames; the promise settles when the shards
 * acknowledged them. Whatever goes wrong before the frames are out, every
 * shard still hears of `seq` (skips), so none waits for it.
 */
function dispatch(seq: number, bodies: readonly Buffer[], samples: Float64Array | null): Promise<void> {
  let routed: Routed;
  try {
    routed = route(bodies, init.shards, log, samples);
  } catch (err) {
    void links.send(seq, []);
    throw err;
  }
  counters[P_ROUTED]! += routed.routed;
  counters[P_UNDECODABLE]! += routed.undecodable;
  return links.send(seq, routed.parts);
}

/** NSQ: this thread's Reader got a batch. */
function deliverConsumed(bodies: Buffer[], samples: Float64Array | null): Promise<void> {
  const seq = seqs.takeFor(slot);
  try {
    return dispatch(seq, bodies, samples);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Embedded queue: a Piscina task from the main thread; resolves once the shards delivered it. */
export default function processBatch(task: ProcessTask): Promise<void> {
  if (slot === -1) return hasSlot.then(() => processBatch(task));
  const { buf, ends, seq, samples } = task;
  seqs.own(seq, slot);
  const bodies: Buffer[] = new Array(ends.length);
  for (let i = 0; i < ends.length; i++) {
    const start = i === 0 ? 0 : ends[i - 1]!;
    // A Buffer view (no copy), not a Uint8Array: see router.ts.
    bodies[i] = Buffer.from(buf, start, ends[i]! - start);
  }
  return dispatch(seq, bodies, samples);
}
