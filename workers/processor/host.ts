// The Piscina pool of processor threads (main thread side). Processors send
// their frames to the shards directly; what comes back here is a task's end
// (embedded queue) or a consumer's numbers (NSQ).
//
// Embedded queue: the main thread consumes it and runs its batches here as
// Piscina tasks, numbered in dispatch order (SeqState). NSQ: each processor
// thread runs its own Reader, started by consume() and stopped by stop().

import type { MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Config } from '../../src/config/schema';
import type { Logger } from '../../shared/log';
import type { SeqState } from '../../shared/seq-state';
import { once } from '../../shared/lifecycle';
import type { ConsumeOptions, MainToProcessor, ProcessorHello, ProcessorInit, ProcessorToMain, ProcessTask } from '../../shared/frames';
import { P_BATCH_SIZE, P_BATCHES, P_CONNECTED, P_IN_FLIGHT, P_MESSAGES, P_REQUEUED, P_ROUTED, P_UNDECODABLE, processorBuffer, processorRegion } from '../../shared/counters';
import type { ConsumedBatch } from '../../src/queue/queue';
import type { Mesh } from '../../src/mesh';

/** Retry delay of a failed batch: grows with attempts, capped. */
function backoff(attempts: number): number {
  return Math.min(100 * 2 ** attempts, 30_000);
}

/** How long a processor task waits for a restarting shard before its batch is retried. */
const SHARD_WAIT_MS = 10_000;
/** How long stopConsuming() waits past its deadline for a thread's answer. */
const STOP_GRACE_MS = 1_000;

export interface ProcessorStats {
  batches: number;
  messages: number;
  routed: number;
  /** Bodies that were not a PushRequest: finished, never retried. */
  undecodable: number;
  /** Messages whose batch failed and went back to the queue. */
  requeued: number;
  /** NSQ: messages the processors hold and have not finished. */
  inFlight: number;
  /** NSQ: every processor's Reader has an nsqd connection. */
  connected: boolean;
}

interface Thread {
  readonly control: MessagePort;
  readonly slot: number;
}

const ENTRY = require.resolve('./worker');

export class ProcessorPool {
  /** The main thread's region: batches of the embedded queue are formed (and retried) here. */
  private readonly own: Float64Array;
  /** One counter region per slot, plus the main thread's, last (shared/counters.ts). */
  private readonly regions: Float64Array[];
  private readonly pool: Piscina;
  private readonly threads: number;
  private readonly batchSize: number;
  /**
   * Embedded queue: tasks in flight at most, two per thread, so each thread
   * has its next task queued while the shards deliver its last one (a task
   * ends when the shards acknowledged delivery). Everything else waits here
   * and is merged into the next task, so batches grow with load: the fixed
   * cost of a task (~55 µs of main-thread time with Piscina, measured) is paid
   * per batch, not per push, and a backlog stays in the queue, not in ports.
   */
  private readonly maxTasks: number;
  private readonly waiting: ConsumedBatch[] = [];
  /** Sequence numbers of the tasks running now. */
  private readonly running = new Set<number>();
  private readonly live = new Set<Thread>();
  private readonly freeSlots: number[];
  private consuming: ConsumeOptions | null = null;
  private closing = false;
  private readonly stopReplies = new Map<Thread, (unsettled: number) => void>();

  constructor(config: Config, private readonly mesh: Mesh, private readonly seqs: SeqState, private readonly log: Logger) {
    this.threads = config.processor.threads;
    this.batchSize = config.processor.batch_size;
    this.maxTasks = this.threads * 2;
    // Two slots per thread: a thread that dies may be replaced before its slot is freed.
    const slots = this.threads * 2;
    this.freeSlots = Array.from({ length: slots }, (_, i) => slots - 1 - i);
    const counters = processorBuffer(slots + 1);
    this.regions = Array.from({ length: slots + 1 }, (_, r) => processorRegion(counters, r));
    this.own = this.regions[slots]!;
    const init: ProcessorInit = {
      shards: config.server.shards, logLevel: config.log.level, logFormat: config.log.format, seqBuffer: seqs.buffer, batchSize: this.batchSize,
      shardWaitMs: SHARD_WAIT_MS, counters, latencySample: config.metrics.latency_sample,
    };
    this.pool = new Piscina({
      filename: ENTRY,
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: Infinity,
      // Processors must receive shard ports while idle: 'sync' would block
      // them in Atomics.wait and their port listeners would never run.
      atomics: 'disabled',
      workerData: init,
    });
    this.pool.on('message', (msg: ProcessorHello) => {
      if (msg !== null && typeof msg === 'object' && msg.t === 'processor-hello') this.hello(msg.control);
    });
    this.pool.on('error', (err: Error) => this.log.error('processor thread failed', { error: err.message }));
  }

  get size(): number {
    return this.threads;
  }

  /** A processor thread started (at start-up, or replacing one that died). */
  private hello(control: MessagePort): void {
    const slot = this.freeSlots.pop();
    if (slot === undefined) {
      this.log.error('no free processor slot', { code: 'PUSH_ERR_INTERNAL' });
      return;
    }
    const thread: Thread = { control, slot };
    this.live.add(thread);
    this.send(thread, { t: 'slot', slot });
    control.on('message', (msg: ProcessorToMain) => this.stopReplies.get(thread)?.(msg.unsettled));
    control.on('close', () => this.gone(thread));
    this.mesh.addProcessor(control, slot);
    if (this.consuming !== null) this.send(thread, { t: 'consume', options: this.consuming });
  }

  /**
   * A processor thread ended: no shard may wait for a number it handled (a
   * restarted shard hears of recent numbers again only from their handler).
   */
  private gone(thread: Thread): void {
    if (!this.live.delete(thread)) return;
    this.mesh.removeProcessor(thread.control);
    const region = this.regions[thread.slot]!;
    region[P_IN_FLIGHT] = 0;
    region[P_CONNECTED] = 0;
    const seqs = this.seqs.release(thread.slot);
    if (seqs.length > 0) this.mesh.gap(seqs);
    this.freeSlots.push(thread.slot);
    if (!this.closing) this.log.warn('processor thread exited; Piscina starts another', { slot: thread.slot, tasksReleased: seqs.length });
  }

  /** Debug hook: makes the n-th processor thread throw an uncaught exception. */
  crash(n: number): boolean {
    const thread = [...this.live][n];
    if (thread === undefined) return false;
    this.send(thread, { t: 'crash' });
    return true;
  }

  private send(thread: Thread, msg: MainToProcessor): void {
    thread.control.postMessage(msg);
  }

  /** Where a (re)started shard starts delivering in order: the oldest task not finished. */
  firstSeq(): number {
    let min = this.seqs.peek();
    for (const seq of this.running) if (seq < min) min = seq;
    return min;
  }

  // ---- embedded queue ---------------------------------------------------

  /** Queue consumer. */
  readonly onBatch = (batch: ConsumedBatch): void => {
    this.waiting.push(batch);
    if (this.running.size < this.maxTasks) this.runNext();
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
    let sampled: number[] | null = null;
    for (const b of batches) {
      const first = i;
      for (const body of b.bodies) {
        size += body.byteLength;
        ends[i++] = size;
      }
      for (let j = 0; j < b.samples.length; j += 2) (sampled ??= []).push(first + b.samples[j]!, b.samples[j + 1]!);
    }
    const bytes = new Uint8Array(size);
    let off = 0;
    for (const b of batches) {
      for (const body of b.bodies) {
        bytes.set(body, off);
        off += body.byteLength;
      }
    }
    const seq = this.seqs.take();
    const task: ProcessTask = { seq, buf: bytes.buffer, ends, samples: sampled === null ? null : Float64Array.from(sampled) };
    this.running.add(seq);
    this.pool.run(task, { transferList: [bytes.buffer] }).then(
      () => {
        const c = this.own;
        c[P_BATCHES]!++;
        c[P_MESSAGES]! += messages;
        P_BATCH_SIZE.observe(c, messages);
        // Undecodable bodies are finished with the rest: a retry can't fix them.
        for (const b of batches) b.settle(false, 0);
        this.taskDone(seq);
      },
      (err: Error) => {
        // Shutdown gave up on it: the server already counted what it held.
        if (this.closing) return;
        // The shards hear that this number will not come (its frames may
        // have been sent in part: the retry can deliver some twice).
        this.mesh.gap([seq]);
        this.own[P_REQUEUED]! += messages;
        this.log.warn('processing failed; batch requeued', { error: err.message, messages });
        for (const b of batches) b.settle(true, backoff(Math.max(...b.attempts)));
        this.taskDone(seq);
      },
    );
  }

  private taskDone(seq: number): void {
    this.running.delete(seq);
    if (this.waiting.length > 0) this.runNext();
  }

  // ---- NSQ ----------------------------------------------------------------

  /** Every processor thread (and any that replaces one) consumes the channel from now on. */
  consume(options: Omit<ConsumeOptions, 'maxInFlight'>, maxInFlight: number): void {
    this.consuming = { ...options, maxInFlight: Math.max(1, Math.ceil(maxInFlight / this.threads)) };
    for (const thread of this.live) this.send(thread, { t: 'consume', options: this.consuming });
  }

  /**
   * Stops every Reader and waits until the batches the processors hold were
   * delivered and finished, or `deadline` (epoch ms). Resolves with the number
   * of messages left unfinished (nsqd delivers them again).
   */
  async stopConsuming(deadline: number): Promise<number> {
    if (this.consuming === null) return 0;
    this.consuming = null;
    const answers = [...this.live].map((thread) => new Promise<number>((resolve) => {
      const done = (n: number): void => {
        clearTimeout(timer);
        this.stopReplies.delete(thread);
        resolve(n);
      };
      // A thread that does not answer holds nothing we could still finish.
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()) + STOP_GRACE_MS, 0);
      this.stopReplies.set(thread, done);
      this.send(thread, { t: 'stop', deadline });
    }));
    return (await Promise.all(answers)).reduce((a, b) => a + b, 0);
  }

  /** Counters of every slot (NSQ) plus the main thread's (embedded queue), read from the shared regions. */
  stats(): ProcessorStats {
    const out: ProcessorStats = { batches: 0, messages: 0, routed: 0, undecodable: 0, requeued: 0, inFlight: 0, connected: this.live.size > 0 };
    for (const r of this.regions) {
      out.batches += r[P_BATCHES]!;
      out.messages += r[P_MESSAGES]!;
      out.routed += r[P_ROUTED]!;
      out.undecodable += r[P_UNDECODABLE]!;
      out.requeued += r[P_REQUEUED]!;
      out.inFlight += r[P_IN_FLIGHT]!;
    }
    for (const thread of this.live) out.connected &&= this.regions[thread.slot]![P_CONNECTED] === 1;
    return out;
  }

  /** Every counter region (the last one is the main thread's). */
  regionCounters(): readonly Float64Array[] {
    return this.regions;
  }

  /** Live threads, and how many of them have an nsqd consumer connection. */
  threadStates(): { live: number; connected: number } {
    let connected = 0;
    for (const thread of this.live) if (this.regions[thread.slot]![P_CONNECTED] === 1) connected++;
    return { live: this.live.size, connected };
  }

  /** NSQ: the threads consume (from the end of warm-up until shutdown). */
  get consumingNsq(): boolean {
    return this.consuming !== null;
  }

  /** Ends the threads; safe to call twice. */
  readonly close = once(async () => {
    this.closing = true;
    await this.pool.destroy();
  });
}
