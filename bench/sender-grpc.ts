// gRPC push transports against proto/rpc.proto: unary Push, unary PushBatch,
// and the client-streaming PushStream (a repeated field of pushes per stream
// message: per-message cost dominates a stream otherwise).

import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Push, Transport, TransportEvents } from './transport';

/** A PushStream is ended and replaced after this long, so its answer (the accepted count) comes in steadily. */
const STREAM_ROTATE_MS = 1000;

interface PushReq {
  from: string;
  to: string[];
  appID: string;
  content: string;
}
interface BatchReply {
  code: number;
  message: string;
  accepted: number;
}
type Callback<T> = (err: grpc.ServiceError | null, reply?: T) => void;
interface RpcClient extends grpc.Client {
  Push(req: PushReq, md: grpc.Metadata, cb: Callback<{ code: number; message: string }>): grpc.ClientUnaryCall;
  PushBatch(req: { pushes: PushReq[] }, md: grpc.Metadata, cb: Callback<BatchReply>): grpc.ClientUnaryCall;
  PushStream(md: grpc.Metadata, cb: Callback<BatchReply>): grpc.ClientWritableStream<{ pushes: PushReq[] }>;
}

function loadClient(): new (addr: string, creds: grpc.ChannelCredentials, opts: grpc.ClientOptions) => RpcClient {
  const def = protoLoader.loadSync(join(__dirname, '..', '..', 'proto', 'rpc.proto'), { keepCase: true, longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { proto: { Rpc: new (...a: never[]) => RpcClient } };
  return pkg.proto.Rpc as unknown as new (addr: string, creds: grpc.ChannelCredentials, opts: grpc.ClientOptions) => RpcClient;
}

function toReq(p: Push): PushReq {
  return { from: 'bench', to: [p.card], appID: '', content: p.content };
}

type Mode = 'grpc' | 'grpc-batch' | 'grpc-stream';

/** One stream in use: what it carried, answered together when it ends. */
interface OpenStream {
  call: grpc.ClientWritableStream<{ pushes: PushReq[] }>;
  started: number;
  messages: number;
  pushes: number;
  expected: number;
  blocked: boolean;
}

class Conn {
  /** Unary calls, or stream messages not yet answered (their stream has not replied). */
  pending = 0;
  stream: OpenStream | null = null;
  constructor(readonly client: RpcClient) {}
}

export class GrpcTransport implements Transport {
  private readonly conns: Conn[];
  private next = 0;

  /** The API key as call metadata (empty without one). */
  private readonly md = new grpc.Metadata();

  constructor(addr: string, private readonly mode: Mode, conns: number, private readonly inflight: number, private readonly events: TransportEvents, apiKey: string) {
    if (apiKey !== '') this.md.set('authorization', `Bearer ${apiKey}`);
    const Client = loadClient();
    // A local subchannel pool gives each client its own HTTP/2 connection.
    const opts: grpc.ClientOptions = { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_send_message_length': 64 << 20 };
    this.conns = Array.from({ length: conns }, () => new Conn(new Client(addr, grpc.credentials.createInsecure(), opts)));
  }

  room(): number {
    let n = 0;
    for (const c of this.conns) {
      if (c.stream?.blocked !== true) n += Math.max(0, this.inflight - c.pending);
    }
    return n;
  }

  send(pushes: Push[], expected: number, tag: number): void {
    for (let tries = 0; tries < this.conns.length; tries++) {
      const c = this.conns[this.next]!;
      this.next = (this.next + 1) % this.conns.length;
      if (c.stream?.blocked === true || c.pending >= this.inflight) continue;
      if (this.mode === 'grpc-stream') {
        this.write(c, pushes, expected);
        return;
      }
      c.pending++;
      const n = pushes.length;
      const done = (err: grpc.ServiceError | null, reply?: { code: number }): void => {
        c.pending--;
        if (err !== null) this.events.fail(n, `gRPC ${grpc.status[err.code]}: ${err.details}`, tag);
        else if (reply !== undefined && reply.code !== 0) this.events.fail(n, `reply code ${reply.code}`, tag);
        else this.events.ack(n, expected, tag);
        this.events.wake();
      };
      if (this.mode === 'grpc') c.client.Push(toReq(pushes[0]!), this.md, done);
      else c.client.PushBatch({ pushes: pushes.map(toReq) }, this.md, done);
      return;
    }
    throw new Error('GrpcTransport.send without room');
  }

  /**
   * A stream is answered only when it ends, so streams are ended after half
   * the window of messages (or STREAM_ROTATE_MS): the window then bounds the
   * pushes not yet accepted, as it does for unary calls.
   */
  private write(c: Conn, pushes: Push[], expected: number): void {
    const now = Date.now();
    if (c.stream !== null && (now - c.stream.started > STREAM_ROTATE_MS || c.stream.messages * 2 >= this.inflight)) this.endStream(c);
    if (c.stream === null) c.stream = this.openStream(c, now);
    const s = c.stream;
    c.pending++;
    s.messages++;
    s.pushes += pushes.length;
    s.expected += expected;
    if (!s.call.write({ pushes: pushes.map(toReq) })) {
      s.blocked = true;
      s.call.once('drain', () => {
        s.blocked = false;
        this.events.wake();
      });
    }
  }

  private openStream(c: Conn, now: number): OpenStream {
    const s: OpenStream = { call: null as never, started: now, messages: 0, pushes: 0, expected: 0, blocked: false };
    s.call = c.client.PushStream(this.md, (err, reply) => {
      c.pending -= s.messages;
      this.events.wake();
      // A failed stream says how many of its pushes were accepted before the failure.
      const early = err === null ? null : /(\d+) pushes from \d+ earlier messages were accepted/.exec(err.details);
      if (err !== null && early === null) this.events.fail(s.pushes, `gRPC ${grpc.status[err.code]}: ${err.details}`, -1);
      else if (err !== null || reply === undefined || reply.accepted !== s.pushes) {
        const accepted = early !== null ? Number(early[1]) : reply?.accepted ?? 0;
        if (err !== null) this.events.fail(0, `gRPC ${grpc.status[err.code]}: ${err.details.replace(/\d+/g, 'N')}`, -1);
        this.events.ack(accepted, s.pushes === 0 ? 0 : (s.expected * accepted) / s.pushes, -1);
        this.events.fail(s.pushes - accepted, `stream accepted ${accepted} of ${s.pushes}`, -1);
      } else this.events.ack(s.pushes, s.expected, -1);
    });
    return s;
  }

  private endStream(c: Conn): void {
    if (c.stream === null) return;
    c.stream.call.end();
    c.stream = null;
  }

  flush(): void {
    // grpc-js writes as it goes.
  }

  async close(timeoutMs: number): Promise<void> {
    for (const c of this.conns) this.endStream(c);
    const end = Date.now() + timeoutMs;
    while (this.conns.some((c) => c.pending > 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    for (const c of this.conns) c.client.close();
  }
}
