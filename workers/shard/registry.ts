// A shard's view of the groups: its local members of every group, and, for the
// groups it owns (ownerOf(card) === index), how many members every other shard
// has. Runs inside a shard thread only.

import type { MessagePort } from 'node:worker_threads';
import type { WebSocket } from 'uWebSockets.js';
import { ownerOf } from '../../src/shared/hash';
import { F_MEMBERS, type MembersUpdate } from '../../src/shared/frames';

/** Fixed-shape per-connection state kept in uWS user data. */
export interface SocketData {
  /** Group (card_id) the connection joined, '' before join. */
  card: string;
  app: string;
  /** Set in the close handler: a closed uWS socket throws when touched. */
  closed: boolean;
}

export type Socket = WebSocket<SocketData>;

export class Registry {
  /** card_id -> this shard's connections in that group. */
  readonly local = new Map<string, Set<Socket>>();
  /** For owned groups with members elsewhere: card_id -> members per shard (own slot unused). */
  readonly remote = new Map<string, number[]>();
  /** Owned groups with at least one member anywhere. */
  owned = 0;

  /** Ports to the other shards, by index (null for self or while a peer restarts). */
  readonly peers: (MessagePort | null)[];
  /** Member counts waiting to be sent, per owner: card_id -> local count. */
  private readonly pending: (Map<string, number> | null)[];
  private flushScheduled = false;

  constructor(readonly index: number, readonly shards: number) {
    this.peers = new Array<MessagePort | null>(shards).fill(null);
    this.pending = new Array<Map<string, number> | null>(shards).fill(null);
  }

  private present(card: string): boolean {
    return this.local.has(card) || this.remote.has(card);
  }

  join(ws: Socket, card: string): void {
    let set = this.local.get(card);
    const owner = ownerOf(card, this.shards);
    if (set === undefined) {
      const was = owner === this.index && this.remote.has(card);
      set = new Set();
      this.local.set(card, set);
      if (owner === this.index && !was) this.owned++;
    }
    set.add(ws);
    if (owner !== this.index) this.report(owner, card, set.size);
  }

  leave(ws: Socket, card: string): void {
    const set = this.local.get(card);
    if (set === undefined || !set.delete(ws)) return;
    const owner = ownerOf(card, this.shards);
    if (set.size === 0) {
      this.local.delete(card);
      if (owner === this.index && !this.remote.has(card)) this.owned--;
    }
    if (owner !== this.index) this.report(owner, card, set.size);
  }

  /** Applies a peer's member counts for groups this shard owns. */
  applyMembers(from: number, update: MembersUpdate): void {
    const { cards, counts } = update;
    for (let i = 0; i < cards.length; i++) this.setRemote(cards[i]!, from, counts[i]!);
  }

  private setRemote(card: string, from: number, count: number): void {
    const before = this.present(card);
    let rec = this.remote.get(card);
    if (rec === undefined) {
      if (count === 0) return;
      rec = new Array<number>(this.shards).fill(0);
      this.remote.set(card, rec);
    }
    rec[from] = count;
    if (count === 0 && rec.every((n) => n === 0)) this.remote.delete(card);
    const after = this.present(card);
    if (before !== after) this.owned += after ? 1 : -1;
  }

  /** A peer died: its members are gone. */
  dropPeer(peer: number): void {
    this.peers[peer] = null;
    this.pending[peer] = null;
    for (const card of [...this.remote.keys()]) this.setRemote(card, peer, 0);
  }

  /** A (re)started peer owns groups we have members of: tell it how many. */
  announceTo(peer: number): void {
    for (const [card, set] of this.local) {
      if (ownerOf(card, this.shards) === peer) this.report(peer, card, set.size);
    }
  }

  /** Members of an owned group across all shards (-1: no such group). */
  groupSize(card: string): number {
    const rec = this.remote.get(card);
    const local = this.local.get(card)?.size ?? 0;
    if (rec === undefined) return local === 0 ? -1 : local;
    let total = local;
    for (let i = 0; i < rec.length; i++) total += rec[i]!;
    return total;
  }

  // Member counts are batched per event-loop turn: a burst of joins costs one
  // message per owner, not one per connection.
  private report(owner: number, card: string, count: number): void {
    let map = this.pending[owner];
    if (map == null) this.pending[owner] = map = new Map();
    map.set(card, count);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(flushRegistry, this);
    }
  }

  flush(): void {
    this.flushScheduled = false;
    for (let owner = 0; owner < this.shards; owner++) {
      const map = this.pending[owner];
      const port = this.peers[owner];
      if (map == null || map.size === 0) continue;
      this.pending[owner] = null;
      if (port == null) continue; // owner restarting: it gets announceTo() when back
      const frame: MembersUpdate = { t: F_MEMBERS, cards: [...map.keys()], counts: [...map.values()] };
      port.postMessage(frame);
    }
  }
}

function flushRegistry(registry: Registry): void {
  registry.flush();
}
