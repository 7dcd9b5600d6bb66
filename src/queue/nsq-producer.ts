// The NSQ producer: one NsqWriter connection at a time; concurrent publish()
// calls are coalesced into MPUBs (bounded in count and bytes), and each caller
// resolves only once nsqd acknowledged every MPUB that carried its bodies.
// A lost connection is replaced, with backoff; while there is none, publish()
// rejects at once (503, not a hang).

import { PushError } from '../../shared/errors';
import type { Logger } from '../../shared/log';
import { IdleWaiter, once } from '../../shared/lifecycle';
import { onceATurn } from '../../shared/once-a-turn';
import { encodeMpub, NsqWriter } from './nsq-writer';
import { ensureChannel } from './nsq-channel';

/** nsqd's --max-msg-size default: a larger message is E_BAD_BODY and closes the connection. */
const MAX_MSG_BYTES = 1024 * 1024;
/** Per MPUB; well under nsqd's --max-body-size default (5 MiB) with the 4-byte size prefixes. */
const MAX_MPUB_BYTES = 1024 * 1024;
const MAX_MPUB_MESSAGES = 2_000;
/**
 * MPUBs written and not answered yet, at most. While they are out, new pushes
 * gather into the next MPUB instead of going out one small MPUB per event-loop
 * turn: under load MPUBs grow (fewer writes, fewer nsqd round trips per push);
 * when idle a push still goes out on the next turn. nsqd answers a
 * connection's commands in order, so several can be in flight on one.
 */
const MAX_MPUBS_IN_FLIGHT = 2;
/** An MPUB unanswered this long means a hung nsqd: drop the connection and reconnect. */
const ACK_TIMEOUT_MS = 5_000;
/** How long close() waits for nsqd's answers to sent MPUBs. */
const CLOSE_TIMEOUT_MS = 5_000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2_000;
const LOOKUPD_TIMEOUT_MS = 2_000;

const WRITER_OPTIONS = {
  // nsqd heartbeats every 5 s; 15 s of silence closes the socket, so a dead
  // nsqd that sent no RST is noticed.
  heartbeatInterval: 5,
  idleTimeout: 15,
};

export interface ProducerOptions {
  readonly topic: string;
  /** This node's channel: made to exist in the nsqd before the first publish there (nsq-channel.ts). */
  readonly channel: string;
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
  readonly bodies: Uint8Array[];
  /** Sum of the bodies' lengths. */
  bytes: number;
  readonly callers: Caller[];
  sentAt: number;
}

export class NsqProducer {
  private writer: NsqWriter | null = null;
  private ready = false;
  /** The nsqd the current (or last) connection talks to. */
  private address = '';
  private lastError = 'not connected yet';
  private attempt = 0;
  /** True from the first failure until the next successful connection: one warn line per outage. */
  private outage = false;
  private closed = false;
  /** Pushes nsqd acknowledged since start. */
  accepted = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  /** The MPUB being filled. */
  private open: Mpub | null = null;
  /** Full MPUBs waiting for a slot (MAX_MPUBS_IN_FLIGHT), oldest first. */
  private readonly full: Mpub[] = [];
  private readonly flushSoon = onceATurn(() => this.flush());
  /** MPUBs written and not yet answered, oldest first (nsqd answers in order). */
  private readonly sent = new Set<Mpub>();
  private readonly idle = new IdleWaiter(() => this.sent.size === 0);

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
  /** What publish() would fail with before sending anything, or null. */
  admit(): PushError | null {
    if (this.closed) return new PushError('PUSH_ERR_SHUTTING_DOWN');
    if (!this.ready) return this.unavailable();
    return null;
  }

  publish(bodies: readonly Uint8Array[]): Promise<void> {
    if (bodies.length === 0) return Promise.resolve();
    const refusal = this.admit();
    if (refusal !== null) return Promise.reject(refusal);
    for (const b of bodies) {
      if (b.byteLength > MAX_MSG_BYTES) {
        return Promise.reject(new PushError('PUSH_ERR_CONTENT_TOO_LARGE', `an encoded push is ${b.byteLength} bytes; nsqd accepts at most ${MAX_MSG_BYTES} (--max-msg-size)`));
      }
    }
    return new Promise<void>((resolve, reject) => {
      const caller: Caller = { remaining: 0, done: false, resolve, reject };
      for (const b of bodies) {
        let m = this.open;
        // 4 bytes of size prefix per message, 4 for the count.
        if (m !== null && (m.bodies.length >= MAX_MPUB_MESSAGES || 4 + m.bytes + 4 * (m.bodies.length + 1) + b.byteLength > MAX_MPUB_BYTES)) {
          this.full.push(m);
          m = null;
        }
        if (m === null) m = this.open = { bodies: [], bytes: 0, callers: [], sentAt: 0 };
        m.bodies.push(b);
        m.bytes += b.byteLength;
        if (m.callers[m.callers.length - 1] !== caller) {
          m.callers.push(caller);
          caller.remaining++;
        }
      }
      this.flushSoon();
    });
  }

  /**
   * Sends what is waiting while a slot is free. Runs on the turn after a
   * publish() and after every answer, so the MPUB being filled goes out as
   * soon as one in flight was answered, with everything that arrived meanwhile.
   */
  private flush(): void {
    while (this.sent.size < MAX_MPUBS_IN_FLIGHT) {
      const m = this.full.shift() ?? this.open;
      if (m === null) return;
      if (m === this.open) this.open = null;
      this.send(m);
    }
  }

  private send(m: Mpub): void {
    const writer = this.writer;
    if (writer === null || !this.ready) {
      this.fail(m, this.unavailable());
      return;
    }
    m.sentAt = Date.now();
    this.sent.add(m);
    writer.publish(encodeMpub(this.opts.topic, m.bodies, m.bytes), (err) => this.answered(m, err));
  }

  private answered(m: Mpub, err: Error | null): void {
    if (!this.sent.delete(m)) return;
    if (err !== null) {
      this.fail(m, new PushError('PUSH_ERR_QUEUE_UNAVAILABLE', `nsqd ${this.address} did not acknowledge the push (${err.message}); retry later`));
    } else {
      this.accepted += m.bodies.length;
      for (const c of m.callers) {
        if (--c.remaining === 0 && !c.done) {
          c.done = true;
          c.resolve();
        }
      }
    }
    this.flush();
    this.idle.poke();
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
    const host = addr.slice(0, at).replace(/^\[|\]$/g, '');
    const port = Number(addr.slice(at + 1));
    // Events of a replaced connection are ignored: each handler checks it is still the current one.
    const writer: NsqWriter = new NsqWriter(host, port, WRITER_OPTIONS, {
      ready: () => {
        ensureChannel(host, port, this.opts.topic, this.opts.channel).then(() => this.onReady(writer), (err: Error) => {
          if (writer !== this.writer) return;
          // Publishing now could lose pushes for this node: treat it as a failed connection (retried).
          writer.close(`could not create channel ${this.opts.channel}: ${err.message}`);
        });
      },
      closed: (reason) => {
        if (writer !== this.writer) return;
        this.writer = null;
        this.lastError = reason;
        this.log.debug('nsqd producer connection closed', { code: 'PUSH_ERR_QUEUE_UNAVAILABLE', nsqd: addr, error: reason });
        this.lost(this.ready);
      },
    });
    this.writer = writer;
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

  private onReady(writer: NsqWriter): void {
    if (writer !== this.writer) return;
    this.ready = true;
    this.attempt = 0;
    this.lastError = 'connection closed';
    this.log.info(this.outage ? 'nsqd reachable again; pushes are accepted' : 'publishing to nsqd', { nsqd: this.address, topic: this.opts.topic });
    this.outage = false;
    this.watchdog = setInterval(() => this.checkAcks(writer), 1_000);
    this.watchdog.unref();
  }

  /** Closes the connection when nsqd sits on the oldest MPUB; closing fails every pending one. */
  private checkAcks(writer: NsqWriter): void {
    const oldest = this.sent.values().next().value;
    if (oldest === undefined || Date.now() - oldest.sentAt < ACK_TIMEOUT_MS || writer !== this.writer) return;
    writer.close(`no answer to a publish within ${ACK_TIMEOUT_MS} ms`);
  }

  /** The connection is gone (or was never made): pending MPUBs already failed through their callbacks. */
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
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Sends what is queued, waits (at most CLOSE_TIMEOUT_MS) for nsqd's answers, then closes. Safe to call twice. */
  readonly close = once(async () => {
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.flush();
    await this.idle.wait(CLOSE_TIMEOUT_MS);
    const writer = this.writer;
    this.writer = null;
    writer?.close();
    this.markDown();
  });

  private markDown(): void {
    this.ready = false;
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
  }
}
