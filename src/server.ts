// Puts the parts together and owns their lifecycle: start in dependency order
// (etcd registration last, once the node serves), close in a fixed order:
// revoke the etcd registration (nginx stops routing here) -> refuse new pushes
// -> stop accepting -> deliver what was accepted (bounded by
// server.drain_timeout) -> close sockets with 1001 -> close listen sockets ->
// done.

import type { Config } from './config/schema';
import type { Logger } from '../shared/log';
import { StartupError } from '../shared/errors';
import { IdleWaiter, once } from '../shared/lifecycle';
import { SeqState } from '../shared/seq-state';
import { assertPortFree } from './ports';
import { Mesh } from './mesh';
import { ShardHost } from '../workers/shard/host';
import { ProcessorPool } from '../workers/processor/host';
import { PushService } from './api/push-service';
import { Gateway } from './api/gateway';
import { GrpcServer } from './api/grpc';
import { createQueue } from './queue/create';
import { MemoryQueue } from './queue/memory';
import type { NsqQueue } from './queue/nsq';
import { Cluster } from './cluster/cluster';
import { isWildcard, joinHostPort, parseHostPort } from './config/schema';
import type { Secrets } from './secrets';
import { RateLimit } from './api/rate-limit';
import type { QueueStats } from './queue/queue';
import { Metrics } from './ops/metrics';
import { readiness, type ReadinessCheck } from './ops/health';
import { VERSION } from './version';

export class Server {
  readonly shards: ShardHost;
  readonly queue: MemoryQueue | NsqQueue;
  readonly processors: ProcessorPool;
  readonly push: PushService;
  readonly gateway: Gateway;
  readonly grpc: GrpcServer | null;
  /** Cluster mode (etcd.enable), or null. */
  readonly cluster: Cluster | null;
  readonly rateLimit: RateLimit;
  readonly metrics: Metrics;
  /** What /readyz checks. */
  private readonly readinessChecks: ReadinessCheck[];
  private closing = false;
  /** Ends the NSQ warm-up early only when the server closes. */
  private readonly warmup = new IdleWaiter(() => this.closing);

  constructor(readonly config: Config, private readonly log: Logger, readonly secrets: Secrets) {
    const seqs = new SeqState(SeqState.create());
    const mesh = new Mesh(config.server.shards, () => this.processors.firstSeq());
    this.shards = new ShardHost(config, mesh, log, secrets);
    this.queue = createQueue(config, log);
    this.processors = new ProcessorPool(config, mesh, seqs, log);
    this.cluster = config.etcd.enable
      ? new Cluster(config, log, { authorization: () => secrets.apiKeys.outgoing, tls: secrets.tls !== null })
      : null;
    this.push = new PushService(config, this.queue, this.shards.queries, () => this.shards.stats(), this.processors.size, this.cluster?.queries ?? null);
    this.rateLimit = new RateLimit(config.gateway.rate_limit);
    const security = { apiKeys: secrets.apiKeys, rateLimit: this.rateLimit, tls: secrets.tls };
    this.gateway = new Gateway(config, this.push, {
      stats: () => this.stats(),
      metrics: async () => ({ text: await this.metrics.text(), type: this.metrics.contentType }),
      readiness: () => readiness(this.readinessChecks),
      isPeer: (address) => this.cluster?.isPeer(address) ?? false,
      crash: (kind, n) => (kind === 'shard' ? this.shards.crash(n) : this.processors.crash(n)),
    }, log, security);
    this.grpc = config.grpc.addr !== null ? new GrpcServer(config.grpc.addr, this.push, log, { ...security, maxMessage: config.grpc.max_message, maxBatch: config.push.max_batch }) : null;
    this.metrics = new Metrics({
      version: VERSION,
      driver: config.queue.driver,
      shardCounters: () => this.shards.counters(),
      shardUp: (i) => this.shards.notReady(i) === null,
      shardRestarts: () => this.shards.restarts(),
      processorRegions: () => this.processors.regionCounters(),
      processorThreads: () => this.processors.threadStates(),
      queue: () => ({ ...this.queue.stats(), inFlight: this.queueStats().inFlight }),
      httpErrors: this.gateway.errors,
      grpcErrors: this.grpc?.errors ?? new Map(),
    });
    const cluster = this.cluster;
    this.readinessChecks = [
      { name: 'server', check: () => (this.closing ? 'shutting down' : null) },
      { name: 'shards', check: () => this.shardsNotReady() },
      { name: 'queue', check: () => this.queueNotReady() },
      ...(cluster !== null ? [{ name: 'etcd', check: () => cluster.notReady() }] : []),
    ];
  }

  private shardsNotReady(): string | null {
    const now = Date.now();
    const down: string[] = [];
    for (let i = 0; i < this.shards.count; i++) {
      const why = this.shards.notReady(i, now);
      if (why !== null) down.push(`shard ${i} ${why}`);
    }
    return down.length === 0 ? null : down.join('; ');
  }

  private queueNotReady(): string | null {
    const q = this.queue.stats();
    if (!q.connected) return q.driver === 'nsq' ? 'no connection to nsqd for publishing' : 'closed';
    if (!this.processors.consumingNsq) return null;
    const { live, connected } = this.processors.threadStates();
    return connected === live && live > 0 ? null : `${connected} of ${live} processor threads consume from nsqd`;
  }

  /** The queue's numbers; with NSQ, in flight and connected as the processors see them too. */
  private queueStats(): QueueStats {
    const queue = this.queue.stats();
    if (queue.driver !== 'nsq') return queue;
    const processors = this.processors.stats();
    return { ...queue, inFlight: processors.inFlight, connected: queue.connected && processors.connected };
  }

  async start(): Promise<void> {
    const c = this.config;
    await assertPortFree(c.server.host, c.server.ws_port, 'WebSocket (server.ws_port)');
    await assertPortFree(c.server.host, c.gateway.port, 'gateway (gateway.port)');
    if (c.grpc.addr !== null) await assertPortFree(c.grpc.addr.host, c.grpc.addr.port, 'gRPC (grpc.addr)');
    try {
      await this.shards.start();
      await this.gateway.start();
    } catch (err) {
      throw new StartupError('PUSH_ERR_START', (err as Error).message);
    }
    // Outside the try: its StartupError already says whether the port was in use.
    if (this.grpc !== null) await this.grpc.start();
    await this.queue.start();
    if (this.queue instanceof MemoryQueue) this.queue.consume(this.processors.onBatch);
    else void this.consumeAfterWarmUp();
    this.cluster?.start(this.nodeRecord());
  }

  /** Where the other nodes reach this one: a listen host that is a wildcard is replaced by the advertised one. */
  private nodeRecord(): { ws: string; http: string; grpc: string | null } {
    const ws = this.config.etcd.advertise;
    const advertisedHost = parseHostPort(ws)!.host;
    const reach = (host: string, port: number): string => joinHostPort(isWildcard(host) ? advertisedHost : host, port);
    const grpc = this.config.grpc.addr;
    return {
      ws,
      http: reach(this.config.server.host, this.gateway.port),
      grpc: grpc === null || this.grpc === null ? null : reach(grpc.host, this.grpc.port),
    };
  }

  /**
   * NSQ: a restarted node would otherwise consume its backlog before its
   * clients are back, and drop those pushes as undelivered: consuming starts
   * queue.warmup seconds after start-up. (Ending it early once the connection
   * count looked steady was tried: clients come back in waves, by their
   * backoff, and the chaos bench saw it end between two waves.)
   */
  private async consumeAfterWarmUp(): Promise<void> {
    const q = this.config.queue;
    await this.warmup.wait(q.warmup * 1000);
    if (this.closing) return;
    const clients = this.shards.stats().reduce((n, s) => n + s.clients, 0);
    this.log.info('consuming from nsqd', { topic: q.topic, channel: q.channel, warmupS: q.warmup, clients });
    this.processors.consume({
      topic: q.topic, channel: q.channel, nsqdTcp: q.nsqd_tcp, lookupdHttp: q.lookupd_http, outputBufferTimeout: q.output_buffer_timeout,
    }, q.max_in_flight);
  }

  async stats(): Promise<unknown> {
    return { shards: this.shards.stats(), restarts: this.shards.restarts(), queue: this.queueStats(), processors: this.processors.stats() };
  }

  /** Graceful shutdown; safe to call twice (the second call waits for the first). */
  readonly close = once(async () => {
    this.closing = true;
    this.warmup.poke();
    // First, so that confd takes this node out of nginx while it still serves (bounded: etcd may be away).
    await this.cluster?.close();
    this.push.close();
    this.gateway.stopListening();
    const grpcClosed = this.grpc?.close();
    await this.drain(Date.now() + this.config.server.drain_timeout * 1000);
    await grpcClosed;
    await this.shards.close();
    await this.queue.close();
    await this.gateway.close();
    await this.processors.close();
    this.rateLimit.close();
    this.log.info('stopped');
  });

  /** Delivers what was accepted to the connected clients, until `deadline`; says in one line what could not be. */
  private async drain(deadline: number): Promise<void> {
    const started = Date.now();
    if (this.queue instanceof MemoryQueue) {
      await this.queue.drained(deadline - started);
      const { depth, inFlight } = this.queue.stats();
      if (depth + inFlight > 0) {
        this.log.warn('accepted pushes not delivered before shutdown', {
          code: 'PUSH_ERR_SHUTDOWN_UNDELIVERED', undelivered: depth + inFlight, drainTimeoutS: this.config.server.drain_timeout,
        });
      } else this.log.info('delivered every accepted push', { ms: Date.now() - started });
      return;
    }
    const unfinished = await this.processors.stopConsuming(deadline);
    this.log.info('stopped consuming; the rest stays in nsqd', { unfinished, ms: Date.now() - started });
  }
}
