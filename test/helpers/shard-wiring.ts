// Builds a Registry with its History and wires them (and optionally a
// Delivery) to peer ports through the shard's own Inbox, and finds card_ids
// owned by a given shard.

import type { MessagePort } from 'node:worker_threads';
import { ownerOf } from '../../shared/hash';
import { F_MEMBERS, type HistoryLimits, type MembersUpdate } from '../../shared/frames';
import { Registry, type Confirm } from '../../workers/shard/registry';
import { History } from '../../workers/shard/history';
import { Delivery } from '../../workers/shard/delivery';
import { Inbox } from '../../workers/shard/inbox';
import { shardCounters } from '../../shared/counters';

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

/** Attaches `port` as the port to `peer`, dispatching its frames as the shard thread does (workers/shard/inbox.ts). */
export function attachPeer(registry: Registry, peer: number, port: MessagePort, delivery?: Delivery): void {
  const inbox = new Inbox(registry, delivery ?? new Delivery(registry, shardCounters(), new History(TEST_HISTORY, () => false), () => 0), { firstSeq: 0, processors: [], peers: [], gaps: [] });
  inbox.attachPeer(peer, port);
}

/** The `n`-th card_id (with `prefix`) that shard `owner` of `shards` owns. */
export function cardOf(owner: number, shards: number, prefix = 'card', n = 0): string {
  for (let i = 0; ; i++) {
    const card = `${prefix}-${i}`;
    if (ownerOf(card, shards) === owner && n-- === 0) return card;
  }
}
