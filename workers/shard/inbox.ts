// What reaches a shard from the other threads, routed to its parts: batches
// and skips from the processors (in task order, through the sequencer),
// forwards and member counts from the other shards, and the start gates of a
// restarted shard. Runs in a shard thread; the unit tests wire it to ports too.

import type { MessagePort } from 'node:worker_threads';
import { F_DELIVER, F_FORWARD, F_FORWARD_ACK, F_MEMBERS, F_MEMBERS_ACK, F_REPLAY_END, F_SKIP, type PeerFrame, type ProcessorFrame } from '../../shared/frames';
import type { Registry } from './registry';
import type { Delivery } from './delivery';
import { Sequencer } from './sequencer';

export class Inbox {
  readonly sequencer: Sequencer;
  /**
   * A restarted shard delivers nothing until the processors it was started
   * with re-sent what its previous incarnation never acknowledged, and the
   * peers it was started with told it their members (see sequencer.ts).
   */
  private readonly expectedProcessors: Set<number>;
  private readonly expectedPeers: Set<number>;
  /** Set while the shard shuts down or crashes: frames are ignored. */
  stopped = false;

  /** `membersChanged`: called after the peers' member counts changed the registry (the shard's gauges follow it). */
  constructor(
    private readonly registry: Registry,
    private readonly delivery: Delivery,
    start: { readonly firstSeq: number; readonly processors: readonly number[]; readonly peers: readonly number[]; readonly gaps: readonly number[] },
    private readonly membersChanged: () => void = () => {},
  ) {
    this.expectedProcessors = new Set(start.processors);
    this.expectedPeers = new Set(start.peers);
    this.sequencer = new Sequencer(start.firstSeq, this.expectedProcessors.size + this.expectedPeers.size, (batch, from) => delivery.deliver(batch, from));
    for (const seq of start.gaps) this.sequencer.gap(seq);
  }

  /** A port from processor `slot`: its batches and skips in, acks out. */
  attachProcessor(slot: number, port: MessagePort): void {
    port.on('message', (frame: ProcessorFrame) => this.fromProcessor(slot, port, frame));
    // A processor thread that died will send nothing more, ReplayEnd included.
    port.on('close', () => this.processorReady(slot));
  }

  /** A port to shard `peer`: forwards and member counts both ways; ours go out now (a sync). */
  attachPeer(peer: number, port: MessagePort): void {
    port.on('message', (frame: PeerFrame) => this.fromPeer(peer, port, frame));
    this.registry.attachPeer(peer, port);
  }

  /** Shard `peer` died: its members and what it had not acknowledged are gone with it. */
  peerGone(peer: number): void {
    this.registry.dropPeer(peer);
    this.delivery.peerGone(peer);
    this.membersChanged();
    this.peerReady(peer);
  }

  private fromProcessor(slot: number, port: MessagePort, frame: ProcessorFrame): void {
    if (this.stopped) return;
    switch (frame.t) {
      case F_DELIVER:
        this.sequencer.push(frame.seq, frame, port);
        return;
      case F_SKIP:
        this.sequencer.push(frame.seq, null, port);
        return;
      case F_REPLAY_END:
        this.processorReady(slot);
    }
  }

  private fromPeer(peer: number, port: MessagePort, frame: PeerFrame): void {
    if (this.stopped) return;
    switch (frame.t) {
      case F_FORWARD:
        this.delivery.forwarded(frame, port);
        return;
      case F_FORWARD_ACK:
        this.delivery.forwardAcked(frame.id);
        return;
      case F_MEMBERS:
        this.registry.applyMembers(peer, frame);
        this.membersChanged();
        if (frame.sync) this.peerReady(peer);
        return;
      case F_MEMBERS_ACK:
        this.registry.membersAcked(peer, frame);
    }
  }

  private processorReady(slot: number): void {
    if (this.expectedProcessors.delete(slot)) this.sequencer.openGate();
  }

  private peerReady(peer: number): void {
    if (this.expectedPeers.delete(peer)) this.sequencer.openGate();
  }
}
