// The embedded queue: an in-process bounded FIFO with the NSQ driver's
// semantics minus durability. Full means publish() rejects with
// PUSH_ERR_QUEUE_FULL (the gateway answers 503). The main thread consumes it
// (src/processors.ts hands its batches to the processor threads).

import { PushError } from '../../shared/errors';
import { IdleWaiter } from '../../shared/lifecycle';
import { onceATurn } from '../../shared/once-a-turn';
import type { BatchHandler, ConsumedBatch, Queue, QueueStats } from './queue';

export interface MemoryQueueOptions {
  /** Most messages held (waiting + in flight). */
  readonly capacity: number;
  /** Most body bytes held (waiting + in flight). */
  readonly capacityBytes: number;
  /** Most messages handed out and not yet settled. */
  readonly maxInFlight: number;
  /** Most messages per batch. */
  readonly batchSize: number;
  /** Stamp 1 push in this many with its accept time, for the latency histogram (0 = none). */
  readonly latencySample: number;
}

interface Item {
  body: Uint8Array;
  attempts: number;
  /** Accept time (epoch ms) of a sampled push, else 0. */
  at: number;
}

export class MemoryQueue implements Queue {
  // A growable ring would save the shift cost; an array with a moving head and
  // periodic compaction does the same with less code.
  private items: Item[] = [];
  private head = 0;
  private inFlight = 0;
  /** Body bytes held, waiting and in flight. */
  private bytes = 0;
  private onBatch: BatchHandler | null = null;
  private closed = false;
  private accepted = 0;
  /** Pushes until the next sampled one. */
  private sampleIn: number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly handOutSoon = onceATurn(() => this.handOut());
  private readonly idle = new IdleWaiter(() => this.waiting === 0 && this.inFlight === 0);

  constructor(private readonly opts: MemoryQueueOptions) {
    this.sampleIn = opts.latencySample;
  }

  async start(): Promise<void> {}

  /** Starts handing batches to `onBatch`. */
  consume(onBatch: BatchHandler): void {
    this.onBatch = onBatch;
    this.handOutSoon();
  }

  private get waiting(): number {
    return this.items.length - this.head;
  }

  admit(): PushError | null {
    return this.refusal(1, 0);
  }

  neverFits(count: number, bytes: number): string | null {
    const { capacity, capacityBytes } = this.opts;
    if (count > capacity) return `${count} pushes are more than the embedded queue ever holds (queue.capacity = ${capacity})`;
    if (bytes > capacityBytes) return `${bytes} bytes of pushes are more than the embedded queue ever holds (queue.capacity_bytes = ${capacityBytes})`;
    return null;
  }

  private refusal(n: number, bytes: number): PushError | null {
    if (this.closed) return new PushError('PUSH_ERR_SHUTTING_DOWN');
    if (this.waiting + this.inFlight + n > this.opts.capacity) {
      return new PushError('PUSH_ERR_QUEUE_FULL', `the embedded queue holds ${this.opts.capacity} messages (queue.capacity) and is full; retry later`);
    }
    if (this.bytes + bytes > this.opts.capacityBytes) {
      return new PushError('PUSH_ERR_QUEUE_FULL', `the embedded queue holds ${this.opts.capacityBytes} bytes (queue.capacity_bytes) and is full; retry later`);
    }
    return null;
  }

  publish(bodies: readonly Uint8Array[]): Promise<void> {
    let bytes = 0;
    for (let i = 0; i < bodies.length; i++) bytes += bodies[i]!.byteLength;
    const refusal = this.refusal(bodies.length, bytes);
    if (refusal !== null) return Promise.reject(refusal);
    this.bytes += bytes;
    for (let i = 0; i < bodies.length; i++) {
      let at = 0;
      if (--this.sampleIn === 0) {
        this.sampleIn = this.opts.latencySample;
        at = performance.timeOrigin + performance.now();
      }
      this.items.push({ body: bodies[i]!, attempts: 0, at });
    }
    this.accepted += bodies.length;
    this.handOutSoon();
    return Promise.resolve();
  }

  /** Hands out batches while there is room in flight. */
  private handOut(): void {
    const onBatch = this.onBatch;
    if (onBatch === null || this.closed) return;
    while (this.waiting > 0 && this.inFlight < this.opts.maxInFlight) {
      const n = Math.min(this.waiting, this.opts.batchSize, this.opts.maxInFlight - this.inFlight);
      const taken = this.items.slice(this.head, this.head + n);
      this.head += n;
      if (this.head > 4096 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      this.inFlight += n;
      onBatch(new MemoryBatch(this, taken));
    }
  }

  settle(taken: Item[], requeue: boolean, delayMs: number): void {
    this.inFlight -= taken.length;
    if (!requeue || this.closed) for (let i = 0; i < taken.length; i++) this.bytes -= taken[i]!.body.byteLength;
    if (requeue && !this.closed) {
      for (const it of taken) it.attempts++;
      // Still counted against capacity while waiting for the retry.
      this.inFlight += taken.length;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.inFlight -= taken.length;
        for (const it of taken) this.items.push(it);
        this.handOutSoon();
      }, delayMs);
      this.timers.add(timer);
    }
    this.handOutSoon();
    this.idle.poke();
  }

  /** Resolves true once everything accepted was delivered, false when `timeoutMs` passed first. */
  drained(timeoutMs: number): Promise<boolean> {
    return this.idle.wait(timeoutMs);
  }

  stats(): QueueStats {
    return { driver: 'memory', depth: this.waiting, inFlight: this.inFlight, connected: !this.closed, accepted: this.accepted };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

class MemoryBatch implements ConsumedBatch {
  readonly bodies: Uint8Array[];
  readonly attempts: number[];
  readonly samples: number[] = [];
  private settled = false;

  constructor(private readonly queue: MemoryQueue, private readonly taken: Item[]) {
    const n = taken.length;
    this.bodies = new Array<Uint8Array>(n);
    this.attempts = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const it = taken[i]!;
      this.bodies[i] = it.body;
      this.attempts[i] = it.attempts;
      if (it.at !== 0) this.samples.push(i, it.at);
    }
  }

  settle(requeue: boolean, delayMs: number): void {
    if (this.settled) return;
    this.settled = true;
    this.queue.settle(this.taken, requeue, delayMs);
  }
}
