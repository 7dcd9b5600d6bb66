// Every message that crosses a thread boundary, typed in one place.
//
//   main  <-> shard      worker.postMessage / parentPort      (MainToShard, ShardToMain)
//   proc  <-> shard      a MessagePort per (processor, shard)  (DeliverBatch, SkipFrame, ReplayEnd / AckFrame)
//   shard <-> shard      a MessagePort per pair of shards     (ForwardBatch, MembersUpdate / their acks)
//   main  <-> processor  Piscina tasks (ProcessTask -> ProcessResult) and one
//                        control port per processor            (MainToProcessor / ProcessorToMain)
//
// Delivery is acknowledged end to end: a shard acknowledges a processor's
// DeliverBatch once it wrote to its own members AND the shards it forwarded to
// acknowledged theirs; a processor task ends (FIN, or the embedded queue
// settles it) only when every shard it sent a batch to acknowledged it.

import type { MessagePort } from 'node:worker_threads';
import type { LogFormat, LogLevel } from './log';
import type { JoinAuth } from './join-token';

/** Tags of the hot-path frames between workers (numbers: cheap to compare). */
export const F_DELIVER = 1;
export const F_SKIP = 2;
export const F_ACK = 3;
export const F_REPLAY_END = 4;
export const F_FORWARD = 5;
export const F_FORWARD_ACK = 6;
export const F_MEMBERS = 7;
export const F_MEMBERS_ACK = 8;

/**
 * Payloads for a set of groups. Payloads are rendered once (the exact bytes
 * of the WebSocket text frame) and packed back to back in `buf`.
 */
export interface Payloads {
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
  /**
   * The sampled pushes among the payloads, for the latency histogram (1 in
   * metrics.latency_sample): pairs of payload index and accept time (epoch
   * ms, fractional), or null when the batch has none.
   */
  readonly samples: Float64Array | null;
}

/** Processor -> owner shard: the task's deliveries to groups this shard owns. */
export interface DeliverBatch extends Payloads {
  readonly t: typeof F_DELIVER;
  /** Task sequence number: shards deliver tasks in this order (workers/shard/sequencer.ts). */
  readonly seq: number;
  /**
   * Broadcasts: payload indexes, in push order, each for every joined
   * connection of this shard with app_id apps[m] ('' = every one). Every
   * shard gets them, not only owners. Null when the task has none.
   */
  readonly bcast: Uint32Array | null;
}

/**
 * The recovery positions an owner gave a batch's deliveries
 * (workers/shard/history.ts), so that every member, on any shard, gets the
 * same offset for the same push.
 */
export interface Positions {
  /** Per card: offset of its first delivery in the batch (its next ones count up by one); 0 = the card keeps no history. */
  readonly first: Float64Array;
  /** Per card: its history's epoch ('' where first is 0). */
  readonly epochs: readonly string[];
}

/** Processor -> shard: task `seq` has nothing for this shard (lets it move past `seq`). */
export interface SkipFrame {
  readonly t: typeof F_SKIP;
  readonly seq: number;
}

/** Shard -> processor: the DeliverBatch of task `seq` was delivered, forwards included. */
export interface AckFrame {
  readonly t: typeof F_ACK;
  readonly seq: number;
}

/**
 * Processor -> a shard it was just attached to: every frame it re-sent (tasks
 * the shard's previous incarnation never acknowledged, and skips the new one
 * needs to move on) has been sent. A restarted shard delivers nothing until
 * every processor it expects said this (see ShardInit.processors).
 */
export interface ReplayEnd {
  readonly t: typeof F_REPLAY_END;
}

/** Owner shard -> a shard holding other members of the groups: deliver to your members. */
export interface ForwardBatch extends Payloads {
  readonly t: typeof F_FORWARD;
  /** Answered with a ForwardAck carrying the same id. */
  readonly id: number;
  /** Offsets and epochs of the forwarded groups that keep a history (null: none does). */
  readonly pos: Positions | null;
}

export interface ForwardAck {
  readonly t: typeof F_FORWARD_ACK;
  readonly id: number;
}

/**
 * Member shard -> owner shard: the sender's number of local members of each
 * listed group (absolute, so order and repeats don't matter; 0 = none).
 * `sync` marks the full list a shard sends an owner that was just attached:
 * a restarted owner delivers nothing until every peer it expects has synced.
 */
export interface MembersUpdate {
  readonly t: typeof F_MEMBERS;
  /** Answered with a MembersAck carrying the same id once applied. */
  readonly id: number;
  readonly sync: boolean;
  readonly cards: readonly string[];
  readonly counts: readonly number[];
  /** Per card: 1 when some of those members joined with recovery (the owner then keeps the card's history). */
  readonly recover: readonly number[];
  /** Joins asking for their recovery position (and missed pushes); answered in MembersAck.seams, in this order. */
  readonly seams: readonly SeamRequest[];
}

export interface MembersAck {
  readonly t: typeof F_MEMBERS_ACK;
  readonly id: number;
  readonly seams: readonly SeamReply[];
}

/** A join with recovery, for the card's owner: where the connection stands. */
export interface SeamRequest {
  readonly card: string;
  /** The connection's app_id: missed pushes for other apps are left out. */
  readonly app: string;
  /** The last offset the client has (join's since.offset); -1 = none. */
  readonly since: number;
  readonly epoch: string;
}

/**
 * The owner's answer, given atomically with registering the member: every
 * push to the card up to `offset` is in `payloads` or was before `since`,
 * and every later one reaches the member live.
 */
export interface SeamReply {
  /** True when every push after `since` is in `payloads` (the epoch matched and none was dropped from the history). */
  readonly recovered: boolean;
  /** The card's newest offset now (-1: unknown, the owner was restarting). */
  readonly offset: number;
  readonly epoch: string;
  /** Missed push frames ({"type":1,"data":…} as rendered) and their offsets; empty unless recovered. */
  readonly payloads: readonly string[];
  readonly offsets: readonly number[];
}

export type ProcessorFrame = DeliverBatch | SkipFrame | ReplayEnd;
export type PeerFrame = ForwardBatch | ForwardAck | MembersUpdate | MembersAck;

/** What the main thread hands a shard at start (workerData). */
/** What a shard admits (workers/shard/admission.ts) and how fast a connection may join. */
export interface ShardLimits {
  readonly maxConnections: number;
  /** 0 = addresses are not counted. */
  readonly maxPerAddress: number;
  readonly allowedOrigins: readonly string[];
  readonly trustedProxies: readonly string[];
  /** Joins per connection per second; 0 = no limit. */
  readonly joinRate: number;
}

export interface ShardInit {
  readonly index: number;
  readonly shards: number;
  readonly host: string;
  readonly wsPort: number;
  readonly maxPayload: number;
  readonly idleTimeout: number;
  readonly maxBackpressure: number;
  readonly maxIdLength: number;
  readonly logLevel: LogLevel;
  /** Connection counts of every shard, by address (shared/conn-counters.ts). */
  readonly connCounters: SharedArrayBuffer;
  readonly limits: ShardLimits;
  /** null: joins are not signed. */
  readonly joinAuth: JoinAuth | null;
  /** null: plain ws://. File names: uWS reads them. */
  readonly tls: { readonly cert: string; readonly key: string } | null;
  readonly logFormat: LogFormat;
  /** This shard's counters (shared/counters.ts); the same buffer across restarts. */
  readonly counters: SharedArrayBuffer;
  /** Sequence number of the first task this shard delivers in order. */
  readonly firstSeq: number;
  /** Processor slots attached at spawn: each re-sends what this shard needs, then ReplayEnd. */
  readonly processors: readonly number[];
  /** Peer shards alive at spawn: each sends its members of the groups this shard owns (sync). */
  readonly peers: readonly number[];
  /** Task numbers from firstSeq on already declared gaps (see MainToShard 'gap'). */
  readonly gaps: readonly number[];
  /** [history] settings (workers/shard/history.ts). */
  readonly history: HistoryLimits;
}

export interface HistoryLimits {
  /** Pushes kept per card. */
  readonly size: number;
  readonly ttlMs: number;
  /** Kept payload text per shard, in characters. */
  readonly maxBytes: number;
}

/** Questions the main thread asks a shard, and the type of each answer. */
export interface ShardQueries {
  online: { q: 'online'; card: string; a: boolean };
  group: { q: 'group'; card: string; a: number };
}

export type ShardQueryKind = keyof ShardQueries;
/** Distributes over K, so a union of kinds is a union of query shapes. */
export type ShardQuery<K extends ShardQueryKind = ShardQueryKind> = K extends ShardQueryKind ? Omit<ShardQueries[K], 'a'> : never;
export type ShardAnswer<K extends ShardQueryKind> = ShardQueries[K]['a'];

export type MainToShard =
  | { readonly t: 'attach'; readonly kind: 'shard' | 'processor'; readonly peer: number; readonly port: MessagePort }
  | { readonly t: 'peer-reset'; readonly peer: number }
  /** These tasks failed in a processor or lost it: nothing more will come for them. */
  | { readonly t: 'gap'; readonly seqs: readonly number[] }
  | ({ readonly t: 'query'; readonly id: number } & ShardQuery)
  | { readonly t: 'shutdown' }
  | { readonly t: 'crash' };

export type ShardToMain =
  | { readonly t: 'ready' }
  | { readonly t: 'listen-failed' }
  | { readonly t: 'reply'; readonly id: number; readonly value: ShardAnswer<ShardQueryKind> }
  | { readonly t: 'fatal'; readonly message: string };

/** The NSQ consumer settings a processor's Reader needs (queue.driver = nsq). */
export interface ConsumeOptions {
  readonly topic: string;
  readonly channel: string;
  readonly nsqdTcp: readonly string[];
  readonly lookupdHttp: readonly string[];
  /** This thread's share of queue.max_in_flight. */
  readonly maxInFlight: number;
  /** Milliseconds nsqd may buffer messages before writing them (IDENTIFY output_buffer_timeout); -1 = unbuffered. */
  readonly outputBufferTimeout: number;
}

/** Main thread -> processor, over the control port the processor sent at start. */
export type MainToProcessor =
  | { readonly t: 'slot'; readonly slot: number }
  /** A port to `shard`; `firstSeq` is where a (re)started shard starts delivering in order. */
  | { readonly t: 'shard-port'; readonly shard: number; readonly port: MessagePort; readonly firstSeq: number }
  | { readonly t: 'consume'; readonly options: ConsumeOptions }
  /** Stop taking messages; answer 'stopped' once every batch in hand was settled (or the deadline passed). */
  | { readonly t: 'stop'; readonly deadline: number }
  /** Debug hook (debug.crash_route): a real uncaught exception in this thread. */
  | { readonly t: 'crash' };

export type ProcessorToMain = { readonly t: 'stopped'; readonly unsettled: number };

/** Processor -> main at start, through Piscina's 'message' event. */
export interface ProcessorHello {
  readonly t: 'processor-hello';
  readonly control: MessagePort;
}

/** What the processor needs to know, from Piscina's workerData. */
export interface ProcessorInit {
  readonly shards: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly seqBuffer: SharedArrayBuffer;
  /** Counter regions, one per slot (shared/counters.ts); a thread writes the region of its slot. */
  readonly counters: SharedArrayBuffer;
  /** NSQ: sample the latency of 1 message in this many (metrics.latency_sample; 0 = none). */
  readonly latencySample: number;
  readonly batchSize: number;
  /** How long a task waits for a shard that is restarting before it fails (and its messages are retried). */
  readonly shardWaitMs: number;
}

/** A batch of queue message bodies (encoded PushRequest), packed like Payloads. */
export interface ProcessTask {
  /** Dispatch order: shards deliver tasks' frames in this order. */
  readonly seq: number;
  readonly buf: ArrayBuffer;
  readonly ends: Uint32Array;
  /** Sampled messages: pairs of message index and accept time (epoch ms), or null. */
  readonly samples: Float64Array | null;
}
