// The push API behind both front doors (HTTP gateway and gRPC): validation,
// encoding into the queue body, and the group/system queries. One
// implementation, so both answer the same.

import { cpus } from 'node:os';
import type { Config } from './config';
import { PushError } from './errors';
import { ownerOf } from './shared/hash';
import { protoType, type PushRequest } from './shared/proto';
import type { ShardStats } from './shared/frames';
import type { Queue } from './queue/queue';
import type { Supervisor } from './supervisor';

const PushRequestType = protoType('PushRequest');

export interface SystemReply {
  cpuNum: number;
  /** gopusher's goroutine count; here the number of threads (main + shards + processors). */
  goroutineNum: number;
  clientNum: number;
  groupNum: number;
}

export class PushService {
  private closed = false;

  constructor(
    private readonly config: Config,
    private readonly queue: Queue,
    private readonly supervisor: Supervisor,
    private readonly processorThreads: number,
  ) {}

  /**
   * Checks a request that came as JSON (proto3 JSON mapping) or from gRPC and
   * returns it filled with defaults. Throws PushError with the first problem.
   */
  private validate(input: unknown): PushRequest {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new PushError('PUSH_ERR_INVALID_REQUEST', 'request must be a JSON object with "to" and "content"');
    }
    const { from, to, appID, content } = input as Record<string, unknown>;
    const { maxIdLength, maxRecipients, maxContent } = this.config.push;
    const str = (name: string, v: unknown): string => {
      if (v === undefined || v === null) return '';
      if (typeof v !== 'string') throw new PushError('PUSH_ERR_INVALID_REQUEST', `"${name}" must be a string`);
      return v;
    };
    const req: PushRequest = { from: str('from', from), to: [], appID: str('appID', appID), content: str('content', content) };
    if (to !== undefined && to !== null && !Array.isArray(to)) throw new PushError('PUSH_ERR_INVALID_REQUEST', '"to" must be an array of card_id strings');
    if (to == null || to.length === 0) throw new PushError('PUSH_ERR_EMPTY_TO');
    if (to.length > maxRecipients) throw new PushError('PUSH_ERR_TOO_MANY_RECIPIENTS', `"to" lists ${to.length} card_ids; push.max_recipients is ${maxRecipients}`);
    for (let i = 0; i < to.length; i++) {
      const id = to[i];
      if (typeof id !== 'string' || id.length === 0 || id.length > maxIdLength) {
        throw new PushError('PUSH_ERR_BAD_ID', `"to"[${i}] must be a non-empty string of at most ${maxIdLength} characters`);
      }
    }
    req.to = to as string[];
    if (req.appID.length > maxIdLength) throw new PushError('PUSH_ERR_BAD_ID', `"appID" is longer than ${maxIdLength} characters`);
    if (req.content.length > maxContent || Buffer.byteLength(req.content, 'utf8') > maxContent) {
      throw new PushError('PUSH_ERR_CONTENT_TOO_LARGE', `"content" is longer than ${maxContent} bytes (push.max_content)`);
    }
    return req;
  }

  private encode(req: PushRequest): Uint8Array {
    return PushRequestType.encode(req).finish();
  }

  /**
   * Throws the error a push would get now without validating or encoding it
   * (shutting down, queue full or unreachable): the gateway calls it before
   * parsing a body, so refusing under overload costs next to nothing.
   */
  admit(): void {
    if (this.closed) throw new PushError('PUSH_ERR_SHUTTING_DOWN');
    const refusal = this.queue.admit();
    if (refusal !== null) throw refusal;
  }

  /** Validates, encodes and queues; resolves when the queue accepted the push. */
  push(input: unknown): Promise<void> {
    try {
      this.admit();
      return this.queue.publish([this.encode(this.validate(input))]);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** All or nothing: every push is validated before any is queued. Resolves with the count accepted. */
  async pushMany(inputs: readonly unknown[]): Promise<number> {
    this.admit();
    if (inputs.length === 0) throw new PushError('PUSH_ERR_EMPTY_BATCH');
    const bodies = inputs.map((input, i) => {
      try {
        return this.encode(this.validate(input));
      } catch (err) {
        if (err instanceof PushError) throw new PushError(err.code, `pushes[${i}]: ${err.message}`);
        throw err;
      }
    });
    await this.queue.publish(bodies);
    return bodies.length;
  }

  async system(): Promise<SystemReply> {
    const stats = await this.supervisor.stats();
    const sum = (k: keyof ShardStats): number => stats.reduce((n, s) => n + s[k], 0);
    return {
      cpuNum: cpus().length,
      goroutineNum: 1 + this.supervisor.shardCount + this.processorThreads,
      clientNum: sum('clients'),
      groupNum: sum('groups'),
    };
  }

  /** Member count of a group across shards, from its owner; -1 when it does not exist. */
  group(cardId: string): Promise<number> {
    return this.supervisor.query<'group'>(ownerOf(cardId, this.supervisor.shardCount), { q: 'group', card: cardId });
  }

  async isOnline(cardId: string): Promise<'yes' | 'no'> {
    const online = await this.supervisor.query<'online'>(ownerOf(cardId, this.supervisor.shardCount), { q: 'online', card: cardId });
    return online ? 'yes' : 'no';
  }

  close(): void {
    this.closed = true;
  }
}
