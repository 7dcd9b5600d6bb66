// HTTP push transport: a raw HTTP/1.1 client over net.Socket that pipelines
// POSTs on keep-alive connections and only counts answers. A general client
// (fetch/undici) costs more per request than the server under test does.
// With `reconnect` (chaos), a connection that closes is replaced after
// RECONNECT_MS: requests it had not been answered fail, and so do those
// written to a replacement the server refuses while it is down.

import { connect, type Socket } from 'node:net';
import type { Push, Transport, TransportEvents } from './transport';

const MARK = Buffer.from('HTTP/1.1 ');
/** Bytes of the mark plus the three status digits. */
const STATUS_END = MARK.length + 3;
const RECONNECT_MS = 100;

function pushJson(p: Push): string {
  return `{"to":["${p.card}"],"content":"${p.content}"}`;
}

/** A broadcast to every joined connection (no appID). */
function broadcastJson(p: Push): string {
  return `{"content":"${p.content}"}`;
}

/** One pipelined connection: requests go out in order, answers come back in order. */
class Pipeline {
  /** Per request in flight: pushes it carries and frames they should produce (FIFO ring). */
  private readonly pushes: Float64Array;
  private readonly expected: Float64Array;
  private readonly tags: Float64Array;
  private head = 0;
  pending = 0;
  private out = '';
  private carry: Buffer | null = null;
  private readonly socket: Socket;
  dead = false;
  /** performance.now() when it closed. */
  diedAt = 0;

  constructor(host: string, port: number, readonly window: number, private readonly path: string, private readonly events: TransportEvents, private readonly auth: string) {
    this.pushes = new Float64Array(window);
    this.expected = new Float64Array(window);
    this.tags = new Float64Array(window);
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.onGone(err.message));
    this.socket.on('close', () => this.onGone('connection closed'));
  }

  send(body: string, pushes: number, expected: number, tag: number): void {
    const slot = (this.head + this.pending) % this.window;
    this.pushes[slot] = pushes;
    this.expected[slot] = expected;
    this.tags[slot] = tag;
    this.pending++;
    this.out += `POST ${this.path} HTTP/1.1\r\nHost: bench\r\n${this.auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  }

  flush(): void {
    if (this.out === '' || this.dead) return;
    this.socket.write(this.out);
    this.out = '';
  }

  /** Counts answers by their status lines; bodies are never parsed. */
  private onData(chunk: Buffer): void {
    const buf = this.carry === null ? chunk : Buffer.concat([this.carry, chunk]);
    let i = 0;
    let answered = false;
    for (;;) {
      const k = buf.indexOf(MARK, i);
      if (k < 0) {
        i = Math.max(i, buf.length - MARK.length + 1);
        break;
      }
      if (k + STATUS_END > buf.length) {
        i = k;
        break;
      }
      this.answer(buf[k + MARK.length] === 0x32, buf.toString('latin1', k + MARK.length, k + STATUS_END));
      answered = true;
      i = k + STATUS_END;
    }
    this.carry = i < buf.length ? Buffer.from(buf.subarray(i)) : null;
    if (answered) this.events.wake();
  }

  private answer(ok: boolean, status: string): void {
    if (this.pending === 0) return;
    const slot = this.head;
    this.head = (this.head + 1) % this.window;
    this.pending--;
    if (ok) this.events.ack(this.pushes[slot]!, this.expected[slot]!, this.tags[slot]!);
    else this.events.fail(this.pushes[slot]!, status.length === 3 ? `HTTP ${status}` : status, this.tags[slot]!);
  }

  private onGone(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    this.diedAt = performance.now();
    this.events.wake();
    while (this.pending > 0) this.answer(false, reason);
  }

  end(): void {
    this.socket.destroy();
  }
}

export class HttpTransport implements Transport {
  private readonly conns: Pipeline[];
  private next = 0;
  private readonly open: () => Pipeline;

  /** `broadcast`: every request is one POST /broadcast (batch is then ignored). */
  constructor(url: string, private readonly batch: boolean, conns: number, inflight: number, private readonly reconnect: boolean, events: TransportEvents, apiKey: string, private readonly broadcast = false) {
    const { hostname, port } = new URL(url);
    const path = broadcast ? '/broadcast' : batch ? '/push/batch' : '/push';
    const auth = apiKey === '' ? '' : `Authorization: Bearer ${apiKey}\r\n`;
    this.open = () => new Pipeline(hostname, Number(port), inflight, path, events, auth);
    this.conns = Array.from({ length: conns }, this.open);
  }

  room(): number {
    let n = 0;
    const now = performance.now();
    for (let i = 0; i < this.conns.length; i++) {
      let c = this.conns[i]!;
      if (c.dead && this.reconnect && now - c.diedAt >= RECONNECT_MS) c = this.conns[i] = this.open();
      if (!c.dead) n += c.window - c.pending;
    }
    return n;
  }

  send(pushes: Push[], expected: number, tag: number): void {
    // Round-robin over connections with room: spreads load and keeps pipelines short.
    for (let tries = 0; tries < this.conns.length; tries++) {
      const c = this.conns[this.next]!;
      this.next = (this.next + 1) % this.conns.length;
      if (c.dead || c.pending >= c.window) continue;
      const body = this.broadcast ? broadcastJson(pushes[0]!) : this.batch ? `{"pushes":[${pushes.map(pushJson).join(',')}]}` : pushJson(pushes[0]!);
      c.send(body, pushes.length, expected, tag);
      return;
    }
    throw new Error('HttpTransport.send without room');
  }

  flush(): void {
    for (const c of this.conns) c.flush();
  }

  async close(timeoutMs: number): Promise<void> {
    this.flush();
    const end = Date.now() + timeoutMs;
    while (this.conns.some((c) => c.pending > 0 && !c.dead) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    for (const c of this.conns) c.end();
  }
}
