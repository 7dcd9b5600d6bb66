// Questions to the shard threads and their answers (main thread side): the
// type of the answer follows from the question (ShardQueries in
// shared/frames.ts). A shard that does not answer in time is a 504.

import type { Worker } from 'node:worker_threads';
import type { MainToShard, ShardAnswer, ShardQuery, ShardQueryKind } from '../../shared/frames';
import { PushError } from '../../shared/errors';

const QUERY_TIMEOUT_MS = 5_000;

interface Pending {
  resolve(value: ShardAnswer<ShardQueryKind>): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class ShardQueries {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  /** `worker(i)`: shard i's thread, or null while it restarts. */
  constructor(readonly shards: number, private readonly worker: (index: number) => Worker | null) {}

  /** Asks one shard; rejects with PUSH_ERR_TIMEOUT if it does not answer in time. */
  ask<K extends ShardQueryKind>(shard: number, q: ShardQuery<K>): Promise<ShardAnswer<K>> {
    const worker = this.worker(shard);
    if (worker === null || this.closed) return Promise.reject(new PushError('PUSH_ERR_TIMEOUT', `shard ${shard} is restarting`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new PushError('PUSH_ERR_TIMEOUT'));
      }, QUERY_TIMEOUT_MS);
      this.pending.set(id, { resolve: resolve as Pending['resolve'], reject, timer });
      const msg = { t: 'query', id, ...q } as MainToShard;
      worker.postMessage(msg);
    });
  }

  /** A shard's answer to question `id`. */
  answered(id: number, value: ShardAnswer<ShardQueryKind>): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(value);
  }

  /** Questions still open fail with PUSH_ERR_SHUTTING_DOWN. */
  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new PushError('PUSH_ERR_SHUTTING_DOWN'));
    }
    this.pending.clear();
  }
}
