// The `nsq` queue driver: nsqd holds what was accepted, so bursts pile up
// there and not in this process. Publishing and consuming are independent
// nsqjs connections, each recovering on its own (nsq-producer.ts, nsq-consumer.ts).

import type { Config } from '../config';
import type { Logger } from '../shared/log';
import { NsqConsumer } from './nsq-consumer';
import { NsqProducer } from './nsq-producer';
import type { PushError } from '../errors';
import type { BatchHandler, Queue, QueueStats } from './queue';

/** How long close() waits for nsqd's answers to sent MPUBs and for batches out to be settled. */
const CLOSE_TIMEOUT_MS = 5_000;

export class NsqQueue implements Queue {
  private readonly producer: NsqProducer;
  private readonly consumer: NsqConsumer;
  private closing: Promise<void> | null = null;

  constructor(queue: Config['queue'], batchSize: number, log: Logger) {
    const { topic, channel, nsqdTcp, lookupdHttp, maxInFlight } = queue;
    this.producer = new NsqProducer({ topic, nsqdTcp, lookupdHttp }, log);
    this.consumer = new NsqConsumer({ topic, channel, nsqdTcp, lookupdHttp, maxInFlight, batchSize }, log);
  }

  /** Returns at once: with nsqd down, pushes answer 503 and both sides keep retrying. */
  async start(onBatch: BatchHandler): Promise<void> {
    this.consumer.start(onBatch);
    this.producer.start();
  }

  publish(bodies: readonly Uint8Array[]): Promise<void> {
    return this.producer.publish(bodies);
  }

  admit(): PushError | null {
    return this.producer.admit();
  }

  pause(): void {
    this.consumer.pause();
  }

  resume(): void {
    this.consumer.resume();
  }

  stats(): QueueStats {
    return { driver: 'nsq', depth: -1, inFlight: this.consumer.inFlight, connected: this.producer.connected && this.consumer.connected };
  }

  close(): Promise<void> {
    if (this.closing === null) {
      this.closing = Promise.all([this.consumer.close(CLOSE_TIMEOUT_MS), this.producer.close(CLOSE_TIMEOUT_MS)]).then(() => undefined);
    }
    return this.closing;
  }
}
