// Processor thread (a Piscina worker): decodes batches of queue bodies
// (protobuf PushRequest), renders each message's WebSocket payload once, and
// sends one DeliverBatch per owner shard straight to that shard over a
// MessagePort. Nothing goes back through the main thread but the task result,
// which comes once the shards acknowledged delivery (end-to-end backpressure).

import { MessageChannel, parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../src/shared/log';
import { protoType, type PushRequest } from '../src/shared/proto';
import { ownerOf } from '../src/shared/hash';
import { renderPush } from '../src/shared/payload';
import type { MainToProcessor, ProcessorHello, ProcessorInit, ProcessResult, ProcessTask } from '../src/shared/frames';
import { OwnerBatch } from './processor/owner-batch';
import { ShardLinks } from './processor/shard-links';

const init = workerData as ProcessorInit;
const log = createLogger('processor', init.logLevel);
const PushRequestType = protoType('PushRequest');
const links = new ShardLinks(init.shards);

// Piscina gives a worker no port of its own: make one and hand the other end
// to the main thread, which sends the shard ports through it.
const control = new MessageChannel();
control.port1.on('message', (msg: MainToProcessor) => {
  if (msg.t === 'shard-port') links.attach(msg.shard, msg.port);
});
control.port1.unref();
const hello: ProcessorHello = { t: 'processor-hello', control: control.port2 };
parentPort!.postMessage(hello, [control.port2]);

export default async function processBatch(task: ProcessTask): Promise<ProcessResult> {
  if (!links.ready) await links.whenReady();
  const { buf, ends, seq } = task;
  const shards = init.shards;
  const byOwner: (OwnerBatch | undefined)[] = new Array(shards);
  const bad: number[] = [];
  let routed = 0;

  for (let i = 0; i < ends.length; i++) {
    const start = i === 0 ? 0 : ends[i - 1]!;
    let req: PushRequest;
    try {
      // A Buffer view (no copy), not a Uint8Array: protobufjs then reads
      // strings with Buffer's native UTF-8 decoder (~20% faster per message).
      req = PushRequestType.decode(Buffer.from(buf, start, ends[i]! - start)) as unknown as PushRequest;
    } catch (err) {
      log.warn('undecodable queue message; finished without delivery', { code: 'PUSH_ERR_BAD_MESSAGE', error: (err as Error).message });
      bad.push(i);
      continue;
    }
    const to = req.to;
    if (to.length === 0) continue;
    const payload = renderPush(req.content);
    for (let s = 0; s < shards; s++) byOwner[s]?.nextMessage();
    for (let r = 0; r < to.length; r++) {
      const card = to[r]!;
      if (card === '') continue;
      const owner = ownerOf(card, shards);
      let b = byOwner[owner];
      if (b === undefined) {
        b = byOwner[owner] = new OwnerBatch();
        b.nextMessage();
      }
      b.add(card, payload, req.appID);
      routed++;
    }
  }
  // Every shard hears of every task, even with nothing to deliver, so it can
  // deliver tasks in sequence without waiting on ones that never come.
  let mask = 0;
  for (let s = 0; s < shards; s++) {
    const b = byOwner[s];
    if (b === undefined) links.skip(s, seq);
    else mask |= links.deliver(s, b.build(seq));
  }
  await links.wait(seq, mask);
  return { bad, routed };
}
