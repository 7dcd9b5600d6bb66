// Every message that crosses a thread boundary, typed in one place.
//
//   main  <-> shard      worker.postMessage / parentPort    (MainToShard, ShardToMain)
//   proc   -> shard      a MessagePort per (processor, shard) (DeliverBatch)
//   shard <-> shard      a MessagePort per pair of shards   (DeliverBatch, MembersUpdate)
//   main  <-> processor  Piscina tasks (ProcessTask -> ProcessResult) and one
//                        control port per processor (MainToProcessor)

import type { MessagePort } from 'node:worker_threads';

/** Tags of the hot-path frames between workers (numbers: cheap to compare). */
export const F_DELIVER = 1;
export const F_MEMBERS = 2;
export const F_SKIP = 3;
export const F_ACK = 4;

/**
 * A batch of deliveries. Payloads are rendered once (the exact bytes of the
 * WebSocket text frame) and packed back to back in `buf`.
 */
export interface DeliverBatch {
  readonly t: typeof F_DELIVER;
  /**
   * Processor task sequence number (shards deliver in this order, see
   * workers/shard/sequencer.ts); -1 when an owner forwards it: then deliver to
   * local members only.
   */
  readonly seq: number;
  readonly buf: ArrayBuffer;
  /** Payload k is buf[k === 0 ? 0 : ends[k-1], ends[k]). */
  readonly ends: Uint32Array;
  /** Per payload: only connections that joined with this app_id ('' = all). */
  readonly apps: readonly string[];
  /** The groups (card_ids) to deliver to, each once. */
  readonly cards: readonly string[];
  /**
   * Group k gets payloads msgs[offs[k]] .. msgs[offs[k+1] - 1], in push order
   * (offs has cards.length + 1 entries). Grouped so that a connection getting
   * several payloads from one batch gets them in one corked write.
   */
  readonly offs: Uint32Array;
  readonly msgs: Uint32Array;
}

/**
 * Sent by a shard to a group's owner: the sender's number of local members of
 * each listed group (absolute, so order and repeats don't matter; 0 = none).
 */
export interface MembersUpdate {
  readonly t: typeof F_MEMBERS;
  readonly cards: readonly string[];
  readonly counts: readonly number[];
}

/** A processor task had nothing for this shard: lets the shard move past `seq`. */
export interface SkipFrame {
  readonly t: typeof F_SKIP;
  readonly seq: number;
}

/**
 * Shard -> processor: the DeliverBatch with this seq was delivered. A task
 * ends only when every shard it sent to has acknowledged, so the queue (not
 * the shards' port queues) holds the backlog when shards fall behind.
 */
export interface AckFrame {
  readonly t: typeof F_ACK;
  readonly seq: number;
}

export type PeerFrame = DeliverBatch | MembersUpdate | SkipFrame;

/** What the main thread hands a shard at start (workerData). */
export interface ShardInit {
  readonly index: number;
  readonly shards: number;
  readonly host: string;
  readonly wsPort: number;
  readonly maxPayload: number;
  readonly idleTimeout: number;
  readonly maxBackpressure: number;
  readonly maxIdLength: number;
  readonly logLevel: import('./log').LogLevel;
  /** Sequence number of the next processor task (where this shard starts delivering in order). */
  readonly firstSeq: number;
}

export type ShardQuery =
  | { readonly q: 'stats' }
  | { readonly q: 'online'; readonly card: string }
  | { readonly q: 'group'; readonly card: string };

export interface ShardStats {
  readonly clients: number;
  /** Groups this shard owns (whole-process group count = sum over shards). */
  readonly groups: number;
  /** Groups with members on this shard. */
  readonly localGroups: number;
  readonly delivered: number;
  readonly undelivered: number;
  readonly dropped: number;
}

export type MainToShard =
  | { readonly t: 'attach'; readonly kind: 'shard' | 'processor'; readonly peer: number; readonly port: MessagePort }
  | { readonly t: 'peer-reset'; readonly peer: number }
  | ({ readonly t: 'query'; readonly id: number } & ShardQuery)
  | { readonly t: 'shutdown' }
  | { readonly t: 'crash' };

export type ShardToMain =
  | { readonly t: 'ready' }
  | { readonly t: 'listen-failed' }
  | { readonly t: 'reply'; readonly id: number; readonly value: ShardStats | boolean | number }
  | { readonly t: 'fatal'; readonly message: string };

/** Main thread -> processor, over the control port the processor sent at start. */
export type MainToProcessor = {
  readonly t: 'shard-port';
  readonly shard: number;
  readonly port: MessagePort;
};

/** Processor -> main at start, through Piscina's 'message' event. */
export interface ProcessorHello {
  readonly t: 'processor-hello';
  readonly control: MessagePort;
}

/** What the processor needs to know, from Piscina's workerData. */
export interface ProcessorInit {
  readonly shards: number;
  readonly logLevel: import('./log').LogLevel;
}

/** A batch of queue message bodies (encoded PushRequest), packed like DeliverBatch. */
export interface ProcessTask {
  /** Dispatch order: shards deliver tasks' frames in this order. */
  readonly seq: number;
  readonly buf: ArrayBuffer;
  readonly ends: Uint32Array;
}

export interface ProcessResult {
  /** Indexes (into the task) of bodies that could not be decoded. */
  readonly bad: number[];
  /** Deliveries routed (one per card_id of each good message). */
  readonly routed: number;
}
