// Processor thread (a Piscina worker): decodes batches of queue bodies
// (protobuf PushRequest), renders each message's WebSocket payload once, and
// sends one DeliverBatch per owner shard straight to that shard over a
// MessagePort. Nothing goes back through the main thread but the task result.

import { MessageChannel, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { createLogger } from '../src/shared/log';
import { protoType, type PushRequest } from '../src/shared/proto';
import { ownerOf } from '../src/shared/hash';
import { renderPush } from '../src/shared/payload';
import {
  F_DELIVER, F_SKIP, type DeliverBatch, type SkipFrame, type MainToProcessor, type ProcessorHello, type ProcessorInit,
  type ProcessResult, type ProcessTask,
} from '../src/shared/frames';

const init = workerData as ProcessorInit;
const log = createLogger('processor', init.logLevel);
const PushRequestType = protoType('PushRequest');
const shardPorts: (MessagePort | null)[] = new Array<MessagePort | null>(init.shards).fill(null);
let attached = 0;
let onAllAttached: (() => void) | null = null;
let allAttached: Promise<void> | null = new Promise((resolve) => {
  onAllAttached = resolve;
});

// Piscina gives a worker no port of its own: make one and hand the other end
// to the main thread, which sends the shard ports through it.
const control = new MessageChannel();
control.port1.on('message', (msg: MainToProcessor) => {
  if (msg.t !== 'shard-port') return;
  const old = shardPorts[msg.shard];
  if (old == null) attached++;
  else old.close();
  shardPorts[msg.shard] = msg.port;
  if (attached === init.shards && onAllAttached !== null) {
    onAllAttached();
    onAllAttached = null;
    allAttached = null;
  }
});
control.port1.unref();
const hello: ProcessorHello = { t: 'processor-hello', control: control.port2 };
parentPort!.postMessage(hello, [control.port2]);

/** Deliveries for one owner shard, collected while a task is processed. */
class OwnerBatch {
  readonly payloads: string[] = [];
  readonly apps: string[] = [];
  readonly cards: string[] = [];
  readonly msgs: number[] = [];
  /** Index of the current message's payload in this batch, or -1. */
  current = -1;
}

const utf8 = new TextEncoder();

function send(shard: number, seq: number, b: OwnerBatch | undefined): void {
  const port = shardPorts[shard];
  if (port == null) return;
  if (b === undefined) {
    const skip: SkipFrame = { t: F_SKIP, seq };
    port.postMessage(skip);
    return;
  }
  const ends = new Uint32Array(b.payloads.length);
  let size = 0;
  for (let i = 0; i < b.payloads.length; i++) {
    size += Buffer.byteLength(b.payloads[i]!, 'utf8');
    ends[i] = size;
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (let i = 0; i < b.payloads.length; i++) off += utf8.encodeInto(b.payloads[i]!, bytes.subarray(off)).written;
  const frame: DeliverBatch = {
    t: F_DELIVER, seq, buf: bytes.buffer, ends, apps: b.apps, cards: b.cards, msgs: Uint32Array.from(b.msgs),
  };
  port.postMessage(frame, [bytes.buffer]);
}

export default async function processBatch(task: ProcessTask): Promise<ProcessResult> {
  if (allAttached !== null) await allAttached;
  const { buf, ends } = task;
  const shards = init.shards;
  const byOwner: (OwnerBatch | undefined)[] = new Array(shards);
  const bad: number[] = [];
  let routed = 0;

  for (let i = 0; i < ends.length; i++) {
    const start = i === 0 ? 0 : ends[i - 1]!;
    let req: PushRequest;
    try {
      req = PushRequestType.decode(new Uint8Array(buf, start, ends[i]! - start)) as unknown as PushRequest;
    } catch (err) {
      log.warn('undecodable queue message; finished without delivery', { code: 'PUSH_ERR_BAD_MESSAGE', error: (err as Error).message });
      bad.push(i);
      continue;
    }
    const to = req.to;
    if (to.length === 0) continue;
    const payload = renderPush(req.content);
    const app = req.appID;
    for (let s = 0; s < shards; s++) {
      const b = byOwner[s];
      if (b !== undefined) b.current = -1;
    }
    for (let r = 0; r < to.length; r++) {
      const card = to[r]!;
      if (card === '') continue;
      const owner = ownerOf(card, shards);
      let b = byOwner[owner];
      if (b === undefined) b = byOwner[owner] = new OwnerBatch();
      if (b.current === -1) {
        b.current = b.payloads.length;
        b.payloads.push(payload);
        b.apps.push(app);
      }
      b.cards.push(card);
      b.msgs.push(b.current);
      routed++;
    }
  }
  // Every shard hears of every task, even with nothing to deliver, so it can
  // deliver tasks in sequence without waiting on ones that never come.
  for (let s = 0; s < shards; s++) send(s, task.seq, byOwner[s]);
  return { bad, routed };
}
