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
//
// A join with recovery carries a Seam: the owner answers it (history.ts) in
// the same step in which it applies the new member count, so the missed
// pushes it sends back end exactly where the forwards to this shard go on.
// The answer and later forwards travel on the same port, in that order;
// forwards that were already on their way when the join was made are covered
// by the answer, so the connection skips them (Delivery: SocketData.seam).

import type { MessagePort } from 'node:worker_threads';
import type { WebSocket } from 'uWebSockets.js';
import { ownerOf } from '../../shared/hash';
import { F_MEMBERS, F_MEMBERS_ACK, type MembersAck, type MembersUpdate, type SeamReply, type SeamRequest } from '../../shared/frames';
import { onceATurn } from '../../shared/once-a-turn';
import { UNKNOWN_POSITION, type History } from './history';

/** A join with recovery, waiting for (or holding) its owner's answer. */
export class Seam {
  result: SeamReply | null = null;
  constructor(readonly ws: Socket, readonly req: SeamRequest) {}
}

/** What a connection's answers wait behind: frames, and recovery answers not sent yet. */
export type Held = string | Uint8Array | Seam;

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
  /** Answers (and, for recovering connections, pushes) held back while unconfirmed > 0, in order; null otherwise. */
  held: Held[] | null;
  /** Joined with recovery: push frames carry offset and epoch. */
  recover: boolean;
  /** The current join's recovery while its owner has not answered: pushes for the card are skipped (the answer covers them). */
  seam: Seam | null;
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
  return { card: '', app: '', closed: false, slow: false, unconfirmed: 0, held: null, recover: false, seam: null, addr, token, joinBudget, joinAt: 0, verifying: false, queued: null };
}

export type Socket = WebSocket<SocketData>;

/** Confirms joins whose owner acknowledged (or can't need to). */
export type Confirm = (sockets: readonly Socket[]) => void;

/** An update sent to an owner and not acknowledged yet: the joins and recoveries it carried. */
interface Waiting {
  readonly sockets: Socket[];
  readonly seams: Seam[];
}

export class Registry {
  /** card_id -> this shard's connections in that group. */
  readonly local = new Map<string, Set<Socket>>();
  /** card_id -> how many of those joined with recovery (only cards with some). */
  readonly recovering = new Map<string, number>();
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
  /** Recoveries waiting for the next update to their owner, per owner. */
  private readonly seams: Seam[][];
  /** Updates waiting for the owner's MembersAck, per owner: update id -> what it carried. */
  private readonly unconfirmed: Map<number, Waiting>[];
  private nextId = 1;
  private readonly flushSoon = onceATurn(() => this.flush());

  constructor(readonly index: number, readonly shards: number, private readonly confirm: Confirm, private readonly history: History) {
    this.peers = new Array<MessagePort | null>(shards).fill(null);
    this.pending = new Array<Map<string, number> | null>(shards).fill(null);
    this.joining = Array.from({ length: shards }, () => []);
    this.seams = Array.from({ length: shards }, () => []);
    this.unconfirmed = Array.from({ length: shards }, () => new Map());
  }

  /** Whether an owned group has members on any shard. */
  has(card: string): boolean {
    return this.local.has(card) || this.remote.has(card);
  }

  /**
   * Adds `ws` to `card` (`seam`: its recovery, when it joined with it).
   * Returns true when the join is confirmed now, and then the seam is
   * answered too; else `confirm` is called later, after the seam's answer.
   */
  join(ws: Socket, card: string, seam: Seam | null = null): boolean {
    let set = this.local.get(card);
    const owner = ownerOf(card, this.shards);
    if (set === undefined) {
      const was = owner === this.index && this.remote.has(card);
      set = new Set();
      this.local.set(card, set);
      if (owner === this.index && !was) this.owned++;
    }
    set.add(ws);
    if (ws.getUserData().recover) this.recovering.set(card, (this.recovering.get(card) ?? 0) + 1);
    if (owner === this.index) {
      if (seam !== null) seam.result = this.history.seam(seam.req, Date.now());
      return true;
    }
    this.report(owner, card, set.size);
    if (this.peers[owner] === null) {
      if (seam !== null) seam.result = UNKNOWN_POSITION;
      return true;
    }
    this.joining[owner]!.push(ws);
    if (seam !== null) {
      this.seams[owner]!.push(seam);
      ws.getUserData().seam = seam;
    }
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
    const ud = ws.getUserData();
    if (ud.recover) {
      const n = this.recovering.get(card)! - 1;
      if (n === 0) this.recovering.delete(card);
      else this.recovering.set(card, n);
    }
    const owner = ownerOf(card, this.shards);
    if (set.size === 0) {
      this.local.delete(card);
      if (owner === this.index && !this.remote.has(card)) this.owned--;
    }
    if (owner === this.index) {
      this.history.touch(card, Date.now());
      return true;
    }
    this.report(owner, card, set.size);
    if (this.peers[owner] === null || ud.closed) return true;
    this.joining[owner]!.push(ws);
    return false;
  }

  /**
   * Applies a peer's member counts for groups this shard owns, answers its
   * recoveries, and acknowledges both in one frame. Runs between deliveries:
   * everything this shard delivered before is in the answers, everything
   * after is forwarded to the new members.
   */
  applyMembers(from: number, update: MembersUpdate): void {
    const { cards, counts, recover } = update;
    const now = Date.now();
    for (let i = 0; i < cards.length; i++) {
      const card = cards[i]!;
      this.setRemote(card, from, counts[i]!);
      if (recover[i] === 1) this.history.keep(card, now);
      else this.history.touch(card, now);
    }
    const seams = update.seams.map((req) => this.history.seam(req, now));
    const ack: MembersAck = { t: F_MEMBERS_ACK, id: update.id, seams };
    this.peers[from]?.postMessage(ack);
  }

  /** The owner `from` applied an update: its recoveries are answered and its joins confirmed. */
  membersAcked(from: number, ack: MembersAck): void {
    const waiting = this.unconfirmed[from]!;
    const w = waiting.get(ack.id);
    if (w === undefined) return;
    waiting.delete(ack.id);
    w.seams.forEach((seam, i) => answer(seam, ack.seams[i]!));
    this.confirm(w.sockets);
  }

  private setRemote(card: string, from: number, count: number): void {
    const before = this.has(card);
    let rec = this.remote.get(card);
    if (rec === undefined) {
      if (count === 0) return;
      rec = new Array<number>(this.shards).fill(0);
      this.remote.set(card, rec);
    }
    rec[from] = count;
    if (count === 0 && rec.every((n) => n === 0)) this.remote.delete(card);
    const after = this.has(card);
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
      if ((map == null || map.size === 0) && this.seams[owner]!.length === 0) continue;
      this.pending[owner] = null;
      const port = this.peers[owner];
      // Owner restarting: it gets our members when it is back (attachPeer).
      if (port == null) this.confirmAll(owner);
      else this.send(owner, port, false, map === null ? [] : [...map.keys()], map === null ? [] : [...map.values()]);
    }
  }

  private send(owner: number, port: MessagePort, sync: boolean, cards: string[], counts: number[]): void {
    const id = this.nextId++;
    const joins = this.joining[owner]!;
    const seams = this.seams[owner]!;
    if (joins.length > 0 || seams.length > 0) {
      this.unconfirmed[owner]!.set(id, { sockets: joins, seams });
      this.joining[owner] = [];
      this.seams[owner] = [];
    }
    // Flags from the members as they are now: a restarted owner learns here which cards keep a history.
    const recover = cards.map((card) => (this.recovering.has(card) ? 1 : 0));
    const frame: MembersUpdate = { t: F_MEMBERS, id, sync, cards, counts, recover, seams: seams.map((s) => s.req) };
    port.postMessage(frame);
  }

  private confirmAll(owner: number): void {
    const waiting = this.unconfirmed[owner]!;
    for (const w of waiting.values()) {
      for (const seam of w.seams) answer(seam, UNKNOWN_POSITION);
      this.confirm(w.sockets);
    }
    waiting.clear();
    for (const seam of this.seams[owner]!) answer(seam, UNKNOWN_POSITION);
    this.seams[owner] = [];
    const joins = this.joining[owner]!;
    if (joins.length > 0) {
      this.joining[owner] = [];
      this.confirm(joins);
    }
  }
}

function answer(seam: Seam, reply: SeamReply): void {
  seam.result = reply;
  const ud = seam.ws.getUserData();
  if (ud.seam === seam) ud.seam = null;
}
