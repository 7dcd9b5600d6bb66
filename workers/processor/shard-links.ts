// A processor's ports to the shards: attached by the main thread (at start
// and whenever a shard restarts), and the acknowledgements that end a task.
// Runs in a processor thread.

import type { MessagePort } from 'node:worker_threads';
import { F_ACK, F_SKIP, type AckFrame, type DeliverBatch, type SkipFrame } from '../../src/shared/frames';

/** A task waiting for the shards it sent to. */
interface Waiting {
  /** Bit s set: shard s has not acknowledged yet. */
  mask: number;
  resolve: () => void;
}

export class ShardLinks {
  private readonly ports: (MessagePort | null)[];
  private attached = 0;
  private readyWaiters: (() => void)[] = [];
  private readonly waiting = new Map<number, Waiting>();

  constructor(private readonly shards: number) {
    this.ports = new Array<MessagePort | null>(shards).fill(null);
  }

  get ready(): boolean {
    return this.attached === this.shards;
  }

  /** Resolves once every shard has a port (the first task may arrive before). */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  attach(shard: number, port: MessagePort): void {
    const old = this.ports[shard];
    if (old == null) this.attached++;
    else {
      old.close();
      this.lost(shard);
    }
    this.ports[shard] = port;
    port.on('message', (frame: AckFrame) => {
      if (frame.t === F_ACK) this.acked(shard, frame.seq);
    });
    // The shard's thread ended (crash): what it held will never be acknowledged.
    port.on('close', () => {
      if (this.ports[shard] === port) this.lost(shard);
    });
    if (this.ready) for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  /** Sends a task's frame to a shard; the returned mask bit means "wait for its ack". */
  deliver(shard: number, batch: DeliverBatch): number {
    const port = this.ports[shard];
    if (port == null) return 0;
    port.postMessage(batch, [batch.buf]);
    return 1 << shard;
  }

  skip(shard: number, seq: number): void {
    const frame: SkipFrame = { t: F_SKIP, seq };
    this.ports[shard]?.postMessage(frame);
  }

  /** Resolves when every shard in `mask` has acknowledged task `seq`. */
  wait(seq: number, mask: number): Promise<void> {
    if (mask === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiting.set(seq, { mask, resolve }));
  }

  private acked(shard: number, seq: number): void {
    const w = this.waiting.get(seq);
    if (w === undefined) return;
    w.mask &= ~(1 << shard);
    if (w.mask === 0) {
      this.waiting.delete(seq);
      w.resolve();
    }
  }

  /** A shard is gone: nothing it held will be acknowledged, so stop waiting for it. */
  private lost(shard: number): void {
    for (const [seq, w] of this.waiting) if ((w.mask & (1 << shard)) !== 0) this.acked(shard, seq);
  }
}
