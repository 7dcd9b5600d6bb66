// Task sequence numbers, shared by every thread through one SharedArrayBuffer.
//
// Every processor task (a batch of queue messages) gets the next number; each
// shard delivers tasks in that order (workers/shard/sequencer.ts), so pushes
// to one group keep their order although processors run in parallel. With the
// embedded queue the main thread numbers tasks as it dispatches them; with NSQ
// each processor numbers the batches its own Reader received.
//
// Beside the counter, a ring records which processor thread handled each of
// the last RING numbers. Every shard must hear of every number (a batch or a
// skip), and a restarted shard hears of the recent ones again from the
// processor that handled them; if that thread dies, the main thread declares
// its numbers as gaps from this ring, so no shard waits for them forever.

/** Numbers remembered per owner; far more than can be in flight or replayed at once. */
const RING = 65_536;
const NO_OWNER = -1;

export class SeqState {
  /** Word 0: the next number (BigInt64, so it never wraps). */
  private readonly counter: BigInt64Array;
  /** owners[seq % RING]: the slot of the processor thread that handled seq. */
  private readonly owners: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.counter = new BigInt64Array(buffer, 0, 1);
    this.owners = new Int32Array(buffer, 8, RING);
  }

  static create(): SharedArrayBuffer {
    const buffer = new SharedArrayBuffer(8 + 4 * RING);
    new Int32Array(buffer, 8, RING).fill(NO_OWNER);
    return buffer;
  }

  /** Takes the next number. */
  take(): number {
    return Number(Atomics.add(this.counter, 0, 1n));
  }

  /** The number the next take() returns. */
  peek(): number {
    return Number(Atomics.load(this.counter, 0));
  }

  /** Records that processor `slot` handles `seq` (before it sends anything for it). */
  own(seq: number, slot: number): void {
    Atomics.store(this.owners, seq % RING, slot);
  }

  /** Takes the next number for processor `slot`. */
  takeFor(slot: number): number {
    const seq = this.take();
    this.own(seq, slot);
    return seq;
  }

  /** The recent numbers processor `slot` handled (its thread died); forgets them. */
  release(slot: number): number[] {
    const end = this.peek();
    const out: number[] = [];
    for (let seq = Math.max(0, end - RING); seq < end; seq++) {
      if (Atomics.compareExchange(this.owners, seq % RING, slot, NO_OWNER) === slot) out.push(seq);
    }
    return out;
  }
}
