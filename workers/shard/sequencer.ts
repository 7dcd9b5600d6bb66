// Delivers processor frames in task order. Processors run batches in parallel
// and each has its own port to this shard, and Node gives no order across
// ports; without this, two pushes to one group could arrive swapped. Every
// task sends each shard a frame (a DeliverBatch or a SkipFrame) with the
// task's sequence number; frames that arrive early wait for the missing ones.
//
// A gap that never fills (the processor died mid-task and the batch was
// requeued under a new number) is skipped after GAP_MS. A frame older than the
// next expected one is delivered at once: late, never dropped.

import type { MessagePort } from 'node:worker_threads';
import type { DeliverBatch } from '../../src/shared/frames';

const GAP_MS = 200;

/** Delivers a batch; `from` is the processor port to acknowledge on. */
export type Deliver = (batch: DeliverBatch, from: MessagePort) => void;

interface Held {
  readonly batch: DeliverBatch | null;
  readonly from: MessagePort;
}

export class Sequencer {
  private next: number;
  /** Early frames by sequence number (batch null: a skip). */
  private readonly held = new Map<number, Held>();
  private timer: NodeJS.Timeout | null = null;

  constructor(firstSeq: number, private readonly deliver: Deliver) {
    this.next = firstSeq;
  }

  push(seq: number, batch: DeliverBatch | null, from: MessagePort): void {
    if (seq < this.next) {
      if (batch !== null) this.deliver(batch, from);
      return;
    }
    if (seq > this.next) {
      this.held.set(seq, { batch, from });
      if (this.timer === null) this.timer = setTimeout(skipGap, GAP_MS, this);
      return;
    }
    if (batch !== null) this.deliver(batch, from);
    this.next++;
    if (this.held.size > 0) this.release();
  }

  private release(): void {
    const held = this.held;
    let h: Held | undefined;
    while ((h = held.get(this.next)) !== undefined) {
      held.delete(this.next);
      if (h.batch !== null) this.deliver(h.batch, h.from);
      this.next++;
    }
    if (held.size === 0 && this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Gives up on the missing numbers below the oldest held frame. */
  skipGap(): void {
    this.timer = null;
    let min = Infinity;
    for (const seq of this.held.keys()) if (seq < min) min = seq;
    if (min === Infinity) return;
    this.next = min;
    this.release();
    if (this.held.size > 0) this.timer = setTimeout(skipGap, GAP_MS, this);
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.held.clear();
  }
}

function skipGap(s: Sequencer): void {
  s.skipGap();
}
