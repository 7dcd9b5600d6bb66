// Task sequence numbers, shared by every thread through one SharedArrayBuffer.
//
// Every processor task (a batch of queue messages) gets the next number; each
// shard delivers tasks in that order (workers/shard/sequencer.ts), so pushes
// to one group keep their order although processors run in parallel. With the
// embedded queue the main thread numbers tasks as it dispatches them; with NSQ
// each processor numbers the batches its own Reader received.
//
// Layout (BigInt64, so the counter never wraps): word 0 is the next number;
// word 1 + slot is the number processor `slot` is routing right now (-1: none),
// which tells the main thread what to declare missing if that thread dies
// between taking a number and sending its frames.

const NONE = -1n;

export class SeqState {
  private readonly words: BigInt64Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new BigInt64Array(buffer);
  }

  /** A buffer for `slots` processor threads, counter at 0, every slot idle. */
  static create(slots: number): SharedArrayBuffer {
    const buffer = new SharedArrayBuffer(8 * (1 + slots));
    new BigInt64Array(buffer).fill(NONE, 1);
    return buffer;
  }

  get slots(): number {
    return this.words.length - 1;
  }

  /** Takes the next number. */
  take(): number {
    return Number(Atomics.add(this.words, 0, 1n));
  }

  /** The number the next take() returns. */
  peek(): number {
    return Number(Atomics.load(this.words, 0));
  }

  /** Takes the next number and records it as being routed by `slot`, until done(slot). */
  takeFor(slot: number): number {
    const seq = this.take();
    Atomics.store(this.words, 1 + slot, BigInt(seq));
    return seq;
  }

  done(slot: number): void {
    Atomics.store(this.words, 1 + slot, NONE);
  }

  /** The number `slot` was routing (its thread died mid-task), or -1; clears it. */
  release(slot: number): number {
    return Number(Atomics.exchange(this.words, 1 + slot, NONE));
  }
}
