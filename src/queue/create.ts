// Picks the queue driver named by queue.driver.

import type { Config } from '../config/schema';
import type { Logger } from '../../shared/log';
import { MemoryQueue } from './memory';
import { NsqQueue } from './nsq';

export function createQueue(config: Config, log: Logger): MemoryQueue | NsqQueue {
  const q = config.queue;
  switch (q.driver) {
    case 'memory':
      return new MemoryQueue({
        capacity: q.capacity, capacityBytes: q.capacity_bytes, maxInFlight: q.max_in_flight, batchSize: config.processor.batch_size,
        latencySample: config.metrics.latency_sample,
      });
    case 'nsq':
      return new NsqQueue(q, log);
  }
}
