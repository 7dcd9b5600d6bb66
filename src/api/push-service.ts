// The push API behind both front doors (HTTP gateway and gRPC): validation,
// the queue body, and the group/system queries. One implementation, so both
// answer the same.
//
// The queue body is the protobuf PushRequest. A JSON push (HTTP) is checked
// and encoded once; a gRPC push arrives as those very bytes, so it is checked
// from its decoded form and its bytes are queued as they came.

import { cpus } from 'node:os';
import type { Config } from '../config/schema';
import { PushError } from '../../shared/errors';
import { ownerOf } from '../../shared/hash';
import { protoType, type PushRequest } from '../../shared/proto';
import type { ShardStats } from '../../shared/counters';
import type { Queue } from '../queue/queue';
import type { ShardQueries } from '../../workers/shard/host-queries';

const PushRequestType = protoType('PushRequest');

export interface SystemReply {
  cpuNum: number;
  /** gopusher's goroutine count; here the number of threads (main + shards + processors). */
  goroutineNum: number;
  clientNum: number;
  groupNum: number;
}

/** A push as it arrived over gRPC: its bytes (the queue body) and their decoding. */
export interface EncodedPush {
  readonly bytes: Uint8Array;
  readonly req: PushRequest;
}

export class PushService {
  private closed = false;

  constructor(
    private readonly config: Config,
    private readonly queue: Queue,
    private readonly shards: ShardQueries,
    private readonly shardStats: () => readonly ShardStats[],
    private readonly processorThreads: number,
  ) {}

  /** A JSON request (proto3 JSON mapping) as a PushRequest: field types only. */
  private fromJson(input: unknown): PushRequest {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new PushError('PUSH_ERR_INVALID_REQUEST', 'request must be a JSON object with "to" and "content"');
    }
    const { from, to, appID, content } = input as Record<string, unknown>;
    const str = (name: string, v: unknown): string => {
      if (v === undefined || v === null) return '';
      if (typeof v !== 'string') throw new PushError('PUSH_ERR_INVALID_REQUEST', `"${name}" must be a string`);
      return v;
    };
    if (to !== undefined && to !== null && !Array.isArray(to)) throw new PushError('PUSH_ERR_INVALID_REQUEST', '"to" must be an array of card_id strings');
    return { from: str('from', from), to: (to ?? []) as string[], appID: str('appID', appID), content: str('content', content) };
  }

  /** The limits every push must meet, however it came. Throws PushError with the first problem. */
  private check(req: PushRequest): void {
    const { max_id_length: maxIdLength, max_recipients: maxRecipients, max_content: maxContent } = this.config.push;
    const { to } = req;
    if (to.length === 0) throw new PushError('PUSH_ERR_EMPTY_TO');
    if (to.length > maxRecipients) throw new PushError('PUSH_ERR_TOO_MANY_RECIPIENTS', `"to" lists ${to.length} card_ids; push.max_recipients is ${maxRecipients}`);
    for (let i = 0; i < to.length; i++) {
      const id = to[i];
      if (typeof id !== 'string' || id.length === 0 || id.length > maxIdLength) {
        throw new PushError('PUSH_ERR_BAD_ID', `"to"[${i}] must be a non-empty string of at most ${maxIdLength} characters`);
      }
    }
    if (req.appID.length > maxIdLength) throw new PushError('PUSH_ERR_BAD_ID', `"appID" is longer than ${maxIdLength} characters`);
    if (req.content.length > maxContent || Buffer.byteLength(req.content, 'utf8') > maxContent) {
      throw new PushError('PUSH_ERR_CONTENT_TOO_LARGE', `"content" is longer than ${maxContent} bytes (push.max_content)`);
    }
  }

  private encodeJson(input: unknown): Uint8Array {
    const req = this.fromJson(input);
    this.check(req);
    return PushRequestType.encode(req).finish();
  }

  /**
   * Throws the error a push would get now (shutting down, queue full or
   * unreachable) without looking at it: the front doors call it before they
   * parse a body, so refusing under overload costs next to nothing.
   */
  admit(): void {
    if (this.closed) throw new PushError('PUSH_ERR_SHUTTING_DOWN');
    const refusal = this.queue.admit();
    if (refusal !== null) throw refusal;
  }

  /** Queues bodies already checked; the queue refuses on its own when full or unreachable. */
  private publish(bodies: readonly Uint8Array[]): Promise<void> {
    if (this.closed) return Promise.reject(new PushError('PUSH_ERR_SHUTTING_DOWN'));
    return this.queue.publish(bodies);
  }

  /** A JSON push, after admit(): checks, encodes and queues; resolves when the queue accepted it. */
  push(input: unknown): Promise<void> {
    let body: Uint8Array;
    try {
      body = this.encodeJson(input);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.publish([body]);
  }

  /** A gRPC push: checked from its decoding, queued as the bytes that arrived. */
  pushEncoded(push: EncodedPush): Promise<void> {
    try {
      this.check(push.req);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.publish([push.bytes]);
  }

  /** JSON pushes, all or nothing: every one is checked before any is queued. Resolves with the count accepted. */
  pushMany(inputs: readonly unknown[]): Promise<number> {
    return this.publishAll(inputs, (input) => this.encodeJson(input));
  }

  /** gRPC pushes, all or nothing, queued as the bytes that arrived. */
  pushManyEncoded(pushes: readonly EncodedPush[]): Promise<number> {
    return this.publishAll(pushes, (push) => {
      this.check(push.req);
      return push.bytes;
    });
  }

  private async publishAll<T>(items: readonly T[], body: (item: T) => Uint8Array): Promise<number> {
    if (items.length === 0) throw new PushError('PUSH_ERR_EMPTY_BATCH');
    const bodies = items.map((item, i) => {
      try {
        return body(item);
      } catch (err) {
        if (err instanceof PushError) throw new PushError(err.code, `pushes[${i}]: ${err.message}`);
        throw err;
      }
    });
    await this.publish(bodies);
    return bodies.length;
  }

  async system(): Promise<SystemReply> {
    const stats = this.shardStats();
    const sum = (k: keyof ShardStats): number => stats.reduce((n, s) => n + s[k], 0);
    return {
      cpuNum: cpus().length,
      goroutineNum: 1 + this.shards.shards + this.processorThreads,
      clientNum: sum('clients'),
      groupNum: sum('groups'),
    };
  }

  /** Member count of a group across shards, from its owner; -1 when it does not exist. */
  async group(cardId: string): Promise<number> {
    return this.shards.ask<'group'>(this.owner(cardId), { q: 'group', card: cardId });
  }

  async isOnline(cardId: string): Promise<'yes' | 'no'> {
    return (await this.shards.ask<'online'>(this.owner(cardId), { q: 'online', card: cardId })) ? 'yes' : 'no';
  }

  private owner(cardId: string): number {
    if (cardId === '') throw new PushError('PUSH_ERR_MISSING_CARD_ID');
    return ownerOf(cardId, this.shards.shards);
  }

  close(): void {
    this.closed = true;
  }
}
