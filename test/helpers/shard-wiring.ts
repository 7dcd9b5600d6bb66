// Builds a Registry with its History and wires them (and optionally a
// Delivery) to peer ports the way workers/shard/worker.ts does, and finds
// card_ids owned by a given shard.

import type { MessagePort } from 'node:worker_threads';
import { ownerOf } from '../../shared/hash';
import { F_FORWARD, F_FORWARD_ACK, F_MEMBERS, F_MEMBERS_ACK, type HistoryLimits, type MembersUpdate, type PeerFrame } from '../../shared/frames';
import { Registry, type Confirm } from '../../workers/shard/registry';
import { History } from '../../workers/shard/history';
import type { Delivery } from '../../workers/shard/delivery';

export const TEST_HISTORY: HistoryLimits = { size: 4, ttlMs: 60_000, maxBytes: 1 << 20 };

/** A Registry and its History, as a shard thread makes them. */
export function makeRegistry(index: number, shards: number, confirm: Confirm = () => {}, limits = TEST_HISTORY): { reg: Registry; history: History } {
  const history: History = new History(limits, (card: string): boolean => reg.has(card));
  const reg: Registry = new Registry(index, shards, confirm, history);
  return { reg, history };
}

/** A peer's member update as it would send it (no recovery flags, no recoveries). */
export function update(id: number, cards: string[], counts: number[]): MembersUpdate {
  return { t: F_MEMBERS, id, sync: false, cards, counts, recover: cards.map(() => 0), seams: [] };
}

/** Attaches `port` as the port to `peer`, dispatching its frames as the shard thread does. */
export function attachPeer(registry: Registry, peer: number, port: MessagePort, delivery?: Delivery): void {
  port.on('message', (f: PeerFrame) => {
    switch (f.t) {
      case F_FORWARD:
        delivery?.forwarded(f, port);
        return;
      case F_FORWARD_ACK:
        delivery?.forwardAcked(f.id);
        return;
      case F_MEMBERS:
        registry.applyMembers(peer, f);
        return;
      case F_MEMBERS_ACK:
        registry.membersAcked(peer, f);
    }
  });
  registry.attachPeer(peer, port);
}

/** The `n`-th card_id (with `prefix`) that shard `owner` of `shards` owns. */
export function cardOf(owner: number, shards: number, prefix = 'card', n = 0): string {
  for (let i = 0; ; i++) {
    const card = `${prefix}-${i}`;
    if (ownerOf(card, shards) === owner && n-- === 0) return card;
  }
}
