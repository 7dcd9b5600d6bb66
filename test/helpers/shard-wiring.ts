// Wires a Registry (and optionally a Delivery) to peer ports the way
// workers/shard/worker.ts onPeerFrame does, and finds card_ids owned by a given shard.

import type { MessagePort } from 'node:worker_threads';
import { ownerOf } from '../../shared/hash';
import { F_FORWARD, F_FORWARD_ACK, F_MEMBERS, F_MEMBERS_ACK, type PeerFrame } from '../../shared/frames';
import type { Registry } from '../../workers/shard/registry';
import type { Delivery } from '../../workers/shard/delivery';

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
        registry.membersAcked(peer, f.id);
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
