// The MessagePorts between the threads (main thread side): a port between
// every pair of shards, and between every processor and every shard, made
// when a thread starts and handed to both ends before their first turn. Also
// the numbers no shard may wait for (gaps), which a shard started later must
// hear of too.

import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import type { MainToProcessor, MainToShard, ShardInit } from '../shared/frames';

/** Gap numbers remembered for shards started later (a few per failed task or dead processor). */
const MAX_GAPS = 65_536;

/** What a shard needs to know at start about the threads already running. */
export type Place = Pick<ShardInit, 'firstSeq' | 'processors' | 'peers' | 'gaps'>;

export class Mesh {
  private readonly shards: (Worker | null)[];
  /** Processor threads' control ports, with their slots. */
  private readonly processors = new Map<MessagePort, number>();
  private gaps: number[] = [];

  /** `firstSeq()`: where a shard started now begins delivering in order (the oldest task not finished). */
  constructor(shards: number, private readonly firstSeq: () => number) {
    this.shards = new Array<Worker | null>(shards).fill(null);
  }

  /** The ShardInit fields of shard `index`, starting now. */
  placeFor(index: number): Place {
    const firstSeq = this.firstSeq();
    return {
      firstSeq,
      processors: [...this.processors.values()],
      peers: this.shards.flatMap((w, j) => (j !== index && w !== null ? [j] : [])),
      gaps: this.gaps.filter((seq) => seq >= firstSeq),
    };
  }

  /** Shard `index` was just created with `place`: ports to its peers and to every processor. */
  addShard(index: number, worker: Worker, place: Place): void {
    this.shards[index] = worker;
    for (const j of place.peers) {
      const { port1, port2 } = new MessageChannel();
      send(this.shards[j]!, { t: 'attach', kind: 'shard', peer: index, port: port1 }, [port1]);
      send(worker, { t: 'attach', kind: 'shard', peer: j, port: port2 }, [port2]);
    }
    for (const [control, slot] of this.processors) link(control, slot, index, worker, place.firstSeq);
  }

  /** Shard `index` died: its connections are gone, so the owners forget its members now. */
  removeShard(index: number, restarting: boolean): void {
    this.shards[index] = null;
    if (!restarting) return;
    for (const w of this.shards) if (w !== null) send(w, { t: 'peer-reset', peer: index });
  }

  /**
   * A processor thread started: a port to every shard, now and after
   * restarts. Linked from task 0: it re-sends a skip for any task it numbered
   * before its ports arrived.
   */
  addProcessor(control: MessagePort, slot: number): void {
    this.processors.set(control, slot);
    this.shards.forEach((w, i) => {
      if (w !== null) link(control, slot, i, w, 0);
    });
  }

  removeProcessor(control: MessagePort): void {
    this.processors.delete(control);
  }

  /** These tasks will send nothing more (they failed, or their processor died): no shard waits for them. */
  gap(seqs: readonly number[]): void {
    this.gaps.push(...seqs);
    if (this.gaps.length > MAX_GAPS) this.gaps = this.gaps.slice(-MAX_GAPS / 2);
    for (const w of this.shards) if (w !== null) send(w, { t: 'gap', seqs });
  }
}

function send(worker: Worker, msg: MainToShard, transfer?: MessagePort[]): void {
  worker.postMessage(msg, transfer);
}

/** `firstSeq`: the processor re-sends what the shard needs from there on (see workers/processor/shard-links.ts). */
function link(control: MessagePort, slot: number, shard: number, worker: Worker, firstSeq: number): void {
  const { port1, port2 } = new MessageChannel();
  const toProcessor: MainToProcessor = { t: 'shard-port', shard, port: port1, firstSeq };
  control.postMessage(toProcessor, [port1]);
  send(worker, { t: 'attach', kind: 'processor', peer: slot, port: port2 }, [port2]);
}
