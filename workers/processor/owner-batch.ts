// Builds one shard's DeliverBatch while a processor task runs: payloads
// rendered once, deliveries grouped by card_id (see DeliverBatch.offs), and
// broadcasts. Runs in a processor thread.

import { F_DELIVER, type DeliverBatch } from '../../shared/frames';

const utf8 = new TextEncoder();

export class OwnerBatch {
  private readonly payloads: string[] = [];
  private readonly apps: string[] = [];
  /** card_id -> index into cards. */
  private readonly index = new Map<string, number>();
  private readonly cards: string[] = [];
  private readonly counts: number[] = [];
  /** Per delivery, in push order: card index and payload index. */
  private readonly dCard: number[] = [];
  private readonly dMsg: number[] = [];
  /** Payload indexes of broadcasts, in push order. */
  private readonly bcast: number[] = [];
  /** Payload index of the message being routed, or -1 before its first recipient here. */
  private current = -1;
  /** Pairs of payload index and accept time of the sampled messages (DeliverBatch.samples). */
  private samples: number[] | null = null;

  /** Called once per message, before its recipients. */
  nextMessage(): void {
    this.current = -1;
  }

  private payload(payload: string, app: string): number {
    if (this.current === -1) {
      this.current = this.payloads.length;
      this.payloads.push(payload);
      this.apps.push(app);
    }
    return this.current;
  }

  /** The message is a broadcast: every joined connection of the shard with `app` ('' = all) gets it. */
  broadcast(payload: string, app: string): void {
    this.bcast.push(this.payload(payload, app));
  }

  add(card: string, payload: string, app: string): void {
    this.payload(payload, app);
    let k = this.index.get(card);
    if (k === undefined) {
      k = this.cards.length;
      this.index.set(card, k);
      this.cards.push(card);
      this.counts.push(0);
    }
    this.counts[k]!++;
    this.dCard.push(k);
    this.dMsg.push(this.current);
  }

  /** The message being routed is sampled for latency: its accept time (epoch ms). Ignored if it has no recipient here. */
  sample(at: number): void {
    if (this.current !== -1) (this.samples ??= []).push(this.current, at);
  }

  /** The frame, with its payload bytes in one buffer to transfer. */
  build(seq: number): DeliverBatch {
    const { payloads, cards, counts, dCard, dMsg } = this;
    const ends = new Uint32Array(payloads.length);
    let size = 0;
    for (let i = 0; i < payloads.length; i++) {
      size += Buffer.byteLength(payloads[i]!, 'utf8');
      ends[i] = size;
    }
    const bytes = new Uint8Array(size);
    let off = 0;
    for (let i = 0; i < payloads.length; i++) off += utf8.encodeInto(payloads[i]!, bytes.subarray(off)).written;

    // Counting sort of the deliveries by card, stable: push order within a card.
    const offs = new Uint32Array(cards.length + 1);
    for (let k = 0; k < cards.length; k++) offs[k + 1] = offs[k]! + counts[k]!;
    const fill = offs.slice(0, cards.length);
    const msgs = new Uint32Array(dMsg.length);
    for (let d = 0; d < dMsg.length; d++) msgs[fill[dCard[d]!]!++] = dMsg[d]!;

    const bcast = this.bcast.length > 0 ? Uint32Array.from(this.bcast) : null;
    const samples = this.samples === null ? null : Float64Array.from(this.samples);
    return { t: F_DELIVER, seq, buf: bytes.buffer, ends, apps: this.apps, cards, offs, msgs, samples, bcast };
  }
}
