// The NSQ consumer: an nsqjs Reader on topic/channel whose messages are
// collected into batches (one per event-loop turn, at most batch_size) for the
// processors. Settling a batch answers nsqd per message: FIN, or REQ with the
// processors' delay and without nsqjs backoff (which would set every
// connection to RDY 0 for a plain retry).

import type { Writable } from 'node:stream';
import { Reader, type Message } from 'nsqjs';
import type { Logger } from '../shared/log';
import type { BatchHandler, ConsumedBatch } from './queue';

const READER_OPTIONS = {
  // nsqjs reconnects to nsqd_tcp addresses (and queries nsqlookupd) only on
  // this interval, in seconds (default 60): after an nsqd restart we consume
  // again within a second.
  lookupdPollInterval: 1,
  // Never discard: undecodable bodies are finished by the processors, and a
  // failed batch is retried with backoff.
  maxAttempts: 0,
  // A message not answered within 30 s is redelivered (a crashed or hung
  // node); batches settle in milliseconds, so no touch() is needed.
  messageTimeout: 30_000,
  // As for the producer: heartbeats every 5 s, a silent socket closed after 15 s.
  heartbeatInterval: 5,
  idleTimeout: 15,
};

export interface ConsumerOptions {
  readonly topic: string;
  readonly channel: string;
  readonly nsqdTcp: readonly string[];
  readonly lookupdHttp: readonly string[];
  /** Split over the nsqd connections; nsqd caps each at its --max-rdy-count (2500 by default). */
  readonly maxInFlight: number;
  readonly batchSize: number;
}

export class NsqConsumer {
  private reader: Reader | null = null;
  private onBatch: BatchHandler | null = null;
  /** Received this turn, not yet handed out. */
  private pending: Message[] = [];
  private flushScheduled = false;
  /** Handed to onBatch and not settled yet. */
  private handedOut = 0;
  private paused = false;
  private closed = false;
  private readonly connections = new Set<string>();
  private onIdle: (() => void) | null = null;

  constructor(private readonly opts: ConsumerOptions, private readonly log: Logger) {}

  get connected(): boolean {
    return this.connections.size > 0;
  }

  get inFlight(): number {
    return this.handedOut + this.pending.length;
  }

  /** Throws only on configuration nsqjs rejects; an unreachable nsqd is retried. */
  start(onBatch: BatchHandler): void {
    const { topic, channel, nsqdTcp, lookupdHttp, maxInFlight } = this.opts;
    this.onBatch = onBatch;
    const reader = new Reader(topic, channel, { ...READER_OPTIONS, nsqdTCPAddresses: [...nsqdTcp], lookupdHTTPAddresses: [...lookupdHttp], maxInFlight });
    this.reader = reader;
    reader.on('message', (msg) => this.onMessage(msg));
    reader.on('nsqd_connected', (host, port) => {
      this.connections.add(`${host}:${port}`);
      this.log.info('consuming from nsqd', { nsqd: `${host}:${port}`, topic, channel });
    });
    reader.on('nsqd_closed', (host, port) => {
      // Also emitted for every failed connection attempt; the producer reports those outages.
      if (this.connections.delete(`${host}:${port}`) && !this.closed) {
        this.log.warn('lost the consumer connection to nsqd; reconnecting', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', nsqd: `${host}:${port}` });
      }
    });
    reader.on('error', (err) => {
      // nsqd's own errors (E_FIN_FAILED, E_BAD_TOPIC, ...) carry their code first; socket
      // errors repeat on every reconnect attempt and end in 'nsqd_closed', logged above.
      const code = /^E_[A-Z_]+/.exec(err.message)?.[0];
      if (code !== undefined) this.log.warn('nsqd consumer error', { code, error: err.message });
      else this.log.debug('nsqd consumer connection error', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', error: err.message });
    });
    reader.connect();
    if (this.paused) reader.pause();
  }

  private onMessage(msg: Message): void {
    if (this.paused || this.closed) {
      // Sent before nsqd saw RDY 0: give it back at once. A reconnect resets
      // nsqjs's pause, so pause again.
      msg.requeue(0, false);
      if (!this.closed && this.reader !== null && !this.reader.isPaused()) this.reader.pause();
      return;
    }
    this.pending.push(msg);
    if (this.pending.length >= this.opts.batchSize) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(flushPending, this);
    }
  }

  /** Hands what arrived to the processors. */
  flush(): void {
    this.flushScheduled = false;
    const msgs = this.pending;
    if (msgs.length === 0 || this.onBatch === null) return;
    this.pending = [];
    this.handedOut += msgs.length;
    this.onBatch(new NsqBatch(this, msgs));
  }

  settle(msgs: readonly Message[], requeue: readonly number[], delayMs: number): void {
    // nsqjs writes every FIN/REQ as its own socket write (a syscall each, on
    // a nextTick after finish()): under load that was 14 % of the main
    // thread. Corking the Reader's sockets until after those ticks turns a
    // batch's answers into one writev per connection. The uncork tick is
    // queued after every respond tick queued here (nextTick is FIFO), so no
    // answer is held back past this batch.
    const sockets = this.reader === null ? [] : readerSockets(this.reader);
    for (const s of sockets) s.cork();
    if (requeue.length === 0) {
      for (const m of msgs) m.finish();
    } else {
      const again = new Uint8Array(msgs.length);
      for (const i of requeue) again[i] = 1;
      for (let i = 0; i < msgs.length; i++) {
        if (again[i] === 1) msgs[i]!.requeue(delayMs, false);
        else msgs[i]!.finish();
      }
    }
    if (sockets.length > 0) process.nextTick(uncork, sockets);
    this.handedOut -= msgs.length;
    if (this.handedOut === 0 && this.onIdle !== null) this.onIdle();
  }

  pause(): void {
    this.paused = true;
    this.reader?.pause();
    this.requeuePending();
  }

  resume(): void {
    if (this.closed) return;
    this.paused = false;
    this.reader?.unpause();
  }

  private requeuePending(): void {
    for (const m of this.pending) m.requeue(0, false);
    this.pending = [];
  }

  /** Stops reading, waits (bounded) for the batches out to be settled, then closes. Safe to call twice. */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const reader = this.reader;
    if (reader === null) return;
    reader.pause();
    this.requeuePending();
    if (this.handedOut > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onIdle = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
    }
    // nsqjs writes FIN/REQ on the next tick and destroys the socket right
    // after sending CLS: let those writes go out first. Anything unanswered
    // comes back after messageTimeout.
    await new Promise((resolve) => setImmediate(resolve));
    reader.close();
  }
}

function flushPending(c: NsqConsumer): void {
  c.flush();
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

class NsqBatch implements ConsumedBatch {
  readonly bodies: Buffer[];
  readonly attempts: number[];
  private settled = false;

  constructor(private readonly consumer: NsqConsumer, private readonly msgs: Message[]) {
    // Message.body slices the frame on every access: take it once.
    this.bodies = msgs.map((m) => m.body);
    // nsqd counts this delivery; ConsumedBatch counts earlier ones.
    this.attempts = msgs.map((m) => m.attempts - 1);
  }

  settle(requeue: readonly number[], delayMs: number): void {
    if (this.settled) return;
    this.settled = true;
    this.consumer.settle(this.msgs, requeue, delayMs);
  }
}
