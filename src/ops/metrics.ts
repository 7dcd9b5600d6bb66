// GET /metrics: one prom-client registry on the main thread. The shard and
// processor threads count in SharedArrayBuffers (shared/counters.ts) that are
// read here at scrape time; main-thread numbers (queue, HTTP and gRPC errors)
// are plain fields read the same way. Nothing here runs per push.
//
// The thread-aggregated metrics are registered as objects with prom-client's
// metric shape (name, help, type, get()): its Counter and Histogram classes can
// only be incremented, not set to a total counted elsewhere. prom-client is
// pinned exactly; test/metrics.test.ts checks the output with promtool.

import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { S_CLIENTS, S_DELIVERED, S_DROPPED, S_GROUPS, S_HISTORY_BYTES, S_HISTORY_CARDS, S_JOINS, S_LATENCY, S_SLOW_CLOSED, S_UNDELIVERED, S_UPGRADES_REFUSED, S_WS_ERRORS, UPGRADE_CODES, WS_CODES, P_BATCH_SIZE, P_BATCHES, P_MESSAGES, P_REQUEUED, P_ROUTED, P_UNDECODABLE, type HistogramSlots } from '../../shared/counters';
import type { QueueStats } from '../queue/queue';

/** What the metrics are read from, at scrape time. */
export interface MetricSources {
  readonly version: string;
  readonly driver: string;
  /** Per shard: its counters, and whether it serves now. */
  shardCounters(): readonly Float64Array[];
  shardUp(index: number): boolean;
  shardRestarts(): readonly number[];
  /** Processor counter regions (every slot, and the main thread's). */
  processorRegions(): readonly Float64Array[];
  /** Live processor threads; `connected`: of those, the ones with an nsqd consumer connection. */
  processorThreads(): { live: number; connected: number };
  /** The queue's numbers (with NSQ, in flight as the processors count it). */
  queue(): QueueStats;
  httpErrors: ReadonlyMap<string, number>;
  grpcErrors: ReadonlyMap<string, number>;
}

type Labels = Record<string, string | number>;

interface Sample {
  readonly value: number;
  readonly labels?: Labels;
  readonly metricName?: string;
}

type MetricType = 'counter' | 'gauge' | 'histogram';

/** A metric whose samples are read at scrape time (prom-client's metric shape). */
class ReadMetric {
  constructor(readonly name: string, readonly help: string, readonly type: MetricType, private readonly read: () => Sample[]) {}

  get(): { name: string; help: string; type: MetricType; values: Sample[]; aggregator: 'sum' } {
    return { name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: 'sum' };
  }
}

function sum(arrays: readonly Float64Array[], slot: number): number {
  let n = 0;
  for (const a of arrays) n += a[slot]!;
  return n;
}

/** Histogram samples of `h` summed over `arrays`: cumulative buckets, +Inf, sum, count. */
function histogram(name: string, h: HistogramSlots, arrays: readonly Float64Array[]): Sample[] {
  const raw: number[] = [];
  for (const a of arrays) h.addTo(a, raw);
  const out: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i <= h.bounds.length; i++) {
    cumulative += raw[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, labels: { le: i < h.bounds.length ? h.bounds[i]! : '+Inf' }, value: cumulative });
  }
  out.push({ metricName: `${name}_sum`, value: raw[h.bounds.length + 1] ?? 0 });
  out.push({ metricName: `${name}_count`, value: raw[h.bounds.length + 2] ?? 0 });
  return out;
}

function byCode(counts: ReadonlyMap<string, number>): Sample[] {
  return [...counts].map(([code, value]) => ({ labels: { code }, value }));
}

export class Metrics {
  private readonly registry = new Registry();

  constructor(src: MetricSources) {
    // Process and Node.js numbers of the main thread (CPU and RSS cover every thread).
    collectDefaultMetrics({ register: this.registry });
    // Gauges with a counter's suffix: promtool's lint refuses them, and they say little here.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    const perShard = (slot: number) => (): Sample[] => src.shardCounters().map((a, shard) => ({ labels: { shard }, value: a[slot]! }));
    const processors = (slot: number) => (): Sample[] => [{ value: sum(src.processorRegions(), slot) }];
    const queue = src.queue.bind(src);

    this.add('pusher_info', 'Constant 1; the labels say what runs', 'gauge', () => [{ labels: { version: src.version, driver: src.driver }, value: 1 }]);
    // Connections and groups
    this.add('pusher_connections', 'Open WebSocket connections, per shard', 'gauge', perShard(S_CLIENTS));
    this.add('pusher_groups', 'Groups (card_ids) with at least one connection, counted on the shard that owns them; their sum is every group', 'gauge', perShard(S_GROUPS));
    this.add('pusher_joins_total', 'Joins accepted (a connection joining or moving to a group), per shard', 'counter', perShard(S_JOINS));
    this.add('pusher_shard_up', '1 when the shard listens and its event loop turns (see /readyz), per shard', 'gauge',
      () => src.shardCounters().map((_, shard) => ({ labels: { shard }, value: src.shardUp(shard) ? 1 : 0 })));
    this.add('pusher_shard_restarts_total', 'Times the shard thread crashed and was started again, per shard', 'counter',
      () => src.shardRestarts().map((value, shard) => ({ labels: { shard }, value })));
    // Pushes
    this.add('pusher_pushes_accepted_total', 'Pushes the queue accepted (with NSQ: that nsqd acknowledged)', 'counter', () => [{ value: queue().accepted }]);
    this.add('pusher_pushes_delivered_total', 'Push frames written to a connection (one per connection of each addressed group), per shard', 'counter', perShard(S_DELIVERED));
    this.add('pusher_pushes_undelivered_total', 'Deliveries to a card_id with no connection anywhere (dropped, as gopusher does), per owner shard', 'counter', perShard(S_UNDELIVERED));
    this.add('pusher_pushes_dropped_total', 'Push frames refused because the connection was over server.max_backpressure, per shard', 'counter', perShard(S_DROPPED));
    this.add('pusher_slow_clients_closed_total', 'Connections closed for reading too slowly (over server.max_backpressure), per shard', 'counter', perShard(S_SLOW_CLOSED));
    this.add('pusher_history_cards', 'Cards whose recovery history the shard keeps (history.size), per owner shard', 'gauge', perShard(S_HISTORY_CARDS));
    this.add('pusher_history_bytes', 'Characters of push frames kept for recovery (bounded by history.max_bytes), per owner shard', 'gauge', perShard(S_HISTORY_BYTES));
    this.add('pusher_push_latency_seconds', 'Push latency from accepted (queue, or nsqd) to written to the socket, of 1 push in metrics.latency_sample, once per shard that wrote it', 'histogram',
      () => histogram('pusher_push_latency_seconds', S_LATENCY, src.shardCounters()));
    // Errors
    this.add('pusher_ws_errors_total', 'WebSocket errors by code: connections closed with an error code (shutdown and shard crashes included) and invalid joins', 'counter',
      () => WS_CODES.map((code, i) => ({ labels: { code }, value: sum(src.shardCounters(), S_WS_ERRORS + i) })));
    this.add('pusher_ws_upgrades_refused_total', 'WebSocket upgrades a shard answered with an HTTP error instead (origin not allowed, server.max_connections, server.max_connections_per_address), by code', 'counter',
      () => UPGRADE_CODES.map((code, i) => ({ labels: { code }, value: sum(src.shardCounters(), S_UPGRADES_REFUSED + i) })));
    this.add('pusher_http_errors_total', 'HTTP gateway answers with an error, by code', 'counter', () => byCode(src.httpErrors));
    this.add('pusher_grpc_errors_total', 'gRPC calls that failed, by code', 'counter', () => byCode(src.grpcErrors));
    // Queue
    if (src.driver === 'memory') this.add('pusher_queue_depth', 'Pushes waiting in the embedded queue', 'gauge', () => [{ value: queue().depth }]);
    this.add('pusher_queue_in_flight', 'Pushes handed to the processors and not finished (with NSQ: received from nsqd and not finished)', 'gauge',
      () => [{ value: queue().inFlight }]);
    this.add('pusher_queue_connected', '1 when the queue takes pushes (with NSQ: the producer has an nsqd connection)', 'gauge', () => [{ value: queue().connected ? 1 : 0 }]);
    if (src.driver === 'nsq') {
      this.add('pusher_nsq_consumers_connected', 'Processor threads whose NSQ consumer has an nsqd connection (compare pusher_processor_threads)', 'gauge',
        () => [{ value: src.processorThreads().connected }]);
    }
    // Processors
    this.add('pusher_processor_threads', 'Live processor threads', 'gauge', () => [{ value: src.processorThreads().live }]);
    this.add('pusher_processor_batches_total', 'Batches the processors routed', 'counter', processors(P_BATCHES));
    this.add('pusher_processor_messages_total', 'Queue messages in those batches', 'counter', processors(P_MESSAGES));
    this.add('pusher_processor_routed_total', 'Deliveries routed to owner shards (one per card_id of each push)', 'counter', processors(P_ROUTED));
    this.add('pusher_processor_undecodable_total', 'Queue messages that were not a protobuf PushRequest (finished, never retried)', 'counter', processors(P_UNDECODABLE));
    this.add('pusher_processor_requeued_total', 'Queue messages whose batch failed and went back to the queue', 'counter', processors(P_REQUEUED));
    this.add('pusher_processor_batch_messages', 'Queue messages per processor batch', 'histogram',
      () => histogram('pusher_processor_batch_messages', P_BATCH_SIZE, src.processorRegions()));
  }

  private add(name: string, help: string, type: MetricType, read: () => Sample[]): void {
    this.registry.registerMetric(new ReadMetric(name, help, type, read) as unknown as Metric);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
