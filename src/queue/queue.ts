// The queue between the push API and the processors. Two drivers implement it:
// `memory` (in-process, bounded, the default; the main thread consumes it and
// hands batches to the processor threads) and `nsq` (nsqd; this side only
// publishes, the processor threads consume, see workers/processor/nsq-consumer.ts).
//
// Semantics every driver keeps:
// - publish() resolves only once the queue accepted every body (for NSQ: nsqd
//   acknowledged the MPUB); it rejects with a PushError
//   (PUSH_ERR_QUEUE_FULL, PUSH_ERR_QUEUE_UNAVAILABLE) otherwise.
// - Each consumed message is settled exactly once: finished once delivered,
//   or requeued with a delay (redelivered later: at least once).

import type { PushError } from '../../shared/errors';

/** A batch the embedded queue handed out. */
export interface ConsumedBatch {
  /** Encoded PushRequest bodies. Valid until settle(). */
  readonly bodies: readonly Uint8Array[];
  /** How many times each message was delivered before (0 = first time). */
  readonly attempts: readonly number[];
  /** Messages sampled for the latency histogram: pairs of index in `bodies` and accept time (epoch ms); empty when none. */
  readonly samples: readonly number[];
  /** Finishes every message, or requeues them all to come back after `delayMs`. */
  settle(requeue: boolean, delayMs: number): void;
}

export type BatchHandler = (batch: ConsumedBatch) => void;

export interface QueueStats {
  readonly driver: string;
  /** Messages waiting in the queue (memory: exact; nsq: unknown, -1). */
  readonly depth: number;
  /** Messages handed to the processors and not settled (nsq: filled in from the processors). */
  readonly inFlight: number;
  readonly connected: boolean;
  /** Pushes the queue accepted since start (nsq: that nsqd acknowledged). */
  readonly accepted: number;
}

export interface Queue {
  /** Connects (nsq; an unreachable nsqd is retried in the background). */
  start(): Promise<void>;
  publish(bodies: readonly Uint8Array[]): Promise<void>;
  /**
   * The error publish() would fail with right now (full, nsqd unreachable,
   * closing), or null. Lets a caller refuse before parsing and encoding a
   * request it can't queue: under overload that work would starve the rest.
   */
  admit(): PushError | null;
  /**
   * Why a batch of `count` bodies of `bytes` bytes in all could never be
   * queued however long the caller waited (larger than the queue itself), or
   * null. `bytes` 0: not known yet.
   */
  neverFits(count: number, bytes: number): string | null;
  stats(): QueueStats;
  /** Stops publishing (and, for memory, consuming); safe to call twice. */
  close(): Promise<void>;
}
