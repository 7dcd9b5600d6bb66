// Wires a Registry (and optionally a Delivery) to peer ports through the
// shard's own Inbox, and finds card_ids owned by a given shard.

import type { MessagePort } from 'node:worker_threads';
import { ownerOf } from '../../shared/hash';
import type { Registry } from '../../workers/shard/registry';
import { Delivery } from '../../workers/shard/delivery';
import { Inbox } from '../../workers/shard/inbox';
import { shardCounters } from '../../shared/counters';

/** Attaches `port` as the port to `peer`, dispatching its frames as the shard thread does (workers/shard/inbox.ts). */
export function attachPeer(registry: Registry, peer: number, port: MessagePort, delivery?: Delivery): void {
  const inbox = new Inbox(registry, delivery ?? new Delivery(registry, shardCounters()), { firstSeq: 0, processors: [], peers: [], gaps: [] });
  inbox.attachPeer(peer, port);
}

/** The `n`-th card_id (with `prefix`) that shard `owner` of `shards` owns. */
export function cardOf(owner: number, shards: number, prefix = 'card', n = 0): string {
  for (let i = 0; ; i++) {
    const card = `${prefix}-${i}`;
    if (ownerOf(card, shards) === owner && n-- === 0) return card;
  }
}
