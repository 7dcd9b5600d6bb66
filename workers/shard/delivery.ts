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

export class Delivery {
  readonly counters: DeliveryCounters = { delivered: 0, undelivered: 0, dropped: 0 };
  // Per-peer forward lists, reused across batches: no allocation when nothing forwards.
  private readonly fwdCards: string[][];
  private readonly fwdMsgs: number[][];

  constructor(private readonly registry: Registry) {
    this.fwdCards = Array.from({ length: registry.shards }, () => []);
    this.fwdMsgs = Array.from({ length: registry.shards }, () => []);
  }

  handle(batch: DeliverBatch): void {
    const { buf, ends, apps, cards, msgs } = batch;
    const forwarded = batch.seq === -1;
    const { local, remote } = this.registry;
    const views: (Uint8Array | undefined)[] = new Array(ends.length);
    let forwarding = false;

    for (let d = 0; d < cards.length; d++) {
      const card = cards[d]!;
      const m = msgs[d]!;
      const set = local.get(card);
      if (set !== undefined) {
        let view = views[m];
        if (view === undefined) {
          const start = m === 0 ? 0 : ends[m - 1]!;
          view = views[m] = new Uint8Array(buf, start, ends[m]! - start);
        }
        this.sendAll(set, view, apps[m]!);
      }
      if (forwarded) continue;
      const rec = remote.get(card);
      if (rec !== undefined) {
        for (let s = 0; s < rec.length; s++) {
          if (rec[s]! > 0) {
            this.fwdCards[s]!.push(card);
            this.fwdMsgs[s]!.push(m);
            forwarding = true;
          }
        }
      } else if (set === undefined) {
        this.counters.undelivered++;
      }
    }
    if (forwarding) this.forward(batch);
  }

  private sendAll(set: Set<Socket>, view: Uint8Array, app: string): void {
    const c = this.counters;
    for (const ws of set) {
      if (app !== '' && ws.getUserData().app !== app) continue;
      // 1 sent, 0 buffered (backpressure building), 2 dropped over max_backpressure
      // (uWS then closes the socket: closeOnBackpressureLimit).
      if (ws.send(view, false, false) === 2) c.dropped++;
      else c.delivered++;
    }
  }

  private forward(batch: DeliverBatch): void {
    const { peers } = this.registry;
    for (let s = 0; s < peers.length; s++) {
      const cards = this.fwdCards[s]!;
      if (cards.length === 0) continue;
      const port = peers[s];
      if (port != null) {
        const buf = batch.buf.slice(0);
        const frame: DeliverBatch = {
          t: F_DELIVER, seq: -1, buf, ends: batch.ends, apps: batch.apps,
          cards: cards.slice(), msgs: Uint32Array.from(this.fwdMsgs[s]!),
        };
        port.postMessage(frame, [buf]);
      }
      cards.length = 0;
      this.fwdMsgs[s]!.length = 0;
    }
  }
}
