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
  private readonly inFlight = new Set<Promise<void>>();
  private readonly threads: number;

  constructor(config: Config, private readonly supervisor: Supervisor, private readonly log: Logger) {
    this.threads = config.processor.threads;
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

  /** Queue consumer: packs the batch into one transferable buffer and runs it. */
  readonly onBatch = (batch: ConsumedBatch): void => {
    const { bodies } = batch;
    const ends = new Uint32Array(bodies.length);
    let size = 0;
    for (let i = 0; i < bodies.length; i++) {
      size += bodies[i]!.byteLength;
      ends[i] = size;
    }
    const bytes = new Uint8Array(size);
    let off = 0;
    for (let i = 0; i < bodies.length; i++) {
      bytes.set(bodies[i]!, off);
      off += bodies[i]!.byteLength;
    }
    const task: ProcessTask = { seq: this.supervisor.nextSeq(), buf: bytes.buffer, ends };
    const done = this.pool
      .run(task, { transferList: [bytes.buffer] })
      .then((result: ProcessResult) => {
        const c = this.counters;
        c.batches++;
        c.messages += bodies.length;
        c.routed += result.routed;
        c.undecodable += result.bad.length;
        // Undecodable bodies are finished with the rest: a retry can't fix them.
        batch.settle([], 0);
      })
      .catch((err: Error) => {
        this.counters.requeued++;
        const attempts = Math.max(...batch.attempts);
        this.log.warn('processing failed; batch requeued', { error: err.message, messages: bodies.length, attempts });
        batch.settle(bodies.map((_, i) => i), backoff(attempts));
      })
      .finally(() => this.inFlight.delete(done));
    this.inFlight.add(done);
  };

  /** Waits (bounded) for the batches already handed to processors. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
