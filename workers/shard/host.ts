// Starts, watches and stops the shard threads (main thread side). A shard that
// dies is started again; the others keep serving. Ports between threads come
// from the Mesh, answers to questions go to ShardQueries.

import { Worker } from 'node:worker_threads';
import type { Config } from '../../src/config/schema';
import type { Mesh } from '../../src/mesh';
import type { Logger } from '../../shared/log';
import { once } from '../../shared/lifecycle';
import type { MainToShard, ShardInit, ShardLimits, ShardToMain } from '../../shared/frames';
import { ConnCounters } from '../../shared/conn-counters';
import type { Secrets } from '../../src/secrets';
import { S_HEARTBEAT, SHARD_GAUGES, shardCounters, shardStats, type ShardStats } from '../../shared/counters';
import { ShardQueries } from './host-queries';

const STOP_TIMEOUT_MS = 10_000;
const RESTART_DELAY_MS = 100;
const ENTRY = require.resolve('./worker');
/** A shard whose heartbeat is older than this is not ready (its event loop is stuck). */
const HEARTBEAT_STALE_MS = 5_000;

interface Slot {
  worker: Worker | null;
  /** Listening (said 'ready') and not exited since. */
  ready: boolean;
  /** Generation: a restart makes stale 'exit' events recognisable. */
  gen: number;
  restarts: number;
  /** The shard's counters (shared/counters.ts): kept across restarts. */
  readonly counters: Float64Array;
}

export class ShardHost {
  private readonly slots: Slot[];
  private stopping = false;
  readonly queries: ShardQueries;
  /** Every shard's connection counts by address, shared (shared/conn-counters.ts). */
  private readonly connCounters: SharedArrayBuffer;
  private readonly limits: ShardLimits;

  constructor(private readonly config: Config, private readonly mesh: Mesh, private readonly log: Logger, private readonly secrets: Secrets) {
    const s = config.server;
    this.slots = Array.from({ length: s.shards }, () => ({ worker: null, ready: false, gen: 0, restarts: 0, counters: shardCounters() }));
    this.connCounters = ConnCounters.create(s.shards);
    this.limits = {
      maxConnections: s.max_connections, maxPerAddress: s.max_connections_per_address, allowedOrigins: s.allowed_origins,
      trustedProxies: s.trusted_proxies, joinRate: s.max_joins_per_second,
    };
    this.queries = new ShardQueries(this.slots.length, (i) => this.slots[i]!.worker);
  }

  get count(): number {
    return this.slots.length;
  }

  /** Starts every shard; resolves when all listen, rejects if one can't. */
  async start(): Promise<void> {
    await Promise.all(this.slots.map((_, i) => this.spawn(i)));
  }

  private spawn(index: number): Promise<void> {
    const s = this.config.server;
    const place = this.mesh.placeFor(index);
    const slot = this.slots[index]!;
    const init: ShardInit = {
      index, shards: this.slots.length, host: s.host, wsPort: s.ws_port, maxPayload: s.max_payload,
      idleTimeout: s.idle_timeout, maxBackpressure: s.max_backpressure, maxIdLength: this.config.push.max_id_length,
      logLevel: this.config.log.level, logFormat: this.config.log.format, counters: slot.counters.buffer as SharedArrayBuffer,
      connCounters: this.connCounters, limits: this.limits, joinAuth: this.secrets.joinAuth,
      tls: this.secrets.tls !== null ? { cert: this.secrets.tls.certFile, key: this.secrets.tls.keyFile } : null, ...place,
      history: { size: this.config.history.size, ttlMs: this.config.history.ttl * 1000, maxBytes: this.config.history.max_bytes },
    };
    const gen = ++slot.gen;
    const worker = new Worker(ENTRY, { workerData: init, name: `shard-${index}` });
    slot.worker = worker;
    // Before the shard's first turn, so it never routes without its ports.
    this.mesh.addShard(index, worker, place);

    return new Promise((resolve, reject) => {
      worker.on('message', (msg: ShardToMain) => {
        switch (msg.t) {
          case 'ready':
            slot.ready = true;
            resolve();
            return;
          case 'listen-failed':
            reject(new Error(`shard ${index} could not listen on ${s.host}:${s.ws_port}`));
            return;
          case 'reply':
            this.queries.answered(msg.id, msg.value);
            return;
          case 'fatal':
            this.log.error('shard crashed', { shard: index, error: msg.message });
            return;
        }
      });
      worker.on('error', (err) => {
        // Only reached if the shard's own uncaughtException handler failed.
        this.log.error('shard error', { shard: index, error: err.message });
      });
      worker.on('exit', (code) => {
        if (slot.gen !== gen) return;
        slot.worker = null;
        slot.ready = false;
        // Its connections and groups are gone; its counters count on in the next one.
        for (const g of SHARD_GAUGES) slot.counters[g] = 0;
        this.mesh.removeShard(index, !this.stopping);
        reject(new Error(`shard ${index} exited during start (code ${code})`));
        if (this.stopping) return;
        slot.restarts++;
        this.log.warn('shard exited; restarting', { shard: index, exitCode: code, restarts: slot.restarts });
        setTimeout(() => {
          if (this.stopping) return;
          this.spawn(index).catch((err: Error) => this.log.error('shard restart failed', { shard: index, error: err.message }));
        }, RESTART_DELAY_MS).unref();
      });
    });
  }

  private send(worker: Worker, msg: MainToShard): void {
    worker.postMessage(msg);
  }

  /** Debug hook: makes a shard throw an uncaught exception. */
  crash(shard: number): boolean {
    const worker = this.slots[shard]?.worker;
    if (worker == null) return false;
    this.send(worker, { t: 'crash' });
    return true;
  }

  restarts(): number[] {
    return this.slots.map((s) => s.restarts);
  }

  /** Per-shard numbers, read from the shards' counters (no thread round trip). */
  stats(): ShardStats[] {
    return this.slots.map((s) => shardStats(s.counters));
  }

  /** Every shard's counters, by index. */
  counters(): readonly Float64Array[] {
    return this.slots.map((s) => s.counters);
  }

  /** Why shard `index` can't serve now, or null when it can. */
  notReady(index: number, now = Date.now()): string | null {
    const slot = this.slots[index]!;
    if (!slot.ready) return slot.restarts > 0 ? 'restarting' : 'starting';
    const age = now - slot.counters[S_HEARTBEAT]!;
    return age > HEARTBEAT_STALE_MS ? `event loop stalled for ${Math.round(age / 1000)} s` : null;
  }

  /** Every shard closes its connections (1001) and listen socket, then its thread ends. */
  readonly close = once(async () => {
    this.stopping = true;
    await Promise.all(this.slots.map((slot) => {
      const worker = slot.worker;
      if (worker === null) return undefined;
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.log.error('shard did not stop in time', { thread: worker.threadId });
          resolve();
        }, STOP_TIMEOUT_MS);
        worker.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        this.send(worker, { t: 'shutdown' });
      });
    }));
    this.queries.close();
  });
}
