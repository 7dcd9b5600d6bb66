// The `nsq` queue driver, main-thread side: nsqd holds what was accepted, so
// bursts pile up there and not in this process. Only the producer lives here;
// the processor threads consume (workers/processor/nsq-consumer.ts).

import type { Config } from '../config/schema';
import type { Logger } from '../../shared/log';
import { NsqProducer } from './nsq-producer';
import type { PushError } from '../../shared/errors';
import type { Queue, QueueStats } from './queue';

export class NsqQueue implements Queue {
  private readonly producer: NsqProducer;

  constructor(queue: Config['queue'], log: Logger) {
    this.producer = new NsqProducer({ topic: queue.topic, channel: queue.channel, nsqdTcp: queue.nsqd_tcp, lookupdHttp: queue.lookupd_http }, log);
  }

  /** Returns at once: with nsqd down, pushes answer 503 and the producer keeps retrying. */
  async start(): Promise<void> {
    this.producer.start();
  }

  publish(bodies: readonly Uint8Array[]): Promise<void> {
    return this.producer.publish(bodies);
  }

  admit(): PushError | null {
    return this.producer.admit();
  }

  /** nsqd takes any number; the producer splits them into MPUBs. */
  neverFits(): string | null {
    return null;
  }

  stats(): QueueStats {
    return { driver: 'nsq', depth: -1, inFlight: -1, connected: this.producer.connected, accepted: this.producer.accepted };
  }

  close(): Promise<void> {
    return this.producer.close();
  }
}
