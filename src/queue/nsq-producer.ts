// The NSQ producer: one nsqjs Writer at a time; concurrent publish() calls are
// coalesced into MPUBs (one per event-loop turn, bounded in count and bytes),
// and each caller resolves only once nsqd acknowledged every MPUB that carried
// its bodies. nsqjs Writers never reconnect, so a lost one is replaced, with
// backoff; while there is none, publish() rejects at once (503, not a hang).

import { Writer } from 'nsqjs';
import { PushError } from '../errors';
import type { Logger } from '../shared/log';

/** nsqd's --max-msg-size default: a larger message is E_BAD_BODY and closes the connection. */
const MAX_MSG_BYTES = 1024 * 1024;
/** Per MPUB; well under nsqd's --max-body-size default (5 MiB) with the 4-byte size prefixes. */
const MAX_MPUB_BYTES = 1024 * 1024;
const MAX_MPUB_MESSAGES = 500;
/** An MPUB unanswered this long means a hung nsqd: drop the Writer and reconnect. */
const ACK_TIMEOUT_MS = 5_000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2_000;
const LOOKUPD_TIMEOUT_MS = 2_000;

const WRITER_OPTIONS = {
  // nsqd heartbeats every 5 s; 15 s of silence closes the socket, so a dead
  // nsqd that sent no RST is noticed (nsqjs has no other liveness check).
  heartbeatInterval: 5,
  idleTimeout: 15,
};

export interface ProducerOptions {
  readonly topic: string;
  readonly nsqdTcp: readonly string[];
  readonly lookupdHttp: readonly string[];
}

interface Caller {
  /** MPUBs carrying this caller's bodies that nsqd has not acknowledged yet. */
  remaining: number;
  done: boolean;
  resolve(): void;
  reject(err: Error): void;
}

interface Mpub {
  readonly bodies: Buffer[];
  bytes: number;
  readonly callers: Caller[];
  sentAt: number;
}

export class NsqProducer {
  private writer: Writer | null = null;
  private ready = false;
  /** The nsqd the current (or last) Writer talks to. */
  private address = '';
  private lastError = 'not connected yet';
  private attempt = 0;
  /** True from the first failure until the next successful connection: one warn line per outage. */
  private outage = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private open: Mpub | null = null;
  private flushScheduled = false;
  /** MPUBs written and not yet answered, oldest first (nsqd answers in order). */
  private readonly sent = new Set<Mpub>();
  private onIdle: (() => void) | null = null;

  constructor(private readonly opts: ProducerOptions, private readonly log: Logger) {}

  get connected(): boolean {
    return this.ready;
  }

  start(): void {
    void this.connect();
  }

  /**
   * A call whose bodies span several MPUBs fails as a whole when one of them
   * fails, though the others may be queued: a retry can then deliver some
   * twice (at-least-once, as everywhere in NSQ).
   */
  publish(bodies: readonly Uint8Array[]): Promise<void> {
    if (bodies.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new PushError('PUSH_ERR_SHUTTING_DOWN'));
    if (!this.ready) return Promise.reject(this.unavailable());
    for (const b of bodies) {
      if (b.byteLength > MAX_MSG_BYTES) {
        return Promise.reject(new PushError('PUSH_ERR_CONTENT_TOO_LARGE', `an encoded push is ${b.byteLength} bytes; nsqd accepts at most ${MAX_MSG_BYTES} (--max-msg-size)`));
      }
    }
    return new Promise<void>((resolve, reject) => {
      const caller: Caller = { remaining: 0, done: false, resolve, reject };
      for (const b of bodies) {
        const size = 4 + b.byteLength;
        let m = this.open;
        if (m !== null && (m.bodies.length >= MAX_MPUB_MESSAGES || m.bytes + size > MAX_MPUB_BYTES)) {
          this.send(m);
          m = null;
        }
        if (m === null) m = this.open = { bodies: [], bytes: 4, callers: [], sentAt: 0 };
        // nsqjs JSON-serialises anything that is not a Buffer.
        m.bodies.push(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
        m.bytes += size;
        if (m.callers[m.callers.length - 1] !== caller) {
          m.callers.push(caller);
          caller.remaining++;
        }
      }
      if (!this.flushScheduled && this.open !== null) {
        this.flushScheduled = true;
        setImmediate(flushOpen, this);
      }
    });
  }

  /** Sends the MPUB being filled; called once per event-loop turn. */
  flush(): void {
    this.flushScheduled = false;
    if (this.open !== null) this.send(this.open);
  }

  private send(m: Mpub): void {
    if (m === this.open) this.open = null;
    const writer = this.writer;
    if (writer === null || !this.ready) {
      this.fail(m, this.unavailable());
      return;
    }
    m.sentAt = Date.now();
    this.sent.add(m);
    writer.publish(this.opts.topic, m.bodies, (err) => this.answered(m, err ?? null));
  }

  private answered(m: Mpub, err: Error | null): void {
    if (!this.sent.delete(m)) return;
    if (err !== null) {
      this.fail(m, new PushError('PUSH_ERR_QUEUE_UNAVAILABLE', `nsqd ${this.address} did not acknowledge the push (${err.message}); retry later`));
    } else {
      for (const c of m.callers) {
        if (--c.remaining === 0 && !c.done) {
          c.done = true;
          c.resolve();
        }
      }
    }
    if (this.sent.size === 0 && this.onIdle !== null) this.onIdle();
  }

  private fail(m: Mpub, err: PushError): void {
    for (const c of m.callers) {
      if (!c.done) {
        c.done = true;
        c.reject(err);
      }
    }
  }

  private unavailable(): PushError {
    return new PushError('PUSH_ERR_QUEUE_UNAVAILABLE', `nsqd ${this.where()} is unreachable (${this.lastError}); retry later`);
  }

  /** The nsqd meant, for log lines and error messages. */
  private where(): string {
    return this.address || this.opts.nsqdTcp[0] || `(through nsqlookupd ${this.opts.lookupdHttp.join(',')})`;
  }

  private async connect(): Promise<void> {
    this.retryTimer = null;
    const addr = await this.target();
    if (this.closed) return;
    if (addr === null) {
      this.lost(false);
      return;
    }
    this.address = addr;
    const at = addr.lastIndexOf(':');
    const writer = new Writer(addr.slice(0, at).replace(/^\[|\]$/g, ''), Number(addr.slice(at + 1)), WRITER_OPTIONS);
    this.writer = writer;
    // Events of a replaced Writer are ignored: each handler checks it is still the current one.
    writer.on('ready', () => this.onReady(writer));
    writer.on('error', (err) => {
      if (writer !== this.writer) return;
      this.lastError = err.message;
      this.log.debug('nsqd producer connection error', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', nsqd: addr, error: err.message });
    });
    writer.on('closed', () => {
      if (writer !== this.writer) return;
      this.writer = null;
      this.lost(this.ready);
    });
    writer.connect();
  }

  /**
   * Where to publish. With several nsqd_tcp addresses we publish to one at a
   * time: the first that accepts a connection, in config order, moving to the
   * next after a failure (every node's consumer reads from all of them). With
   * only lookupd_http, the first node nsqlookupd's /nodes lists: /lookup?topic=
   * would find nothing before the topic's first message.
   */
  private async target(): Promise<string | null> {
    const { nsqdTcp, lookupdHttp } = this.opts;
    if (nsqdTcp.length > 0) return nsqdTcp[this.attempt % nsqdTcp.length]!;
    for (const lookupd of lookupdHttp) {
      const url = `${lookupd.includes('://') ? lookupd : `http://${lookupd}`}/nodes`;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(LOOKUPD_TIMEOUT_MS) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const { producers } = (await res.json()) as { producers?: { broadcast_address: string; tcp_port: number }[] };
        const node = producers?.[0];
        if (node !== undefined) return node.broadcast_address.includes(':') ? `[${node.broadcast_address}]:${node.tcp_port}` : `${node.broadcast_address}:${node.tcp_port}`;
        this.lastError = `nsqlookupd ${lookupd} knows no nsqd`;
      } catch (err) {
        this.lastError = `nsqlookupd ${url}: ${(err as Error).message}`;
        this.log.debug('nsqlookupd query failed', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', url, error: (err as Error).message });
      }
    }
    return null;
  }

  private onReady(writer: Writer): void {
    if (writer !== this.writer) return;
    this.ready = true;
    this.attempt = 0;
    this.lastError = 'connection closed';
    this.log.info(this.outage ? 'nsqd reachable again; pushes are accepted' : 'publishing to nsqd', { nsqd: this.address, topic: this.opts.topic });
    this.outage = false;
    this.watchdog = setInterval(checkAcks, 1_000, this, writer);
    this.watchdog.unref();
  }

  /** Closes the Writer when nsqd sits on the oldest MPUB; its 'closed' fails every pending one. */
  checkAcks(writer: Writer): void {
    const oldest = this.sent.values().next().value;
    if (oldest === undefined || Date.now() - oldest.sentAt < ACK_TIMEOUT_MS || writer !== this.writer) return;
    this.lastError = `no answer to a publish within ${ACK_TIMEOUT_MS} ms`;
    writer.close();
  }

  /** The Writer is gone (or was never made): pending MPUBs already failed through their callbacks. */
  private lost(wasReady: boolean): void {
    this.markDown();
    if (this.closed) return;
    const where = this.where();
    if (!this.outage) {
      this.outage = true;
      this.log.warn(wasReady ? 'lost the connection to nsqd; pushes answer 503 until it is back' : 'nsqd is unreachable; pushes answer 503 until it is back, retrying',
        { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', nsqd: where, error: this.lastError });
    } else {
      this.log.debug('nsqd still unreachable', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', nsqd: where, error: this.lastError });
    }
    const delay = Math.min(RETRY_MIN_MS * 2 ** this.attempt, RETRY_MAX_MS);
    this.attempt++;
    this.retryTimer = setTimeout(reconnect, delay, this);
  }

  /** Sends what is queued, waits (bounded) for nsqd's answers, then closes. Safe to call twice. */
  async close(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.flush();
    if (this.sent.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onIdle = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
    }
    const writer = this.writer;
    this.writer = null;
    if (writer !== null) closeWriter(writer, this.log);
    this.markDown();
  }

  private markDown(): void {
    this.ready = false;
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  retry(): void {
    void this.connect();
  }
}

function flushOpen(p: NsqProducer): void {
  p.flush();
}

function checkAcks(p: NsqProducer, writer: Writer): void {
  p.checkAcks(writer);
}

function reconnect(p: NsqProducer): void {
  p.retry();
}

function closeWriter(writer: Writer, log: Logger): void {
  try {
    writer.close();
  } catch (err) {
    // nsqjs throws when the socket was not created yet (close in the same tick as connect).
    log.debug('nsqd producer close failed', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', error: (err as Error).message });
  }
}
