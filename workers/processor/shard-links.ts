// A processor's ports to the shards, and the tasks waiting for their
// acknowledgements. Runs in a processor thread.
//
// Every task sends every shard either its DeliverBatch or a SkipFrame (the
// shards deliver tasks in sequence order). A task ends when every shard it sent
// a batch to acknowledged it. A shard that dies (its port closes) is not
// counted as done: the task keeps waiting for the restarted shard, which gets
// the batch again on attach (at-least-once: members of the groups it owns on
// other shards may see a push twice). With it, the new shard gets a skip for
// every task since its `firstSeq` that has nothing (left) for it, so its
// sequencer can move on. A shard that stays away longer than `waitMs` fails
// the tasks waiting for it: their messages go back to the queue.

import type { MessagePort } from 'node:worker_threads';
import { F_ACK, F_REPLAY_END, F_SKIP, type AckFrame, type ReplayEnd, type SkipFrame } from '../../shared/frames';
import type { OwnerBatch } from './owner-batch';

/** What a task has for one shard: its batch, or nothing (a skip). */
export type Part = OwnerBatch | undefined;

/** How many recent task numbers a processor remembers for restarted shards (see attach()). */
const HISTORY = 16_384;

interface OpenTask {
  readonly seq: number;
  readonly parts: readonly Part[];
  /** 1 where that shard holds (or will be sent) the batch and has not acknowledged it. */
  readonly unacked: Uint8Array;
  waiting: number;
  resolve(): void;
  reject(err: Error): void;
}

export class ShardWaitError extends Error {}

export class ShardLinks {
  private readonly ports: (MessagePort | null)[];
  private readonly open = new Map<number, OpenTask>();
  /** Task numbers this processor sent, oldest first, as a ring. */
  private readonly history = new Float64Array(HISTORY);
  private historyLen = 0;
  private historyHead = 0;
  private readonly downTimers: (NodeJS.Timeout | null)[];

  constructor(private readonly shards: number, private readonly waitMs: number) {
    this.ports = new Array<MessagePort | null>(shards).fill(null);
    this.downTimers = new Array<NodeJS.Timeout | null>(shards).fill(null);
  }

  /** Tasks sent and not yet acknowledged by every shard. */
  get pending(): number {
    return this.open.size;
  }

  /** Sends task `seq` to every shard; resolves once each shard that got a batch acknowledged it. */
  send(seq: number, parts: readonly Part[]): Promise<void> {
    this.remember(seq);
    const unacked = new Uint8Array(this.shards);
    let waiting = 0;
    for (let s = 0; s < this.shards; s++) {
      const part = parts[s];
      const port = this.ports[s];
      if (part !== undefined) {
        unacked[s] = 1;
        waiting++;
        if (port !== null) sendBatch(port, part, seq);
        else this.armDownTimer(s);
      } else if (port !== null) {
        sendSkip(port, seq);
      }
    }
    if (waiting === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.open.set(seq, { seq, parts, unacked, waiting, resolve, reject });
    });
  }

  /**
   * A port to `shard` (at start, or after the shard restarted). Re-sends, in
   * task order, every batch the shard's previous incarnation never
   * acknowledged, and a skip for every other task from `firstSeq` on, then
   * says the replay is over.
   */
  attach(shard: number, port: MessagePort, firstSeq: number): void {
    this.ports[shard]?.close();
    this.ports[shard] = port;
    this.disarmDownTimer(shard);
    port.on('message', (frame: AckFrame) => {
      if (frame.t === F_ACK) this.acked(shard, frame.seq);
    });
    port.on('close', () => {
      if (this.ports[shard] !== port) return;
      this.ports[shard] = null;
      if (this.hasWaiting(shard)) this.armDownTimer(shard);
    });

    const resend: OpenTask[] = [];
    for (const task of this.open.values()) if (task.unacked[shard] === 1) resend.push(task);
    const skips: number[] = [];
    for (let i = 0; i < this.historyLen; i++) {
      const seq = this.history[(this.historyHead + i) % HISTORY]!;
      if (seq >= firstSeq && this.open.get(seq)?.unacked[shard] !== 1) skips.push(seq);
    }
    resend.sort((a, b) => a.seq - b.seq);
    skips.sort((a, b) => a - b);
    let i = 0;
    let j = 0;
    while (i < resend.length || j < skips.length) {
      if (j === skips.length || (i < resend.length && resend[i]!.seq < skips[j]!)) {
        const task = resend[i++]!;
        sendBatch(port, task.parts[shard]!, task.seq);
      } else sendSkip(port, skips[j++]!);
    }
    const end: ReplayEnd = { t: F_REPLAY_END };
    port.postMessage(end);
  }

  private remember(seq: number): void {
    if (this.historyLen < HISTORY) this.history[(this.historyHead + this.historyLen++) % HISTORY] = seq;
    else {
      this.history[this.historyHead] = seq;
      this.historyHead = (this.historyHead + 1) % HISTORY;
    }
  }

  private acked(shard: number, seq: number): void {
    const task = this.open.get(seq);
    if (task === undefined || task.unacked[shard] !== 1) return;
    task.unacked[shard] = 0;
    if (--task.waiting === 0) {
      this.open.delete(seq);
      task.resolve();
    }
  }

  private hasWaiting(shard: number): boolean {
    for (const task of this.open.values()) if (task.unacked[shard] === 1) return true;
    return false;
  }

  private armDownTimer(shard: number): void {
    if (this.downTimers[shard] === null) this.downTimers[shard] = setTimeout(() => this.giveUp(shard), this.waitMs);
  }

  private disarmDownTimer(shard: number): void {
    const timer = this.downTimers[shard];
    if (timer !== null) clearTimeout(timer);
    this.downTimers[shard] = null;
  }

  /** `shard` stayed away for waitMs: fail the tasks waiting for it (their messages are retried). */
  private giveUp(shard: number): void {
    this.downTimers[shard] = null;
    if (this.ports[shard] !== null) return;
    const err = new ShardWaitError(`shard ${shard} did not come back within ${this.waitMs} ms`);
    for (const [seq, task] of this.open) {
      if (task.unacked[shard] !== 1) continue;
      this.open.delete(seq);
      task.reject(err);
    }
  }

  close(): void {
    for (let s = 0; s < this.shards; s++) {
      this.disarmDownTimer(s);
      this.ports[s]?.close();
      this.ports[s] = null;
    }
  }
}

function sendBatch(port: MessagePort, part: OwnerBatch, seq: number): void {
  const batch = part.build(seq);
  port.postMessage(batch, [batch.buf]);
}

function sendSkip(port: MessagePort, seq: number): void {
  const frame: SkipFrame = { t: F_SKIP, seq };
  port.postMessage(frame);
}
