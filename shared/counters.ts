// Counters and gauges that the shard and processor threads write and the main
// thread reads (GET /stats, /metrics, /readyz, /system), in SharedArrayBuffers
// the main thread owns. prom-client registries live per thread, and asking a
// busy thread for its numbers costs a round trip it may answer late; here a
// read is a memory load, and the numbers outlive the thread: a shard or
// processor that restarts gets the same buffer and counts on from there, so
// Prometheus sees no counter reset.
//
// Each buffer has one writer thread (a shard; a processor thread or the main
// thread for a processor region): plain Float64Array stores, no Atomics.
// Float64 counts exactly up to 2^53 and an aligned 8-byte load does not tear
// on the platforms Node runs on; a reader may see a value a moment old.

import { WsErrors, type ApiErrorCode, type WsErrorCode } from './errors';

/** A histogram inside a counter array: one slot per bucket (le bounds, then +Inf), then the sum and the count. */
export class HistogramSlots {
  readonly size: number;

  constructor(readonly at: number, readonly bounds: readonly number[]) {
    this.size = bounds.length + 3;
  }

  observe(a: Float64Array, value: number): void {
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    a[this.at + i]!++;
    a[this.at + bounds.length + 1]! += value;
    a[this.at + bounds.length + 2]!++;
  }

  /** Adds this histogram of `a` into `into` (bucket counts not cumulative, then sum, count). */
  addTo(a: Float64Array, into: number[]): void {
    for (let i = 0; i < this.size; i++) into[i] = (into[i] ?? 0) + a[this.at + i]!;
  }
}

/** Push latency buckets, seconds: from accepted to written to the socket. */
export const LATENCY_BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Messages per processor batch. */
export const BATCH_BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

export const WS_CODES = Object.keys(WsErrors) as WsErrorCode[];
/** Why a shard answers a WebSocket upgrade with an HTTP error instead (workers/shard/admission.ts). */
export const UPGRADE_CODES = ['PUSH_ERR_ORIGIN_DENIED', 'PUSH_ERR_TOO_MANY_CONNECTIONS', 'PUSH_ERR_ADDRESS_LIMIT'] as const satisfies readonly ApiErrorCode[];
export type UpgradeRefusal = (typeof UPGRADE_CODES)[number];

// ---- one shard's buffer ----------------------------------------------------

/** Gauges (the main thread zeroes them when the shard's thread ends). */
export const S_CLIENTS = 0;
/** Groups this shard owns that have a member anywhere. */
export const S_GROUPS = 1;
/** Groups with members on this shard. */
export const S_LOCAL_GROUPS = 2;
/** Epoch ms of the shard's last heartbeat (once a second): a stalled event loop stops it. */
export const S_HEARTBEAT = 3;
/** Counters. */
export const S_JOINS = 4;
/** Frames written to a socket (or queued in its backpressure buffer). */
export const S_DELIVERED = 5;
/** Deliveries to groups that had no member anywhere (as gopusher: dropped). */
export const S_UNDELIVERED = 6;
/** Frames refused because a socket was over max_backpressure. */
export const S_DROPPED = 7;
/** Connections closed for reading too slowly (over max_backpressure). */
export const S_SLOW_CLOSED = 8;
/** Gauges: cards this shard keeps a recovery history for, and the characters of their kept push frames (workers/shard/history.ts). */
export const S_HISTORY_CARDS = 9;
export const S_HISTORY_BYTES = 10;
/** One counter per WsErrors code, in WS_CODES order. */
export const S_WS_ERRORS = 11;
/** One counter per UPGRADE_CODES code: upgrades refused. */
export const S_UPGRADES_REFUSED = S_WS_ERRORS + WS_CODES.length;
export const S_LATENCY = new HistogramSlots(S_UPGRADES_REFUSED + UPGRADE_CODES.length, LATENCY_BOUNDS);
const SHARD_SIZE = S_LATENCY.at + S_LATENCY.size;
export const SHARD_GAUGES = [S_CLIENTS, S_GROUPS, S_LOCAL_GROUPS, S_HISTORY_CARDS, S_HISTORY_BYTES];

export function shardCounters(buffer: SharedArrayBuffer = new SharedArrayBuffer(SHARD_SIZE * 8)): Float64Array {
  return new Float64Array(buffer, 0, SHARD_SIZE);
}

export function wsErrorSlot(code: WsErrorCode): number {
  return S_WS_ERRORS + WS_CODES.indexOf(code);
}

/** What GET /stats reports per shard. */
export interface ShardStats {
  readonly clients: number;
  /** Groups this shard owns (whole-process group count = sum over shards). */
  readonly groups: number;
  /** Groups with members on this shard. */
  readonly localGroups: number;
  readonly joins: number;
  readonly delivered: number;
  readonly undelivered: number;
  readonly dropped: number;
  readonly slowClosed: number;
  readonly historyCards: number;
  readonly historyBytes: number;
}

export function shardStats(a: Float64Array): ShardStats {
  return {
    clients: a[S_CLIENTS]!, groups: a[S_GROUPS]!, localGroups: a[S_LOCAL_GROUPS]!, joins: a[S_JOINS]!,
    delivered: a[S_DELIVERED]!, undelivered: a[S_UNDELIVERED]!, dropped: a[S_DROPPED]!, slowClosed: a[S_SLOW_CLOSED]!,
    historyCards: a[S_HISTORY_CARDS]!, historyBytes: a[S_HISTORY_BYTES]!,
  };
}

// ---- processor regions -------------------------------------------------------
// One buffer, one region per processor slot (a thread that replaces a dead one
// takes a free slot) plus one for the main thread, which forms the batches of
// the embedded queue.

/** Gauges (zeroed by the main thread when the slot's thread ends). Messages received from nsqd and not finished. */
export const P_IN_FLIGHT = 0;
/** 1 while this thread's Reader has an nsqd connection. */
export const P_CONNECTED = 1;
/** Counters. */
export const P_BATCHES = 2;
export const P_MESSAGES = 3;
/** Deliveries routed to owner shards (one per card_id of each good message). */
export const P_ROUTED = 4;
/** Bodies that were not a PushRequest: finished, never retried. */
export const P_UNDECODABLE = 5;
/** Messages whose batch failed and went back to the queue. */
export const P_REQUEUED = 6;
export const P_BATCH_SIZE = new HistogramSlots(7, BATCH_BOUNDS);
export const PROCESSOR_SIZE = P_BATCH_SIZE.at + P_BATCH_SIZE.size;

export function processorBuffer(regions: number): SharedArrayBuffer {
  return new SharedArrayBuffer(regions * PROCESSOR_SIZE * 8);
}

export function processorRegion(buffer: SharedArrayBuffer, region: number): Float64Array {
  return new Float64Array(buffer, region * PROCESSOR_SIZE * 8, PROCESSOR_SIZE);
}
