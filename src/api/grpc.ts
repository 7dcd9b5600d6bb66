// The gRPC front door (@grpc/grpc-js): gopusher's proto.Rpc service plus the
// batch and broadcast extensions (grpc-definition.ts). Every handler delegates to
// PushService, so validation, queueing and answers are the HTTP gateway's;
// pushes are queued as the bytes that arrived. Server reflection comes from
// @grpc/reflection and stays open (it tells the schema, which is public).
// With API keys on, every proto.Rpc call needs `authorization: Bearer <key>`
// metadata; gateway.rate_limit counts calls as it counts HTTP requests.

import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { HostPort } from '../config/schema';
import { once } from '../../shared/lifecycle';
import type { Logger } from '../../shared/log';
import { ApiErrors, PushError, StartupError } from '../../shared/errors';
import { addressKey, normalizeAddress } from '../../shared/client-address';
import { parseScope, type PushService, type SystemReply } from './push-service';
import type { EncodedPush, SplitBatch } from './encoded-push';
import { BAD_UTF8, REFLECTION_PACKAGE, rpcService } from './grpc-definition';
import type { ApiKeys } from './api-keys';
import type { RateLimit } from './rate-limit';

/** Trailer that carries the stable PUSH_ERR_* code of a failed call. */
export const ERROR_CODE_METADATA = 'pusher-error-code';

/** How long close() lets in-flight calls finish before cancelling them. */
const SHUTDOWN_TIMEOUT_MS = 3_000;
/**
 * PushStream messages being queued at once, per call. With nsq each
 * acceptance is an MPUB round trip: one at a time, a stream would wait out
 * every round trip instead of filling the next MPUB meanwhile.
 */
const STREAM_PIPELINE = 8;
/** HTTP/2 streams (calls) one connection may have open at once. */
const MAX_CONCURRENT_STREAMS = 100;

export interface GrpcOptions {
  readonly apiKeys: ApiKeys;
  readonly rateLimit: RateLimit;
  /** PEM certificate and key: TLS only. */
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | null;
  /** Largest request message, bytes (grpc.max_message). */
  readonly maxMessage: number;
  /** push.max_batch: batches are split only this far. */
  readonly maxBatch: number;
}

interface PushReply { code: number; message: string }
type PushBatchRequest = SplitBatch;
interface BroadcastBatchRequest { broadcasts: unknown[] }
interface PushBatchReply { code: number; message: string; accepted: number }
interface CardRequest { cardID: string; scope: string }
interface SystemRequest { scope: string }

type PushStreamCall = grpc.ServerReadableStream<PushBatchRequest, PushBatchReply>;
type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | PushStreamCall;

const OK_REPLY: PushReply = Object.freeze({ code: 0, message: 'ok' });

export class GrpcServer {
  private readonly server: grpc.Server;
  /** Open PushStream calls, so that close() can answer them instead of waiting for their clients. */
  private readonly streams = new Set<PushStreamCall>();
  private boundPort = 0;
  private closing = false;
  /** Failed calls by code, for /metrics. */
  readonly errors = new Map<string, number>();

  constructor(private readonly addr: HostPort, private readonly push: PushService, private readonly log: Logger, private readonly opts: GrpcOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': opts.maxMessage,
      'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    });
    this.server.addService(rpcService(opts.maxBatch), {
      Push: this.unary(async (req: EncodedPush): Promise<PushReply> => {
        await this.admitted(() => this.push.pushEncoded(req));
        return OK_REPLY;
      }),
      PushBatch: this.unary(async (req: PushBatchRequest): Promise<PushBatchReply> => (
        { code: 0, message: 'ok', accepted: await this.admitted(async () => this.push.publishPrepared(await this.push.prepareMany(req.pushes, true, req.more))) }
      )),
      PushStream: this.onPushStream.bind(this),
      Broadcast: this.unary(async (req: unknown): Promise<PushReply> => {
        await this.admitted(() => this.push.broadcast(req));
        return OK_REPLY;
      }),
      BroadcastBatch: this.unary(async (req: BroadcastBatchRequest): Promise<PushBatchReply> => (
        { code: 0, message: 'ok', accepted: await this.admitted(() => this.push.broadcastMany(req.broadcasts)) }
      )),
      // Field scope = "node": this node's answer; empty or "cluster": the cluster's (etcd.enable).
      System: this.unary(async (req: SystemRequest): Promise<SystemReply> => this.push.system(parseScope(req.scope))),
      IsOnline: this.unary(async (req: CardRequest) => this.push.isOnline(req.cardID, parseScope(req.scope))),
      Group: this.unary(async (req: CardRequest) => this.push.group(req.cardID, parseScope(req.scope))),
    });
    new ReflectionService(REFLECTION_PACKAGE).addToServer(this.server);
  }

  /** Binds grpc.addr; rejects with a StartupError naming the address when it can't. */
  start(): Promise<void> {
    const { host, port } = this.addr;
    const addr = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      const tls = this.opts.tls;
      const credentials = tls === null ? grpc.ServerCredentials.createInsecure() : grpc.ServerCredentials.createSsl(null, [{ private_key: tls.key, cert_chain: tls.cert }], false);
      this.server.bindAsync(addr, credentials, (err, bound) => {
        if (err === null) {
          this.boundPort = bound;
          resolve();
          return;
        }
        const code = /EADDRINUSE/.test(err.message) ? 'PUSH_ERR_PORT_IN_USE' : 'PUSH_ERR_START';
        reject(new StartupError(code, `gRPC (grpc.addr) could not listen on ${addr}: ${err.message}`));
      });
    });
  }

  /** The port actually bound (grpc.addr with port 0 picks a free one). */
  get port(): number {
    return this.boundPort;
  }

  /**
   * Stops accepting calls, answers open streams with what they got accepted,
   * lets unary calls finish, and cancels whatever is left after a bounded wait.
   * Safe to call twice (the second call waits for the first).
   */
  readonly close = once(() => {
    this.closing = true;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn('gRPC calls still open at shutdown; cancelling them', { timeoutMs: SHUTDOWN_TIMEOUT_MS });
        this.server.forceShutdown();
        resolve();
      }, SHUTDOWN_TIMEOUT_MS);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
      // A client stream ends only when its client says so; wake each loop
      // (its next read fails) so it answers now with the count accepted.
      for (const call of this.streams) call.destroy();
    });
  });

  /** Queues with `work` unless a push would be refused now (see PushService.admit). */
  private admitted<T>(work: () => Promise<T>): Promise<T> {
    try {
      this.push.admit();
    } catch (err) {
      return Promise.reject(err);
    }
    return work();
  }

  /** The API key and rate limit's verdict on a call: null when it may run. */
  private guard(call: AnyCall): PushError | null {
    const { apiKeys, rateLimit } = this.opts;
    let key = -1;
    if (apiKeys.on) {
      const auth = call.metadata.get('authorization')[0];
      key = typeof auth === 'string' ? apiKeys.match(auth) : -1;
      if (key < 0) {
        // A wrong key still takes from its address's budget: guessing keys is rate limited too.
        const limited = rateLimit.on ? this.rateLimited(addressKey(peerAddress(call.getPeer()))) : null;
        return limited ?? new PushError('PUSH_ERR_UNAUTHORIZED', auth === undefined ? 'this call needs metadata authorization: Bearer <API key>' : 'the API key is not valid');
      }
    }
    if (!rateLimit.on) return null;
    return this.rateLimited(key >= 0 ? `key ${key}` : addressKey(peerAddress(call.getPeer())));
  }

  /** Takes one call from `who`'s budget: null, or the refusal when it is spent. */
  private rateLimited(who: string): PushError | null {
    const { rateLimit } = this.opts;
    const wait = rateLimit.take(who);
    return wait === 0 ? null : new PushError('PUSH_ERR_RATE_LIMITED', `more than ${rateLimit.rate} calls per second (gateway.rate_limit); retry in ${wait} s`);
  }

  /** Adapts `work` to a unary handler: one closure per method, none per call. */
  private unary<Req, Res>(work: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    // A call whose deadline passes before its request message is complete is
    // never handed to us: grpc-js ends it first (test/grpc.test.ts checks that
    // such a push is not queued).
    return async (call, callback) => {
      const refusal = this.guard(call as AnyCall);
      if (refusal !== null) {
        callback(this.status(refusal));
        return;
      }
      const bad = (call.request as { [BAD_UTF8]?: string } | null)?.[BAD_UTF8];
      if (bad !== undefined) {
        callback(this.status(new PushError('PUSH_ERR_BAD_ENCODING', `"${bad}" is not valid UTF-8`)));
        return;
      }
      let reply: Res;
      try {
        reply = await work(call.request);
      } catch (err) {
        callback(this.status(err));
        return;
      }
      callback(null, reply);
    };
  }

  /**
   * Queues each stream message with pushMany, in arrival order, up to
   * STREAM_PIPELINE at a time (reading stops while that many wait), and
   * answers once with the total. Acceptances are counted in message order:
   * the first error ends the call with its status and says how many pushes
   * were accepted before it, and nothing read after a failure is queued.
   * Messages after it that were already being queued when a publish failed
   * (nsqd went away) may have been accepted too; a client resending from the
   * count gets those twice (at-least-once, as after a lost answer).
   */
  private async onPushStream(call: PushStreamCall, callback: grpc.sendUnaryData<PushBatchReply>): Promise<void> {
    const refusal = this.closing ? new PushError('PUSH_ERR_SHUTTING_DOWN') : this.guard(call);
    if (refusal !== null) {
      callback(this.status(refusal));
      return;
    }
    this.streams.add(call);
    let accepted = 0;
    let messages = 0;
    const queued: Promise<number>[] = [];
    let pushError: unknown = null;
    let checkError: unknown = null;
    let readError: unknown = null;
    let failed = false;
    const onFail = (): void => {
      failed = true;
    };
    const countOldest = async (): Promise<void> => {
      try {
        accepted += await queued.shift()!;
        messages++;
      } catch (err) {
        pushError = err;
      }
    };
    try {
      for await (const msg of call as AsyncIterable<PushBatchRequest>) {
        if (failed) break;
        // Checked here, one message after the other (a large one over several
        // turns), and queued in message order; only queueing is pipelined.
        let bodies: Uint8Array[];
        try {
          this.push.admit();
          bodies = await this.push.prepareMany(msg.pushes, true, msg.more);
        } catch (err) {
          checkError = err;
          break;
        }
        const p = this.push.publishPrepared(bodies);
        // Also keeps a rejection from being "unhandled" until countOldest takes
        // it (or forever, when an earlier one failed first).
        p.catch(onFail);
        queued.push(p);
        if (queued.length >= STREAM_PIPELINE) {
          await countOldest();
          if (pushError !== null) break;
        }
      }
    } catch (err) {
      readError = err;
    }
    // The stream ended or broke: what was being queued still counts, in order, up to a failure.
    while (pushError === null && queued.length > 0) await countOldest();
    this.streams.delete(call);
    // A message that failed its checks comes after every message queued before it.
    const err = pushError ?? checkError ?? readError;
    if (err !== null) {
      // The client went away or its deadline passed: grpc-js already ended the call.
      if (call.cancelled) return;
      callback(this.status(this.streamError(err, messages, accepted)));
      return;
    }
    if (messages === 0) {
      callback(this.status(new PushError('PUSH_ERR_EMPTY_BATCH', 'the stream carried no PushBatchRequest')));
      return;
    }
    callback(null, { code: 0, message: 'ok', accepted });
  }

  /** Puts the stream position and the count accepted so far into the error a stream ends with. */
  private streamError(err: unknown, messages: number, accepted: number): unknown {
    const done = `${accepted} pushes from ${messages} earlier messages were accepted`;
    if (err instanceof PushError) return new PushError(err.code, `stream message ${messages}: ${err.message}; ${done}`);
    // Not a PushError while closing: shutdown() destroyed the stream to end it.
    if (this.closing) return new PushError('PUSH_ERR_SHUTTING_DOWN', `the server is shutting down; ${done}`);
    return err;
  }

  /** The gRPC status for an error: from the ApiErrors table, INTERNAL for anything unexpected. */
  private status(err: unknown): Partial<grpc.StatusObject> {
    if (!(err instanceof PushError)) {
      this.log.error('gRPC call failed', { code: 'PUSH_ERR_INTERNAL', error: (err as Error)?.message ?? String(err) });
      err = new PushError('PUSH_ERR_INTERNAL');
    }
    const { code, message } = err as PushError;
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    const metadata = new grpc.Metadata();
    metadata.set(ERROR_CODE_METADATA, code);
    return { code: ApiErrors[code].grpc as grpc.status, details: `${code}: ${message}`, metadata };
  }
}

/** The address of a grpc-js peer ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678"). */
function peerAddress(peer: string): string {
  const m = /^ipv[46]:\[?([^\]]*?)\]?:\d+$/.exec(peer);
  return normalizeAddress(m !== null ? m[1]! : peer);
}
