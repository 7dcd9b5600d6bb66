// Delivers batches to this shard's members, and, for the groups this shard
// owns, forwards them to the shards holding the other members. A processor's
// batch is acknowledged only once those shards acknowledged their forwards, so
// the processors' backpressure covers the peers' queues too. Runs in a shard
// thread.
//
// For groups with a history (history.ts) the owner numbers the pushes before
// it writes or forwards them, and the forwards carry those positions:
// members that joined with recovery get each push with its offset and epoch
// (rendered once per push and group, only where such members are), everyone
// else the very bytes the processor rendered.

import type { MessagePort } from 'node:worker_threads';
import { F_ACK, F_FORWARD, F_FORWARD_ACK, type AckFrame, type DeliverBatch, type ForwardAck, type ForwardBatch, type Payloads, type Positions } from '../../shared/frames';
import { S_DELIVERED, S_DROPPED, S_LATENCY, S_SLOW_CLOSED, S_UNDELIVERED } from '../../shared/counters';
import { positioned } from '../../shared/payload';
import type { History } from './history';
import type { Registry, Socket, SocketData } from './registry';

/** Sends a broadcast payload to this shard's joined connections of an app ('' = all); returns how many. */
export type Publish = (payload: Uint8Array, app: string) => number;

// The batch being delivered, for sendRun(): ws.cork() takes a callback, and a
// module-level one with module-level arguments costs no closure per socket.
let runWs: Socket;
let runBatch: Payloads;
let runViews: (Uint8Array | undefined)[];
let runFrom = 0;
let runTo = 0;
let runCounters: Float64Array;
/** Offset of the run's first push, 0 when its group keeps no history here; then its epoch and positioned frames (made on first use). */
let runFirst = 0;
let runEpoch = '';
let runPositioned: (Buffer | undefined)[] = [];

function view(m: number): Uint8Array {
  let v = runViews[m];
  if (v === undefined) {
    const { buf, ends } = runBatch;
    const start = m === 0 ? 0 : ends[m - 1]!;
    v = runViews[m] = new Uint8Array(buf, start, ends[m]! - start);
  }
  return v;
}

/** Sends one group's run of payloads to runWs; inside ws.cork(), one write for all. */
function sendRun(): void {
  const ws = runWs;
  const { msgs, apps } = runBatch;
  const ud = ws.getUserData();
  if (ud.recover) {
    sendRecovering(ud);
    return;
  }
  const app = ud.app;
  const c = runCounters;
  for (let i = runFrom; i < runTo; i++) {
    const m = msgs[i]!;
    const want = apps[m]!;
    if (want !== '' && want !== app) continue;
    count(ud, c, ws.send(view(m), false, false));
  }
}

/**
 * Counts one send's outcome: 1 sent, 0 buffered (backpressure building), 2
 * dropped over max_backpressure (uWS then closes the socket:
 * closeOnBackpressureLimit).
 */
function count(ud: SocketData, c: Float64Array, result: number): void {
  if (result !== 2) c[S_DELIVERED]!++;
  else {
    c[S_DROPPED]!++;
    if (!ud.slow) {
      ud.slow = true;
      c[S_SLOW_CLOSED]!++;
    }
  }
}

function positionedFrame(i: number): Buffer {
  const k = i - runFrom;
  return runPositioned[k] ??= positioned(view(runBatch.msgs[i]!), runFirst + k, runEpoch);
}

/**
 * sendRun for a connection that joined with recovery: frames with their
 * positions, skipped while its join's recovery answer is on its way (that
 * answer holds them), queued behind answers still held back.
 */
function sendRecovering(ud: SocketData): void {
  if (ud.seam !== null) return;
  const ws = runWs;
  const { msgs, apps } = runBatch;
  const c = runCounters;
  for (let i = runFrom; i < runTo; i++) {
    const m = msgs[i]!;
    const want = apps[m]!;
    if (want !== '' && want !== ud.app) continue;
    const frame = runFirst > 0 ? positionedFrame(i) : view(m);
    if (ud.held !== null) {
      ud.held.push(frame);
      c[S_DELIVERED]!++;
    } else count(ud, c, ws.send(frame, false, false));
  }
}

/** A processor's batch waiting for the forwards it caused. */
interface Task {
  readonly seq: number;
  readonly from: MessagePort;
  remaining: number;
}

interface Forward {
  readonly task: Task;
  readonly peer: number;
}

export class Delivery {
  /** Per peer shard: indexes (into the batch's cards) of groups to forward there; reused across batches. */
  private readonly forwards: number[][];
  /** Forwards sent and not acknowledged yet, by id. */
  private readonly unacked = new Map<number, Forward>();
  private nextId = 1;

  /** `counters`: this shard's buffer (shared/counters.ts). */
  constructor(private readonly registry: Registry, readonly counters: Float64Array, private readonly history: History, private readonly publish: Publish) {
    this.forwards = Array.from({ length: registry.shards }, () => []);
  }

  /** A processor's batch for groups this shard owns (and broadcasts): acknowledged on `from` once delivered everywhere. */
  deliver(batch: DeliverBatch, from: MessagePort): void {
    const task: Task = { seq: batch.seq, from, remaining: 0 };
    const pos = batch.cards.length > 0 ? this.history.record(batch, Date.now()) : null;
    if (this.write(batch, true, pos)) this.forward(batch, task, pos);
    if (batch.bcast !== null) this.broadcast(batch, batch.bcast);
    if (task.remaining === 0) ack(task);
  }

  /** An owner's forward: deliver to our members, then acknowledge on the owner's port. */
  forwarded(batch: ForwardBatch, owner: MessagePort): void {
    this.write(batch, false, batch.pos);
    const frame: ForwardAck = { t: F_FORWARD_ACK, id: batch.id };
    owner.postMessage(frame);
  }

  forwardAcked(id: number): void {
    const f = this.unacked.get(id);
    if (f === undefined) return;
    this.unacked.delete(id);
    if (--f.task.remaining === 0) ack(f.task);
  }

  /** A peer died: its members are gone with it, so what it had not acknowledged counts as done. */
  peerGone(peer: number): void {
    for (const [id, f] of this.unacked) if (f.peer === peer) this.forwardAcked(id);
  }

  /** Broadcast payloads to this shard's joined connections, in push order. */
  private broadcast(batch: DeliverBatch, bcast: Uint32Array): void {
    const { buf, ends, apps } = batch;
    for (let i = 0; i < bcast.length; i++) {
      const m = bcast[i]!;
      const start = m === 0 ? 0 : ends[m - 1]!;
      this.counters[S_DELIVERED]! += this.publish(new Uint8Array(buf, start, ends[m]! - start), apps[m]!);
    }
  }

  /** Writes to local members; for owned groups, notes which peers hold the rest. Returns true if any must be forwarded. */
  private write(batch: Payloads, owner: boolean, pos: Positions | null): boolean {
    const { cards, offs, msgs, samples } = batch;
    const { local, remote, recovering } = this.registry;
    let forwarding = false;
    runBatch = batch;
    runViews = new Array(batch.ends.length);
    runCounters = this.counters;
    // Sampled payloads (see Payloads.samples): 1 marks one, 2 one written here.
    const marks = samples === null ? null : sampleMarks(samples, batch.ends.length);

    for (let k = 0; k < cards.length; k++) {
      const card = cards[k]!;
      const set = local.get(card);
      if (set !== undefined) {
        runFrom = offs[k]!;
        runTo = offs[k + 1]!;
        runFirst = 0;
        if (pos !== null && pos.first[k]! > 0 && recovering.has(card)) {
          runFirst = pos.first[k]!;
          runEpoch = pos.epochs[k]!;
          runPositioned = [];
        }
        const several = runTo - runFrom > 1;
        for (const ws of set) {
          runWs = ws;
          if (several) ws.cork(sendRun);
          else sendRun();
        }
        if (marks !== null) for (let i = runFrom; i < runTo; i++) if (marks[msgs[i]!] === 1) marks[msgs[i]!] = 2;
      }
      if (!owner) continue;
      const rec = remote.get(card);
      if (rec !== undefined) {
        for (let s = 0; s < rec.length; s++) {
          if (rec[s]! > 0) {
            this.forwards[s]!.push(k);
            forwarding = true;
          }
        }
      } else if (set === undefined) {
        this.counters[S_UNDELIVERED]! += offs[k + 1]! - offs[k]!;
      }
    }
    if (marks !== null) this.observeLatency(samples!, marks);
    return forwarding;
  }

  /** Push latency of the sampled payloads written here: accepted (queue or nsqd) to written. */
  private observeLatency(samples: Float64Array, marks: Uint8Array): void {
    const now = performance.timeOrigin + performance.now();
    for (let j = 0; j < samples.length; j += 2) {
      if (marks[samples[j]!] === 2) S_LATENCY.observe(this.counters, Math.max(0, now - samples[j + 1]!) / 1000);
    }
  }

  /** Sends each peer the groups it holds members of, as a batch of its own. */
  private forward(batch: DeliverBatch, task: Task, pos: Positions | null): void {
    const { peers } = this.registry;
    for (let s = 0; s < peers.length; s++) {
      const list = this.forwards[s]!;
      if (list.length === 0) continue;
      const port = peers[s];
      if (port != null) {
        const cards: string[] = new Array(list.length);
        const offs = new Uint32Array(list.length + 1);
        for (let i = 0; i < list.length; i++) {
          const k = list[i]!;
          cards[i] = batch.cards[k]!;
          offs[i + 1] = offs[i]! + batch.offs[k + 1]! - batch.offs[k]!;
        }
        const msgs = new Uint32Array(offs[list.length]!);
        for (let i = 0; i < list.length; i++) {
          const k = list[i]!;
          msgs.set(batch.msgs.subarray(batch.offs[k]!, batch.offs[k + 1]!), offs[i]!);
        }
        const id = this.nextId++;
        this.unacked.set(id, { task, peer: s });
        task.remaining++;
        const buf = batch.buf.slice(0);
        const frame: ForwardBatch = {
          t: F_FORWARD, id, buf, ends: batch.ends, apps: batch.apps, cards, offs, msgs, samples: batch.samples, pos: pick(pos, list),
        };
        port.postMessage(frame, [buf]);
      }
      list.length = 0;
    }
  }
}

/** The positions of the listed cards (indexes into the batch), or null when none of them keeps a history. */
function pick(pos: Positions | null, list: readonly number[]): Positions | null {
  if (pos === null) return null;
  const first = new Float64Array(list.length);
  const epochs: string[] = new Array(list.length);
  let any = false;
  for (let i = 0; i < list.length; i++) {
    const k = list[i]!;
    first[i] = pos.first[k]!;
    epochs[i] = pos.epochs[k]!;
    if (first[i]! > 0) any = true;
  }
  return any ? { first, epochs } : null;
}

function sampleMarks(samples: Float64Array, payloads: number): Uint8Array {
  const marks = new Uint8Array(payloads);
  for (let j = 0; j < samples.length; j += 2) marks[samples[j]!] = 1;
  return marks;
}

function ack(task: Task): void {
  const frame: AckFrame = { t: F_ACK, seq: task.seq };
  task.from.postMessage(frame);
}
