// Delivers processor frames in task order. Processors run batches in parallel
// and each has its own port to this shard, and Node gives no order across
// ports; without this, two pushes to one group could arrive swapped. Every
// task sends each shard a frame (a DeliverBatch or a SkipFrame) with the
// task's sequence number; frames that arrive early wait for the missing ones.
//
// Nothing is skipped on a timer: a slow task holds the ones behind it (that
// is the order promise). A number that will never come is declared by the main
// thread (gap(): the task failed and its batch went back to the queue).
//
// A restarted shard starts closed (`gates` > 0): it holds everything until the
// processors have re-sent what its previous incarnation never acknowledged and
// its peers have told it their members. Re-sent frames are older than
// `firstSeq` ("late"); they are delivered first, sorted, when the last gate
// opens. A late frame after that (a task that failed, was declared a gap,
// and still reached us) is delivered at once: late, never dropped.

import type { MessagePort } from 'node:worker_threads';
import type { DeliverBatch } from '../../shared/frames';

/** Delivers a batch; `from` is the processor port to acknowledge on. */
export type Deliver = (batch: DeliverBatch, from: MessagePort) => void;

interface Held {
  readonly batch: DeliverBatch | null;
  readonly from: MessagePort | null;
}

export class Sequencer {
  private next: number;
  /** Early frames by sequence number (batch null: a skip or a gap). */
  private readonly held = new Map<number, Held>();
  /** Frames older than `next` that arrived while gated. */
  private late: DeliverBatch[] = [];
  private lateFrom: MessagePort[] = [];

  constructor(firstSeq: number, private gates: number, private readonly deliver: Deliver) {
    this.next = firstSeq;
  }

  get open(): boolean {
    return this.gates === 0;
  }

  /** The number this shard waits for (for the stall log). */
  get waitingFor(): number {
    return this.held.size > 0 ? this.next : -1;
  }

  push(seq: number, batch: DeliverBatch | null, from: MessagePort): void {
    if (seq < this.next) {
      if (batch === null) return;
      if (this.gates > 0) {
        this.late.push(batch);
        this.lateFrom.push(from);
      } else this.deliver(batch, from);
      return;
    }
    if (seq > this.next || this.gates > 0) {
      // A real frame wins over a gap declared for the same number.
      if (batch !== null || !this.held.has(seq)) this.held.set(seq, { batch, from });
      return;
    }
    if (batch !== null) this.deliver(batch, from);
    this.next++;
    if (this.held.size > 0) this.release();
  }

  /** Task `seq` will never send its frame (declared by the main thread). */
  gap(seq: number): void {
    if (seq < this.next || this.held.has(seq)) return;
    this.held.set(seq, { batch: null, from: null });
    if (seq === this.next && this.gates === 0) this.release();
  }

  /** One of the start-up conditions is met; the last one releases everything held. */
  openGate(): void {
    if (this.gates === 0 || --this.gates > 0) return;
    const late = this.late;
    const from = this.lateFrom;
    this.late = [];
    this.lateFrom = [];
    const order = late.map((_, i) => i).sort((a, b) => late[a]!.seq - late[b]!.seq);
    for (const i of order) this.deliver(late[i]!, from[i]!);
    this.release();
  }

  private release(): void {
    const held = this.held;
    let h: Held | undefined;
    while ((h = held.get(this.next)) !== undefined) {
      held.delete(this.next);
      if (h.batch !== null) this.deliver(h.batch, h.from!);
      this.next++;
    }
  }

  close(): void {
    this.held.clear();
    this.late = [];
    this.lateFrom = [];
  }
}
