// Starts, watches, queries and stops the shard threads, and wires the
// MessagePorts between shards and between processors and shards. A shard that
// dies is started again; the others keep serving.

import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { join } from 'node:path';
import type { Config } from './config';
import type { Logger } from './shared/log';
import type { MainToProcessor, MainToShard, ShardAnswer, ShardInit, ShardQuery, ShardQueryKind, ShardStats, ShardToMain } from './shared/frames';
import { PushError } from './errors';

const QUERY_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 10_000;
const RESTART_DELAY_MS = 100;
/** Gap numbers remembered for shards started later (a few per failed task or dead processor). */
const MAX_GAPS = 65_536;

interface Slot {
  worker: Worker | null;
  ready: boolean;
  /** Generation: a restart makes stale 'exit' events recognisable. */
  gen: number;
  restarts: number;
}

interface Pending {
  resolve(value: ShardAnswer<ShardQueryKind>): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class Supervisor {
  private readonly slots: Slot[];
  /** Processor threads' control ports, with their slots. */
  private readonly processors = new Map<MessagePort, number>();
  private readonly pending = new Map<number, Pending>();
  private nextQuery = 1;
  private stopping = false;
  /**
   * Numbers declared gaps, newest last (bounded): a shard started later must
   * hear of those at or after its firstSeq too, since whoever handled them
   * will not re-send them.
   */
  private gaps: number[] = [];
  private readonly entry = join(__dirname, '..', 'workers', 'shard.js');

  /** `firstSeq()`: where a shard started now begins delivering in order (the oldest task not finished). */
  constructor(private readonly config: Config, private readonly log: Logger, private readonly firstSeq: () => number) {
    this.slots = Array.from({ length: config.server.shards }, () => ({ worker: null, ready: false, gen: 0, restarts: 0 }));
  }

  get shardCount(): number {
    return this.slots.length;
  }

  /** Starts every shard; resolves when all listen, rejects if one can't. */
  async start(): Promise<void> {
    await Promise.all(this.slots.map((_, i) => this.spawn(i)));
  }

  private spawn(index: number): Promise<void> {
    const s = this.config.server;
    const firstSeq = this.firstSeq();
    const peers = this.slots.flatMap((other, j) => (j !== index && other.worker !== null ? [j] : []));
    const init: ShardInit = {
      index, shards: this.slots.length, host: s.host, wsPort: s.wsPort, maxPayload: s.maxPayload,
      idleTimeout: s.idleTimeout, maxBackpressure: s.maxBackpressure, maxIdLength: this.config.push.maxIdLength,
      logLevel: this.config.log.level, firstSeq, processors: [...this.processors.values()], peers,
      gaps: this.gaps.filter((seq) => seq >= firstSeq),
    };
    const slot = this.slots[index]!;
    const gen = ++slot.gen;
    const worker = new Worker(this.entry, { workerData: init, name: `shard-${index}` });
    slot.worker = worker;
    slot.ready = false;

    // Mesh: a port to every other live shard, and to every processor. Sent
    // before the shard's first turn, so it never routes without them.
    for (const j of peers) {
      const { port1, port2 } = new MessageChannel();
      this.send(this.slots[j]!.worker!, { t: 'attach', kind: 'shard', peer: index, port: port1 }, [port1]);
      this.send(worker, { t: 'attach', kind: 'shard', peer: j, port: port2 }, [port2]);
    }
    for (const [control, slot] of this.processors) this.linkProcessor(control, slot, index, worker, firstSeq);

    return new Promise((resolve, reject) => {
      worker.on('message', (msg: ShardToMain) => {
        switch (msg.t) {
          case 'ready':
            slot.ready = true;
            resolve();
            return;
          case 'listen-failed':
            reject(new Error(`shard ${index} could not listen on ${s.host}:${s.wsPort}`));
            return;
          case 'reply':
            this.settle(msg.id, msg.value);
            return;
          case 'fatal':
            this.log.error('shard crashed', { shard: index, error: msg.message });
            return;
        }
      });
      worker.on('error', (err) => {
        // Only reached if the shard's own uncaughtException handler failed.
        this.log.error('shard error', { shard: index, error: err.message });
      });
      worker.on('exit', (code) => {
        if (slot.gen !== gen) return;
        slot.worker = null;
        slot.ready = false;
        reject(new Error(`shard ${index} exited during start (code ${code})`));
        if (this.stopping) return;
        // Its connections are gone: owners forget its members now.
        for (const other of this.slots) if (other.worker !== null) this.send(other.worker, { t: 'peer-reset', peer: index });
        slot.restarts++;
        this.log.warn('shard exited; restarting', { shard: index, code, restarts: slot.restarts });
        setTimeout(() => {
          if (this.stopping) return;
          this.spawn(index).catch((err: Error) => this.log.error('shard restart failed', { shard: index, error: err.message }));
        }, RESTART_DELAY_MS).unref();
      });
    });
  }

  private send(worker: Worker, msg: MainToShard, transfer?: MessagePort[]): void {
    worker.postMessage(msg, transfer);
  }

  /** `firstSeq`: the processor re-sends what the shard needs from there on (see workers/processor/shard-links.ts). */
  private linkProcessor(control: MessagePort, slot: number, shard: number, worker: Worker, firstSeq: number): void {
    const { port1, port2 } = new MessageChannel();
    const toProcessor: MainToProcessor = { t: 'shard-port', shard, port: port1, firstSeq };
    control.postMessage(toProcessor, [port1]);
    this.send(worker, { t: 'attach', kind: 'processor', peer: slot, port: port2 }, [port2]);
  }

  /**
   * A processor thread started: give it a port to every shard, now and after
   * restarts. Linked from task 0: it re-sends a skip for any task it numbered
   * before its ports arrived.
   */
  addProcessor(control: MessagePort, slot: number): void {
    this.processors.set(control, slot);
    this.slots.forEach((s, i) => {
      if (s.worker !== null) this.linkProcessor(control, slot, i, s.worker, 0);
    });
  }

  removeProcessor(control: MessagePort): void {
    this.processors.delete(control);
  }

  /** These tasks will send nothing more (they failed, or their processor died): no shard waits for them. */
  gap(seqs: readonly number[]): void {
    this.gaps.push(...seqs);
    if (this.gaps.length > MAX_GAPS) this.gaps = this.gaps.slice(-MAX_GAPS / 2);
    for (const s of this.slots) if (s.worker !== null) this.send(s.worker, { t: 'gap', seqs });
  }

  /** Asks one shard; rejects with PUSH_ERR_TIMEOUT if it does not answer in time. */
  query<K extends ShardQueryKind>(shard: number, q: ShardQuery<K>): Promise<ShardAnswer<K>> {
    const worker = this.slots[shard]!.worker;
    if (worker === null || this.stopping) return Promise.reject(new PushError('PUSH_ERR_TIMEOUT', `shard ${shard} is restarting`));
    const id = this.nextQuery++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PushError('PUSH_ERR_TIMEOUT'));
      }, QUERY_TIMEOUT_MS);
      this.pending.set(id, { resolve: resolve as (value: ShardAnswer<ShardQueryKind>) => void, reject, timer });
      this.send(worker, { t: 'query', id, ...q } as MainToShard);
    });
  }

  private settle(id: number, value: ShardAnswer<ShardQueryKind>): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(value);
  }

  /** Per-shard stats, for /system and the tests (a restarting shard counts as empty). */
  async stats(): Promise<ShardStats[]> {
    const empty: ShardStats = { clients: 0, groups: 0, localGroups: 0, delivered: 0, undelivered: 0, dropped: 0 };
    return Promise.all(this.slots.map((_, i) => this.query<'stats'>(i, { q: 'stats' }).catch(() => empty)));
  }

  /** Debug hook: makes a shard throw an uncaught exception. */
  crash(shard: number): boolean {
    const worker = this.slots[shard]?.worker;
    if (worker == null) return false;
    this.send(worker, { t: 'crash' });
    return true;
  }

  restarts(): number[] {
    return this.slots.map((s) => s.restarts);
  }

  /** Every shard closes its connections (1001) and listen socket, then its thread ends. */
  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const exits = this.slots.map((slot) => {
      const worker = slot.worker;
      if (worker === null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.log.error('shard did not stop in time', { thread: worker.threadId });
          resolve();
        }, STOP_TIMEOUT_MS);
        worker.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        this.send(worker, { t: 'shutdown' });
      });
    });
    await Promise.all(exits);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new PushError('PUSH_ERR_SHUTTING_DOWN'));
    }
    this.pending.clear();
  }
}
