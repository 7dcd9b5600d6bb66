// The NSQ consumer of one processor thread (queue.driver = nsq): an nsqjs
// Reader on the node's topic/channel. What arrives in one event-loop turn
// becomes one batch (at most processor.batch_size); at most MAX_TASKS batches
// are out at once, the rest waits here (nsqd's RDY, this thread's share of
// queue.max_in_flight, bounds it). A batch is answered only after the shards
// acknowledged delivery: FIN, or REQ with a delay (no nsqjs backoff, which
// would set every connection to RDY 0 for a plain retry).

import type { Writable } from 'node:stream';
import { Reader, type Message } from 'nsqjs';
import { finishAll } from './nsqjs-tuning';
import type { ConsumeOptions } from '../../shared/frames';
import { P_BATCH_SIZE, P_BATCHES, P_CONNECTED, P_IN_FLIGHT, P_MESSAGES, P_REQUEUED } from '../../shared/counters';
import type { Logger } from '../../shared/log';
import { onceATurn } from '../../shared/once-a-turn';
import { IdleWaiter } from '../../shared/lifecycle';

/** Batches being delivered at once: the next one is routed while the shards write the last. */
const MAX_TASKS = 2;
/**
 * On stop, how long no message may have arrived before the connection is
 * closed. nsqd may have sent messages before it read our RDY 0; nsqjs's close
 * destroys the socket at once, and what was still on its way would sit in
 * flight in nsqd until messageTimeout. Arriving while we stop, they are
 * requeued at once instead.
 */
const QUIET_MS = 100;
/** Repeats of one nsqd error within this long are counted in one line. */
const ERROR_BURST_MS = 5_000;

const READER_OPTIONS = {
  // nsqjs reconnects to nsqd_tcp addresses (and queries nsqlookupd) only on
  // this interval, in seconds (default 60): after an nsqd restart we consume
  // again within a second.
  lookupdPollInterval: 1,
  // Never discard: undecodable bodies are finished by the router, and a
  // failed batch is retried with backoff.
  maxAttempts: 0,
  // A message not answered within 30 s is redelivered (a crashed or hung
  // node); batches settle in milliseconds, so no touch() is needed.
  messageTimeout: 30_000,
  // Heartbeats every 5 s, a silent socket closed after 15 s.
  heartbeatInterval: 5,
  idleTimeout: 15,
};

/**
 * Delivers a batch of bodies; rejects when it could not (the batch is then
 * requeued). `samples`: pairs of body index and nsqd's timestamp (epoch ms)
 * of the messages sampled for the latency histogram, or null.
 */
export type Deliver = (bodies: Buffer[], samples: Float64Array | null) => Promise<void>;

/** Retry delay of a failed batch: grows with attempts, capped. */
export function backoff(attempts: number): number {
  return Math.min(100 * 2 ** attempts, 30_000);
}

export class NsqConsumer {
  private reader: Reader;
  /** Received and not yet in a batch. */
  private pending: Message[] = [];
  private running = 0;
  private inBatches = 0;
  private stopping = false;
  private lastArrival = 0;
  /** Messages until the next sampled one. */
  private sampleIn: number;
  private readonly bursts = new Map<string, { more: number }>();
  private readonly connections = new Set<string>();
  private readonly idle = new IdleWaiter(() => this.running === 0);
  private readonly flushSoon = onceATurn(() => this.flush());

  /**
   * `latencySample`: sample 1 message in this many (0 = none); `counters`:
   * this thread's region (shared/counters.ts).
   */
  constructor(
    private readonly opts: ConsumeOptions,
    private readonly batchSize: number,
    private readonly latencySample: number,
    private readonly counters: Float64Array,
    private readonly deliver: Deliver,
    private readonly log: Logger,
  ) {
    this.sampleIn = latencySample;
    this.reader = this.connect(opts.outputBufferTimeout < 0 ? { outputBufferSize: -1 } : { outputBufferTimeout: opts.outputBufferTimeout });
  }

  private connect(buffering: { outputBufferSize: number } | { outputBufferTimeout: number }): Reader {
    const { topic, channel, nsqdTcp, lookupdHttp, maxInFlight } = this.opts;
    const reader = new Reader(topic, channel, {
      ...READER_OPTIONS, ...buffering, nsqdTCPAddresses: [...nsqdTcp], lookupdHTTPAddresses: [...lookupdHttp], maxInFlight,
    });
    reader.on('message', (msg) => this.onMessage(msg));
    reader.on('nsqd_connected', (host, port) => {
      this.connections.add(`${host}:${port}`);
      this.counters[P_CONNECTED] = 1;
      this.log.debug('consuming from nsqd', { nsqd: `${host}:${port}`, topic, channel });
    });
    reader.on('nsqd_closed', (host, port) => {
      // Also emitted for every failed connection attempt; the producer reports those outages.
      const had = this.connections.delete(`${host}:${port}`);
      this.counters[P_CONNECTED] = this.connections.size > 0 ? 1 : 0;
      if (had && !this.stopping) {
        this.log.warn('lost the consumer connection to nsqd; reconnecting', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', nsqd: `${host}:${port}` });
      }
    });
    reader.on('error', (err) => {
      if (/output buffer timeout .* is invalid/.test(err.message) && reader === this.reader) {
        this.unbuffered(err.message);
        return;
      }
      // nsqd's own errors (E_FIN_FAILED, E_BAD_TOPIC, ...) carry their code first; socket
      // errors repeat on every reconnect attempt and end in 'nsqd_closed', logged above.
      const code = /^E_[A-Z_]+/.exec(err.message)?.[0];
      if (code !== undefined) this.nsqdError(code, err.message);
      else this.log.debug('nsqd consumer connection error', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', error: err.message });
    });
    reader.connect();
    return reader;
  }

  /**
   * One line per burst of one error: after nsqd was killed, every FIN of a
   * message it no longer holds fails (E_FIN_FAILED), a thousand in a second.
   * The first is logged; the rest of the next ERROR_BURST_MS are counted in one more line.
   */
  private nsqdError(code: string, message: string): void {
    const burst = this.bursts.get(code);
    if (burst !== undefined) {
      burst.more++;
      return;
    }
    this.log.warn('nsqd consumer error', { code, error: message });
    const b = { more: 0 };
    this.bursts.set(code, b);
    setTimeout(() => {
      this.bursts.delete(code);
      if (b.more > 0) this.log.warn('nsqd consumer error, repeated', { code, more: b.more, withinMs: ERROR_BURST_MS });
    }, ERROR_BURST_MS).unref();
  }

  /**
   * nsqd refused our output_buffer_timeout (it allows no less than its
   * --min-output-buffer-timeout, 25 ms by default). Waiting that long per
   * message is the latency this setting exists to avoid, so consume unbuffered
   * instead (nsqd writes every message at once: more syscalls in nsqd).
   */
  private unbuffered(reason: string): void {
    this.log.warn('nsqd refuses queue.output_buffer_timeout; consuming unbuffered (start nsqd with --min-output-buffer-timeout=1ms to allow it)', {
      code: 'PUSH_ERR_QUEUE_CONFIG', error: reason,
    });
    const old = this.reader;
    this.reader = this.connect({ outputBufferSize: -1 });
    old.close();
  }

  /** Messages received and not finished yet, for the main thread. */
  private inFlight(): void {
    this.counters[P_IN_FLIGHT] = this.inBatches + this.pending.length;
  }

  private onMessage(msg: Message): void {
    this.lastArrival = Date.now();
    if (this.stopping) {
      // Sent before nsqd saw RDY 0: give it back at once.
      msg.requeue(0, false);
      return;
    }
    this.pending.push(msg);
    if (this.pending.length >= this.batchSize) this.flush();
    else this.flushSoon();
    this.inFlight();
  }

  private flush(): void {
    while (this.pending.length > 0 && this.running < MAX_TASKS && !this.stopping) {
      const msgs = this.pending.length <= this.batchSize ? this.pending : this.pending.slice(0, this.batchSize);
      this.pending = msgs === this.pending ? [] : this.pending.slice(this.batchSize);
      this.run(msgs);
    }
  }

  private run(msgs: Message[]): void {
    this.running++;
    this.inBatches += msgs.length;
    const c = this.counters;
    c[P_BATCHES]!++;
    c[P_MESSAGES]! += msgs.length;
    P_BATCH_SIZE.observe(c, msgs.length);
    // Message.body slices the frame on every access: take it once.
    const bodies = new Array<Buffer>(msgs.length);
    let samples: number[] | null = null;
    for (let i = 0; i < msgs.length; i++) {
      bodies[i] = msgs[i]!.body;
      if (--this.sampleIn === 0) {
        this.sampleIn = this.latencySample;
        // nsqd's timestamp (ns) of when it took the message: the push's acceptance.
        (samples ??= []).push(i, Number(msgs[i]!.timestamp) / 1e6);
      }
    }
    this.deliver(bodies, samples === null ? null : Float64Array.from(samples)).then(
      () => this.settle(msgs, false),
      (err: Error) => {
        c[P_REQUEUED]! += msgs.length;
        this.log.warn('delivery failed; batch requeued', { error: err.message, messages: msgs.length });
        this.settle(msgs, true);
      },
    );
  }

  /** FIN (or REQ) a batch. */
  private settle(msgs: readonly Message[], requeue: boolean): void {
    if (requeue) {
      // nsqjs writes every REQ as its own socket write (a syscall each, on a
      // nextTick after requeue()). Corking the Reader's sockets until after
      // those ticks turns them into one writev per connection. The uncork
      // tick is queued after every respond tick queued here (nextTick is FIFO).
      const sockets = readerSockets(this.reader);
      for (const s of sockets) s.cork();
      // nsqd counts this delivery; attempts - 1 earlier ones failed.
      for (const m of msgs) m.requeue(backoff(m.attempts - 1), false);
      if (sockets.length > 0) process.nextTick(uncork, sockets);
    } else {
      finishAll(msgs);
    }
    this.running--;
    this.inBatches -= msgs.length;
    this.flush();
    this.inFlight();
    this.idle.poke();
  }

  /**
   * Stops taking messages, waits until the batches out are settled (or
   * `deadline`, epoch ms), then closes the Reader: what it still holds goes
   * back to nsqd with the connection. Resolves with the number unsettled.
   */
  async stop(deadline: number): Promise<number> {
    if (!this.stopping) {
      this.stopping = true;
      this.reader.pause();
      for (const m of this.pending) m.requeue(0, false);
      this.pending = [];
      this.inFlight();
    }
    await this.idle.wait(deadline - Date.now());
    while (Date.now() - this.lastArrival < QUIET_MS && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS - (Date.now() - this.lastArrival)));
    }
    const unsettled = this.inBatches;
    // nsqjs writes FIN/REQ on the next tick and destroys the socket right
    // after sending CLS: let those writes go out first.
    await new Promise((resolve) => setImmediate(resolve));
    this.reader.close();
    return unsettled;
  }
}

/** The sockets of the Reader's subscribed connections (nsqjs internals, see src/types/nsqjs.d.ts). */
function readerSockets(reader: Reader): Writable[] {
  const sockets: Writable[] = [];
  for (const c of reader.readerRdy.connections) {
    // Gone (deleted) once the connection closed.
    if (c.conn.conn !== undefined) sockets.push(c.conn.conn);
  }
  return sockets;
}

function uncork(sockets: readonly Writable[]): void {
  for (const s of sockets) s.uncork();
}
