// The gateway's HTTP/1.1 server, on node:net. Not uWS: uWS closes a
// connection when a pipelined request arrives while the one before it is
// still unanswered (uNetworking/uWebSockets.js#277, won't fix), which loses
// the answers of requests that already ran. Not node:http: it costs about
// three times the CPU per request of this one, ten times pipelined (README,
// "Dependencies").

import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { IdleWaiter } from '../../../shared/lifecycle';
import { Connection, type HttpHandler } from './connection';
import { BodyBudget } from './parser';

/** A connection with nothing to answer and no byte read for this long is closed (uWS's HTTP idle timeout). */
const IDLE_MS = 10_000;
const SWEEP_MS = 1_000;
/** On close(), connections get this long to write their last answers. */
const CLOSE_GRACE_MS = 1_000;
/** A TLS client must finish its handshake this fast (Node's default, 120 s, lets idle sockets pile up). */
const HANDSHAKE_MS = 10_000;
/** A connection refused over maxConnections gets this long to read its answer. */
const REFUSED_LINGER_MS = 2_000;

export interface HttpServerOptions {
  /** Largest request body (413 above). */
  readonly maxBody: number;
  /** Bytes all bodies being gathered may hold (503 above). */
  readonly maxBodyTotal: number;
  /** Connections at once; one more is answered `busyAnswer` and closed. */
  readonly maxConnections: number;
  /** A complete HTTP response (with Connection: close) for a connection over maxConnections. */
  readonly busyAnswer: string;
  /** PEM certificate and key: HTTPS only. */
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | null;
}

const kConn = Symbol('connection');
type Tagged = Socket & { [kConn]: Connection };

// Module-level listeners: no closure per connection.
function onData(this: Tagged, data: Buffer): void {
  this[kConn].onData(data);
}
function onEnd(this: Tagged): void {
  this[kConn].finish();
}
function onClose(this: Tagged): void {
  this[kConn].onClose();
}
function onDrain(this: Tagged): void {
  this[kConn].throttle();
}
function onError(): void {
  // A reset or a broken pipe: 'close' follows, and the client is gone.
}
function onLinger(this: Socket): void {
  this.destroy();
}

/** The open connections; close() waits until it is empty. */
class Connections extends Set<Connection> {
  constructor(private readonly onRemoved: () => void) {
    super();
  }

  override delete(c: Connection): boolean {
    const had = super.delete(c);
    this.onRemoved();
    return had;
  }
}

export class HttpServer {
  private readonly server: Server;
  private readonly conns: Connections = new Connections(() => this.idle.poke());
  private readonly idle = new IdleWaiter(() => this.conns.size === 0);
  private sweeper: NodeJS.Timeout | null = null;
  private readonly budget: BodyBudget;

  constructor(private readonly handler: HttpHandler, private readonly opts: HttpServerOptions) {
    this.budget = new BodyBudget(opts.maxBodyTotal);
    const accept = (socket: Socket): void => this.accept(socket as Tagged);
    this.server = opts.tls === null
      ? createServer({ allowHalfOpen: true, noDelay: true }, accept)
      : createTlsServer({ allowHalfOpen: true, cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: HANDSHAKE_MS }, accept);
    // A failed TLS handshake: the socket is destroyed; nothing to answer.
    this.server.on('tlsClientError', onError);
  }

  private accept(socket: Tagged): void {
    if (this.conns.size >= this.opts.maxConnections) {
      // Answered, not dropped, so the client knows why; it must not hold a descriptor for long.
      socket.on('error', onError);
      socket.resume();
      socket.end(this.opts.busyAnswer);
      this.handler.busy();
      socket.setTimeout(REFUSED_LINGER_MS, onLinger);
      return;
    }
    if (this.opts.tls !== null) socket.setNoDelay(true);
    socket[kConn] = new Connection(socket, this.handler, this.opts.maxBody, this.budget, IDLE_MS, this.conns);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('drain', onDrain);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
        this.sweeper.unref();
        resolve();
      });
    });
  }

  /** The port actually bound (0 before listen). */
  get port(): number {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a.port : 0;
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.conns) if (c.expired(now)) c.socket.destroy();
  }

  /** Stops accepting connections; open ones keep being served. */
  stopListening(): void {
    if (this.server.listening) this.server.close();
  }

  /** Ends every connection once its ready answers are written; destroys what is left after a grace period. */
  async close(): Promise<void> {
    this.stopListening();
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const c of this.conns) c.finish();
    await this.idle.wait(CLOSE_GRACE_MS);
    for (const c of this.conns) c.socket.destroy();
  }
}
