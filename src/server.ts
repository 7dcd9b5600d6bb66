// Puts the parts together and owns their lifecycle: start in dependency order,
// close in the fixed order DESIGN.md gives (stop accepting -> stop consuming ->
// drain -> close sockets with 1001 -> close listen sockets -> done).

import type { Config } from './config';
import type { Logger } from './shared/log';
import { StartupError } from './errors';
import { assertPortFree } from './ports';
import { Supervisor } from './supervisor';
import { Processors } from './processors';
import { PushService } from './push';
import { Gateway } from './gateway';
import { GrpcServer } from './grpc';
import { createQueue } from './queue/create';
import type { Queue } from './queue/queue';

const DRAIN_TIMEOUT_MS = 5_000;

export class Server {
  readonly supervisor: Supervisor;
  readonly queue: Queue;
  readonly processors: Processors;
  readonly push: PushService;
  readonly gateway: Gateway;
  readonly grpc: GrpcServer | null;
  private closing: Promise<void> | null = null;

  constructor(readonly config: Config, private readonly log: Logger) {
    this.supervisor = new Supervisor(config, log);
    this.queue = createQueue(config, log);
    this.processors = new Processors(config, this.supervisor, log);
    this.push = new PushService(config, this.queue, this.supervisor, this.processors.size);
    this.gateway = new Gateway(config, this.push, {
      stats: () => this.stats(),
      crash: (shard) => this.supervisor.crash(shard),
    }, log);
    this.grpc = config.grpc.enabled ? new GrpcServer(config, this.push, log) : null;
  }

  async start(): Promise<void> {
    const c = this.config;
    await assertPortFree(c.server.host, c.server.wsPort, 'WebSocket (server.ws_port)');
    await assertPortFree(c.server.host, c.gateway.port, 'gateway (gateway.port)');
    if (c.grpc.enabled) await assertPortFree(c.grpc.host, c.grpc.port, 'gRPC (grpc.addr)');
    try {
      await this.supervisor.start();
      await this.gateway.start();
    } catch (err) {
      throw new StartupError('PUSH_ERR_START', (err as Error).message);
    }
    // Outside the try: its StartupError already says whether the port was in use.
    if (this.grpc !== null) await this.grpc.start();
    await this.queue.start(this.processors.onBatch);
  }

  async stats(): Promise<unknown> {
    return {
      shards: await this.supervisor.stats(),
      restarts: this.supervisor.restarts(),
      queue: this.queue.stats(),
      processors: this.processors.counters,
    };
  }

  /** Graceful shutdown; safe to call twice (the second call waits for the first). */
  close(): Promise<void> {
    if (this.closing === null) this.closing = this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.gateway.stopListening();
    if (this.grpc !== null) await this.grpc.close();
    this.push.close();
    this.queue.pause();
    await this.processors.drain(DRAIN_TIMEOUT_MS);
    await this.supervisor.close();
    await this.queue.close();
    await this.gateway.close();
    await this.processors.close();
    this.log.info('stopped');
  }
}
