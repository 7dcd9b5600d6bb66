// The Piscina pool of processor threads, and the consumer loop that feeds it:
// queue batches in, settle (FIN / REQ) out. Processors send their frames to the
// shards directly; only the task result comes back here.

import { join } from 'node:path';
import { Piscina } from 'piscina';
import type { Config } from './config';
import type { Logger } from './shared/log';
import type { ProcessorHello, ProcessorInit, ProcessResult, ProcessTask } from './shared/frames';
import type { ConsumedBatch } from './queue/queue';
import type { Supervisor } from './supervisor';

/** Retry delay of a failed batch: grows with attempts, capped. */
function backoff(attempts: number): number {
  return Math.min(100 * 2 ** attempts, 30_000);
}

export interface ProcessorCounters {
  batches: number;
  messages: number;
  routed: number;
  /** Bodies that were not a PushRequest: finished, never retried. */
  undecodable: number;
  /** Batches whose task failed and were requeued. */
  requeued: number;
}

export class Processors {
  readonly counters: ProcessorCounters = { batches: 0, messages: 0, routed: 0, undecodable: 0, requeued: 0 };
  private readonly pool: Piscina;
  private readonly threads: number;
  private readonly batchSize: number;
  /**
   * Tasks in flight at most: two per thread, so each thread has its next task
   * queued while the shards deliver its last one (a task ends when the shards
   * acknowledged delivery). Everything else waits here and is merged into the
   * next task, so batches grow with load: the fixed cost of a task (~55 µs of
   * main-thread time with Piscina, measured) is paid per batch, not per push,
   * and a backlog stays in the queue (bounded, or in nsqd), not in port queues.
   */
  private readonly maxTasks: number;
  private readonly waiting: ConsumedBatch[] = [];
  private running = 0;
  private idle: (() => void)[] = [];

  constructor(config: Config, private readonly supervisor: Supervisor, private readonly log: Logger) {
    this.threads = config.processor.threads;
    this.batchSize = config.processor.batchSize;
    this.maxTasks = this.threads * 2;
    const init: ProcessorInit = { shards: config.server.shards, logLevel: config.log.level };
    this.pool = new Piscina({
      filename: join(__dirname, '..', 'workers', 'processor.js'),
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: Infinity,
      // Processors must receive shard ports while idle: 'sync' would block
      // them in Atomics.wait and their port listeners would never run.
      atomics: 'disabled',
      workerData: init,
    });
    this.pool.on('message', (msg: ProcessorHello) => {
      if (msg !== null && typeof msg === 'object' && msg.t === 'processor-hello') supervisor.addProcessor(msg.control);
    });
    this.pool.on('error', (err: Error) => this.log.error('processor thread failed', { error: err.message }));
  }

  get size(): number {
    return this.threads;
  }

  /** Queue consumer. */
  readonly onBatch = (batch: ConsumedBatch): void => {
    this.waiting.push(batch);
    if (this.running < this.maxTasks) this.runNext();
  };

  /** Packs waiting batches (up to processor.batch_size messages) into one transferred buffer and runs it. */
  private runNext(): void {
    let n = 0;
    let messages = 0;
    while (n < this.waiting.length && (messages === 0 || messages + this.waiting[n]!.bodies.length <= this.batchSize)) {
      messages += this.waiting[n]!.bodies.length;
      n++;
    }
    const batches = this.waiting.splice(0, n);
    const ends = new Uint32Array(messages);
    let size = 0;
    let i = 0;
    for (const b of batches) {
      for (const body of b.bodies) {
        size += body.byteLength;
        ends[i++] = size;
      }
    }
    const bytes = new Uint8Array(size);
    let off = 0;
    for (const b of batches) {
      for (const body of b.bodies) {
        bytes.set(body, off);
        off += body.byteLength;
      }
    }
    const task: ProcessTask = { seq: this.supervisor.nextSeq(), buf: bytes.buffer, ends };
    this.running++;
    this.pool.run(task, { transferList: [bytes.buffer] }).then(
      (result: ProcessResult) => {
        const c = this.counters;
        c.batches++;
        c.messages += messages;
        c.routed += result.routed;
        c.undecodable += result.bad.length;
        // Undecodable bodies are finished with the rest: a retry can't fix them.
        for (const b of batches) b.settle([], 0);
        this.taskDone();
      },
      (err: Error) => {
        this.counters.requeued++;
        this.log.warn('processing failed; batch requeued', { error: err.message, messages });
        for (const b of batches) b.settle(b.bodies.map((_, j) => j), backoff(Math.max(...b.attempts)));
        this.taskDone();
      },
    );
  }

  private taskDone(): void {
    this.running--;
    if (this.waiting.length > 0) this.runNext();
    else if (this.running === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  /** Waits (bounded) until every batch handed to the processors was settled. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.running === 0 && this.waiting.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.idle.push(resolve);
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
