// The queue between the push API and the processors. Two drivers implement it:
// `memory` (in-process, bounded, the default) and `nsq` (nsqjs + nsqd).
//
// Semantics every driver keeps:
// - publish() resolves only once the queue accepted every body (for NSQ: nsqd
//   acknowledged the PUB/MPUB); it rejects with a PushError
//   (PUSH_ERR_QUEUE_FULL, PUSH_ERR_QUEUE_UNAVAILABLE) otherwise.
// - The consumer gets batches; each message is settled exactly once: finished,
//   or requeued with a delay (redelivered later, at least once).

import type { PushError } from '../errors';

export interface ConsumedBatch {
  /** Encoded PushRequest bodies. Valid until settle(). */
  readonly bodies: readonly Uint8Array[];
  /** How many times each message was delivered before (0 = first time). */
  readonly attempts: readonly number[];
  /** Finishes every message except those listed in `requeue`, which come back after `delayMs`. */
  settle(requeue: readonly number[], delayMs: number): void;
}

export type BatchHandler = (batch: ConsumedBatch) => void;

export interface QueueStats {
  readonly driver: string;
  /** Messages waiting in the queue (memory: exact; nsq: unknown, -1). */
  readonly depth: number;
  readonly inFlight: number;
  readonly connected: boolean;
}

export interface Queue {
  /** Connects (nsq) and starts consuming into `onBatch`. Rejects only on unusable configuration. */
  start(onBatch: BatchHandler): Promise<void>;
  publish(bodies: readonly Uint8Array[]): Promise<void>;
  /**
   * The error publish() would fail with right now (full, nsqd unreachable,
   * closing), or null. Lets a caller refuse before parsing and encoding a
   * request it can't queue: under overload that work would starve the rest.
   */
  admit(): PushError | null;
  /** Stops taking new messages; in-flight ones may still be settled. */
  pause(): void;
  resume(): void;
  stats(): QueueStats;
  /** Stops consuming and publishing; safe to call twice. */
  close(): Promise<void>;
}
