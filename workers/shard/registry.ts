// A shard's view of the groups: its local members of every group, and, for the
// groups it owns (ownerOf(card) === index), how many members every other shard
// has. Runs inside a shard thread only.
//
// A join is confirmed ("ok") only once the group's owner knows of the new
// member: a push accepted after the ok is routed to the owner, which must
// forward it here. So a join on a shard that does not own the group waits for
// the owner's MembersAck (one thread round trip, batched per event-loop turn).
// While the owner is restarting the ok goes out at once: the restarted owner
// delivers nothing before this shard has synced its members to it.

import type { MessagePort } from 'node:worker_threads';
import type { WebSocket } from 'uWebSockets.js';
import { ownerOf } from '../../shared/hash';
import { F_MEMBERS, F_MEMBERS_ACK, type MembersAck, type MembersUpdate } from '../../shared/frames';
import { onceATurn } from '../../shared/once-a-turn';

/** Fixed-shape per-connection state kept in uWS user data. */
export interface SocketData {
  /** Group (card_id) the connection joined, '' before join. */
  card: string;
  app: string;
  /** Set in the close handler: a closed uWS socket throws when touched. */
  closed: boolean;
  /** A frame was dropped over max_backpressure: uWS closes it (counted once). */
  slow: boolean;
  /** Joins waiting for their owner's acknowledgement. */
  unconfirmed: number;
  /** "ok" answers held back until then. */
  owed: number;
  /** Sketch hash of the client address (shared/conn-counters.ts), -1 when addresses are not counted. */
  addr: number;
  /** Join token from the upgrade's ?token= ('' when none). */
  token: string;
  /** Join rate limit: joins this connection may still send now, and when that was computed (ms). */
  joinBudget: number;
  joinAt: number;
  /** A join token is being verified; frames that arrive meanwhile wait in `queued`, in order. */
  verifying: boolean;
  queued: string[] | null;
}

/** User data of a new connection (fixed shape: every field set). */
export function socketData(addr = -1, token = '', joinBudget = 0): SocketData {
  return { card: '', app: '', closed: false, slow: false, unconfirmed: 0, owed: 0, addr, token, joinBudget, joinAt: 0, verifying: false, queued: null };
}

export type Socket = WebSocket<SocketData>;

/** Confirms joins whose owner acknowledged (or can't need to). */
export type Confirm = (sockets: readonly Socket[]) => void;

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
  /** Joins (and the leaves of moving connections) waiting for the next update to their owner, per owner. */
  private readonly joining: Socket[][];
  /** Joins waiting for the owner's MembersAck, per owner: update id -> sockets. */
  private readonly unconfirmed: Map<number, Socket[]>[];
  private nextId = 1;
  private readonly flushSoon = onceATurn(() => this.flush());

  constructor(readonly index: number, readonly shards: number, private readonly confirm: Confirm) {
    this.peers = new Array<MessagePort | null>(shards).fill(null);
    this.pending = new Array<Map<string, number> | null>(shards).fill(null);
    this.joining = Array.from({ length: shards }, () => []);
    this.unconfirmed = Array.from({ length: shards }, () => new Map());
  }

  private present(card: string): boolean {
    return this.local.has(card) || this.remote.has(card);
  }

  /** Adds `ws` to `card`; returns true when the join is confirmed now, else `confirm` is called later. */
  join(ws: Socket, card: string): boolean {
    let set = this.local.get(card);
    const owner = ownerOf(card, this.shards);
    if (set === undefined) {
      const was = owner === this.index && this.remote.has(card);
      set = new Set();
      this.local.set(card, set);
      if (owner === this.index && !was) this.owned++;
    }
    set.add(ws);
    if (owner === this.index) return true;
    this.report(owner, card, set.size);
    if (this.peers[owner] === null) return true;
    this.joining[owner]!.push(ws);
    return false;
  }

  /**
   * Removes `ws` from `card`. Returns true when the owner knows at once; else
   * `confirm` is called once it applied the change (a connection that moves
   * to another group answers its join when both owners know).
   */
  leave(ws: Socket, card: string): boolean {
    const set = this.local.get(card);
    if (set === undefined || !set.delete(ws)) return true;
    const owner = ownerOf(card, this.shards);
    if (set.size === 0) {
      this.local.delete(card);
      if (owner === this.index && !this.remote.has(card)) this.owned--;
    }
    if (owner === this.index) return true;
    this.report(owner, card, set.size);
    if (this.peers[owner] === null || ws.getUserData().closed) return true;
    this.joining[owner]!.push(ws);
    return false;
  }

  /** Applies a peer's member counts for groups this shard owns, and acknowledges them. */
  applyMembers(from: number, update: MembersUpdate): void {
    const { cards, counts } = update;
    for (let i = 0; i < cards.length; i++) this.setRemote(cards[i]!, from, counts[i]!);
    const ack: MembersAck = { t: F_MEMBERS_ACK, id: update.id };
    this.peers[from]?.postMessage(ack);
  }

  /** The owner `from` applied update `id`: the joins it carried are confirmed. */
  membersAcked(from: number, id: number): void {
    const waiting = this.unconfirmed[from]!;
    const sockets = waiting.get(id);
    if (sockets === undefined) return;
    waiting.delete(id);
    this.confirm(sockets);
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

  /** A peer died: its members are gone, and joins waiting for it are confirmed (see the top). */
  dropPeer(peer: number): void {
    this.peers[peer] = null;
    this.pending[peer] = null;
    for (const card of [...this.remote.keys()]) this.setRemote(card, peer, 0);
    this.confirmAll(peer);
  }

  /** A (re)started peer: tell it our members of the groups it owns (a sync, even when empty). */
  attachPeer(peer: number, port: MessagePort): void {
    this.peers[peer]?.close();
    this.peers[peer] = port;
    this.pending[peer] = null;
    const cards: string[] = [];
    const counts: number[] = [];
    for (const [card, set] of this.local) {
      if (ownerOf(card, this.shards) === peer) {
        cards.push(card);
        counts.push(set.size);
      }
    }
    this.send(peer, port, true, cards, counts);
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
    this.flushSoon();
  }

  private flush(): void {
    for (let owner = 0; owner < this.shards; owner++) {
      const map = this.pending[owner];
      if (map == null || map.size === 0) continue;
      this.pending[owner] = null;
      const port = this.peers[owner];
      // Owner restarting: it gets our members when it is back (attachPeer).
      if (port == null) this.confirmAll(owner);
      else this.send(owner, port, false, [...map.keys()], [...map.values()]);
    }
  }

  private send(owner: number, port: MessagePort, sync: boolean, cards: string[], counts: number[]): void {
    const id = this.nextId++;
    const joins = this.joining[owner]!;
    if (joins.length > 0) {
      this.unconfirmed[owner]!.set(id, joins);
      this.joining[owner] = [];
    }
    const frame: MembersUpdate = { t: F_MEMBERS, id, sync, cards, counts };
    port.postMessage(frame);
  }

  private confirmAll(owner: number): void {
    const waiting = this.unconfirmed[owner]!;
    for (const sockets of waiting.values()) this.confirm(sockets);
    waiting.clear();
    const joins = this.joining[owner]!;
    if (joins.length > 0) {
      this.joining[owner] = [];
      this.confirm(joins);
    }
  }
}
