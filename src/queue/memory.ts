// The embedded queue: an in-process bounded FIFO with the same interface and
// semantics as the NSQ driver, minus durability. Full means publish() rejects
// with PUSH_ERR_QUEUE_FULL (the gateway answers 503).

import { PushError } from '../errors';
import type { BatchHandler, ConsumedBatch, Queue, QueueStats } from './queue';

export interface MemoryQueueOptions {
  /** Most messages held (waiting + in flight). */
  readonly capacity: number;
  /** Most messages handed out and not yet settled. */
  readonly maxInFlight: number;
  /** Most messages per batch. */
  readonly batchSize: number;
}

interface Item {
  body: Uint8Array;
  attempts: number;
}

export class MemoryQueue implements Queue {
  // A growable ring would save the shift cost; an array with a moving head and
  // periodic compaction does the same with less code.
  private items: Item[] = [];
  private head = 0;
  private inFlight = 0;
  private onBatch: BatchHandler | null = null;
  private paused = false;
  private closed = false;
  private scheduled = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: MemoryQueueOptions) {}

  async start(onBatch: BatchHandler): Promise<void> {
    this.onBatch = onBatch;
    this.schedule();
  }

  private get waiting(): number {
    return this.items.length - this.head;
  }

  admit(): PushError | null {
    return this.refusal(1);
  }

  private refusal(n: number): PushError | null {
    if (this.closed) return new PushError('PUSH_ERR_SHUTTING_DOWN');
    if (this.waiting + this.inFlight + n > this.opts.capacity) {
      return new PushError('PUSH_ERR_QUEUE_FULL', `the embedded queue holds ${this.opts.capacity} messages (queue.capacity) and is full; retry later`);
    }
    return null;
  }

  publish(bodies: readonly Uint8Array[]): Promise<void> {
    const refusal = this.refusal(bodies.length);
    if (refusal !== null) return Promise.reject(refusal);
    for (let i = 0; i < bodies.length; i++) this.items.push({ body: bodies[i]!, attempts: 0 });
    this.schedule();
    return Promise.resolve();
  }

  private schedule(): void {
    if (this.scheduled || this.onBatch === null) return;
    this.scheduled = true;
    setImmediate(drain, this);
  }

  /** Hands out batches while there is room in flight. */
  drain(): void {
    this.scheduled = false;
    const onBatch = this.onBatch;
    if (onBatch === null || this.paused || this.closed) return;
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

  settle(taken: Item[], requeue: readonly number[], delayMs: number): void {
    this.inFlight -= taken.length;
    if (requeue.length > 0 && !this.closed) {
      const again = requeue.map((i) => {
        const it = taken[i]!;
        it.attempts++;
        return it;
      });
      // Still counted against capacity while waiting for the retry.
      this.inFlight += again.length;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.inFlight -= again.length;
        for (const it of again) this.items.push(it);
        this.schedule();
      }, delayMs);
      this.timers.add(timer);
    }
    this.schedule();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.schedule();
  }

  stats(): QueueStats {
    return { driver: 'memory', depth: this.waiting, inFlight: this.inFlight, connected: !this.closed };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

function drain(q: MemoryQueue): void {
  q.drain();
}

class MemoryBatch implements ConsumedBatch {
  readonly bodies: Uint8Array[];
  readonly attempts: number[];
  private settled = false;

  constructor(private readonly queue: MemoryQueue, private readonly taken: Item[]) {
    this.bodies = taken.map((it) => it.body);
    this.attempts = taken.map((it) => it.attempts);
  }

  settle(requeue: readonly number[], delayMs: number): void {
    if (this.settled) return;
    this.settled = true;
    this.queue.settle(this.taken, requeue, delayMs);
  }
}
