// Turns a batch of queue bodies (protobuf PushRequest) into one OwnerBatch per
// shard that owns a recipient group, each message's payload rendered once. A
// broadcast (PushRequest.broadcast) goes into every shard's batch: every
// shard holds connections of every app. Runs in a processor thread.

import type { Logger } from '../../shared/log';
import { protoType, type PushRequest } from '../../shared/proto';
import { ownerOf } from '../../shared/hash';
import { renderPush } from '../../shared/payload';
import { OwnerBatch } from './owner-batch';
import type { Part } from './shard-links';

const PushRequestType = protoType('PushRequest');

export interface Routed {
  /** Per shard: its batch, or undefined when the task has nothing for it. */
  readonly parts: Part[];
  /** Bodies that were not a PushRequest: finished, never retried. */
  readonly undecodable: number;
  /** Deliveries routed (one per card_id of each good message). */
  readonly routed: number;
}

/**
 * `bodies` must be Buffers: protobufjs then reads strings with Buffer's native
 * UTF-8 decoder (~20% faster). `samples`: pairs of body index (ascending) and
 * accept time, passed on to the batches that carry those messages.
 */
export function route(bodies: readonly Buffer[], shards: number, log: Logger, samples: Float64Array | null = null): Routed {
  const parts: Part[] = new Array(shards);
  let undecodable = 0;
  let routed = 0;
  /** The next sample pair. */
  let next = 0;
  for (let i = 0; i < bodies.length; i++) {
    let at = 0;
    if (samples !== null && next < samples.length && samples[next] === i) {
      at = samples[next + 1]!;
      next += 2;
    }
    let req: PushRequest;
    try {
      req = PushRequestType.decode(bodies[i]!) as unknown as PushRequest;
    } catch (err) {
      log.warn('undecodable queue message; finished without delivery', { code: 'PUSH_ERR_BAD_MESSAGE', error: (err as Error).message });
      undecodable++;
      continue;
    }
    const to = req.to;
    if (to.length === 0 && !req.broadcast) continue;
    const payload = renderPush(req.content);
    for (let s = 0; s < shards; s++) parts[s]?.nextMessage();
    if (req.broadcast) {
      for (let s = 0; s < shards; s++) (parts[s] ??= new OwnerBatch()).broadcast(payload, req.appID);
      routed++;
      continue;
    }
    for (let r = 0; r < to.length; r++) {
      const card = to[r]!;
      if (card === '') continue;
      const owner = ownerOf(card, shards);
      let b = parts[owner];
      if (b === undefined) {
        b = parts[owner] = new OwnerBatch();
        b.nextMessage();
      }
      b.add(card, payload, req.appID);
      routed++;
    }
    if (at !== 0) for (let p = 0; p < shards; p++) parts[p]?.sample(at);
  }
  return { parts, undecodable, routed };
}
