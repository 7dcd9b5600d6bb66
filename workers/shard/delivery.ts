// Delivers DeliverBatch frames: to this shard's members, and, for groups this
// shard owns, forwards to the shards holding the rest. Runs in a shard thread.

import { F_DELIVER, type DeliverBatch } from '../../src/shared/frames';
import type { Registry, Socket } from './registry';

export interface DeliveryCounters {
  /** Frames written to a socket (or queued in its backpressure buffer). */
  delivered: number;
  /** Deliveries to groups that had no member anywhere (as gopusher: dropped). */
  undelivered: number;
  /** Frames refused because a socket was over max_backpressure. */
  dropped: number;
}

// The batch being delivered, for sendRun(): ws.cork() takes a callback, and a
// module-level one with module-level arguments costs no closure per socket.
let runWs: Socket;
let runBatch: DeliverBatch;
let runViews: (Uint8Array | undefined)[];
let runFrom = 0;
let runTo = 0;
let runCounters: DeliveryCounters;

function view(m: number): Uint8Array {
  let v = runViews[m];
  if (v === undefined) {
    const { buf, ends } = runBatch;
    const start = m === 0 ? 0 : ends[m - 1]!;
    v = runViews[m] = new Uint8Array(buf, start, ends[m]! - start);
  }
  return v;
}

/** Sends one group's run of payloads to runWs; inside ws.cork(), one write for all. */
function sendRun(): void {
  const ws = runWs;
  const { msgs, apps } = runBatch;
  const app = ws.getUserData().app;
  const c = runCounters;
  for (let i = runFrom; i < runTo; i++) {
    const m = msgs[i]!;
    const want = apps[m]!;
    if (want !== '' && want !== app) continue;
    // 1 sent, 0 buffered (backpressure building), 2 dropped over max_backpressure
    // (uWS then closes the socket: closeOnBackpressureLimit).
    if (ws.send(view(m), false, false) === 2) c.dropped++;
    else c.delivered++;
  }
}

export class Delivery {
  readonly counters: DeliveryCounters = { delivered: 0, undelivered: 0, dropped: 0 };
  /** Per peer shard: indexes (into the batch's cards) of groups to forward there; reused across batches. */
  private readonly forwards: number[][];

  constructor(private readonly registry: Registry) {
    this.forwards = Array.from({ length: registry.shards }, () => []);
  }

  handle(batch: DeliverBatch): void {
    const { cards, offs } = batch;
    const { local, remote } = this.registry;
    const forwarded = batch.seq === -1;
    let forwarding = false;
    runBatch = batch;
    runViews = new Array(batch.ends.length);
    runCounters = this.counters;

    for (let k = 0; k < cards.length; k++) {
      const card = cards[k]!;
      const set = local.get(card);
      if (set !== undefined) {
        runFrom = offs[k]!;
        runTo = offs[k + 1]!;
        const several = runTo - runFrom > 1;
        for (const ws of set) {
          runWs = ws;
          if (several) ws.cork(sendRun);
          else sendRun();
        }
      }
      if (forwarded) continue;
      const rec = remote.get(card);
      if (rec !== undefined) {
        for (let s = 0; s < rec.length; s++) {
          if (rec[s]! > 0) {
            this.forwards[s]!.push(k);
            forwarding = true;
          }
        }
      } else if (set === undefined) {
        this.counters.undelivered += offs[k + 1]! - offs[k]!;
      }
    }
    if (forwarding) this.forward(batch);
  }

  /** Sends each peer the groups it holds members of, as a batch of its own (seq -1: no re-routing). */
  private forward(batch: DeliverBatch): void {
    const { peers } = this.registry;
    for (let s = 0; s < peers.length; s++) {
      const list = this.forwards[s]!;
      if (list.length === 0) continue;
      const port = peers[s];
      if (port != null) {
        const cards: string[] = new Array(list.length);
        const offs = new Uint32Array(list.length + 1);
        for (let i = 0; i < list.length; i++) {
          const k = list[i]!;
          cards[i] = batch.cards[k]!;
          offs[i + 1] = offs[i]! + batch.offs[k + 1]! - batch.offs[k]!;
        }
        const msgs = new Uint32Array(offs[list.length]!);
        for (let i = 0; i < list.length; i++) {
          const k = list[i]!;
          msgs.set(batch.msgs.subarray(batch.offs[k]!, batch.offs[k + 1]!), offs[i]!);
        }
        const buf = batch.buf.slice(0);
        const frame: DeliverBatch = { t: F_DELIVER, seq: -1, buf, ends: batch.ends, apps: batch.apps, cards, offs, msgs };
        port.postMessage(frame, [buf]);
      }
      list.length = 0;
    }
  }
}
