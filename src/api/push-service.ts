// The push API behind both front doors (HTTP gateway and gRPC): validation,
// the queue body, and the group/system queries. One implementation, so both
// answer the same.
//
// The queue body is the protobuf PushRequest. A JSON push (HTTP) is checked
// and encoded once; a gRPC push arrives as those very bytes, so it is checked
// from its decoded form and its bytes are queued as they came. A broadcast is
// queued as a PushRequest too, with `broadcast` set and `to` empty.

import { cpus } from 'node:os';
import type { Config } from '../config/schema';
import { PushError } from '../../shared/errors';
import { ownerOf } from '../../shared/hash';
import { protoType, type PushRequest } from '../../shared/proto';
import type { ShardStats } from '../../shared/counters';
import type { Queue } from '../queue/queue';
import type { ShardQueries } from '../../workers/shard/host-queries';
import { decodePush, type EncodedPush } from './encoded-push';
import { combineGroup, combineOnline, combineSystem, type GroupReply, type NodeCount, type OnlineReply, type SystemReply } from '../cluster/combine';
import type { PeerQueries } from '../cluster/peer-queries';

export type { SystemReply } from '../cluster/combine';

const PushRequestType = protoType('PushRequest');

/**
 * A batch is checked and encoded in chunks of about this much work (bytes,
 * plus PER_PUSH_COST per push), each in its own event-loop turn, so that a
 * large batch does not hold up other requests for more than a few ms.
 */
const CHUNK_COST = 256 * 1024;
const PER_PUSH_COST = 256;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Whose numbers a query answers with: this node's, or (etcd.enable) every node's. */
export type Scope = 'node' | 'cluster';

/** The scope of a query (HTTP ?scope=, gRPC field scope); empty means cluster. */
export function parseScope(raw: string): Scope {
  if (raw === '' || raw === 'cluster') return 'cluster';
  if (raw === 'node') return 'node';
  throw new PushError('PUSH_ERR_BAD_SCOPE', `scope must be node or cluster (or empty: cluster), got "${raw.slice(0, 64)}"`);
}

function str(name: string, v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new PushError('PUSH_ERR_INVALID_REQUEST', `"${name}" must be a string`);
  return v;
}

export class PushService {
  private closed = false;

  constructor(
    private readonly config: Config,
    private readonly queue: Queue,
    private readonly shards: ShardQueries,
    private readonly shardStats: () => readonly ShardStats[],
    private readonly processorThreads: number,
    /** The other nodes (etcd.enable), or null: every answer is this node's, in gopusher's shape. */
    private readonly peers: PeerQueries | null,
  ) {}

  /** A JSON request (proto3 JSON mapping) as a PushRequest: field types only. */
  private fromJson(input: unknown): PushRequest {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new PushError('PUSH_ERR_INVALID_REQUEST', 'request must be a JSON object with "to" and "content"');
    }
    const { from, to, appID, content, broadcast } = input as Record<string, unknown>;
    if (to !== undefined && to !== null && !Array.isArray(to)) throw new PushError('PUSH_ERR_INVALID_REQUEST', '"to" must be an array of card_id strings');
    if (broadcast !== undefined && broadcast !== null && typeof broadcast !== 'boolean') throw new PushError('PUSH_ERR_INVALID_REQUEST', '"broadcast" must be a boolean');
    return {
      from: str('from', from), to: (to ?? []) as string[], appID: str('appID', appID), content: str('content', content), broadcast: broadcast === true,
    };
  }

  /** A broadcast as JSON (HTTP), or as gRPC decoded it (BroadcastRequest, defaults filled in), as its queue body. */
  private broadcastBody(input: unknown): Uint8Array {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new PushError('PUSH_ERR_INVALID_REQUEST', 'request must be a JSON object with "content" (and "appID")');
    }
    const { from, appID, content } = input as Record<string, unknown>;
    const req: PushRequest = { from: str('from', from), to: [], appID: str('appID', appID), content: str('content', content), broadcast: true };
    this.checkCommon(req);
    return PushRequestType.encode(req).finish();
  }

  /** The limits every push must meet, however it came. Throws PushError with the first problem. */
  private check(req: PushRequest): void {
    const { max_id_length: maxIdLength, max_recipients: maxRecipients } = this.config.push;
    const { to } = req;
    if (req.broadcast) throw new PushError('PUSH_ERR_INVALID_REQUEST', '"broadcast" is set: send broadcasts with POST /broadcast or gRPC Broadcast');
    if (to.length === 0) throw new PushError('PUSH_ERR_EMPTY_TO');
    if (to.length > maxRecipients) throw new PushError('PUSH_ERR_TOO_MANY_RECIPIENTS', `"to" lists ${to.length} card_ids; push.max_recipients is ${maxRecipients}`);
    for (let i = 0; i < to.length; i++) {
      const id = to[i];
      // Not well-formed (a lone surrogate): the queue body's UTF-8 would turn it into another id.
      if (typeof id !== 'string' || id.length === 0 || id.length > maxIdLength || !id.isWellFormed()) {
        throw new PushError('PUSH_ERR_BAD_ID', `"to"[${i}] must be a non-empty, well-formed Unicode string of at most ${maxIdLength} characters`);
      }
    }
    this.checkCommon(req);
  }

  /** What pushes and broadcasts share: appID and content within their limits. */
  private checkCommon(req: PushRequest): void {
    const { max_id_length: maxIdLength, max_content: maxContent } = this.config.push;
    if (req.appID.length > maxIdLength) throw new PushError('PUSH_ERR_BAD_ID', `"appID" is longer than ${maxIdLength} characters`);
    if (!req.appID.isWellFormed()) throw new PushError('PUSH_ERR_BAD_ID', '"appID" is not well-formed Unicode (a lone surrogate)');
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

  private checkEncoded(push: EncodedPush): Uint8Array {
    if (push.badUtf8 !== '') {
      throw new PushError(push.badUtf8 === 'to' || push.badUtf8 === 'appID' ? 'PUSH_ERR_BAD_ID' : 'PUSH_ERR_BAD_ENCODING', `"${push.badUtf8}" is not valid UTF-8`);
    }
    this.check(push.req);
    return push.bytes;
  }

  /** A gRPC push: checked from its decoding, queued as the bytes that arrived. */
  pushEncoded(push: EncodedPush): Promise<void> {
    try {
      this.checkEncoded(push);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.publish([push.bytes]);
  }

  /** JSON pushes, all or nothing: every one is checked before any is queued. Resolves with the count accepted. */
  async pushMany(inputs: readonly unknown[]): Promise<number> {
    const bodies = await this.prepareMany(inputs, false);
    await this.publish(bodies);
    return bodies.length;
  }

  /**
   * A batch's queue bodies, every push checked (all or nothing); `encoded`:
   * the pushes are gRPC bytes (split, undecoded), else JSON values. A large
   * batch is worked through in chunks, one event-loop turn each. Queue the
   * result with publishPrepared(): a stream does so in message order.
   */
  prepareMany(items: readonly unknown[], encoded: boolean, more = false): Promise<Uint8Array[]> {
    const body = encoded ? (item: unknown) => this.checkEncoded(decodePush(item as Uint8Array)) : (item: unknown) => this.encodeJson(item);
    return this.prepare(items, body, 'pushes', more);
  }

  /** A broadcast (JSON, or a decoded gRPC BroadcastRequest), after admit(): checked and queued like a push. */
  broadcast(input: unknown): Promise<void> {
    let body: Uint8Array;
    try {
      body = this.broadcastBody(input);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.publish([body]);
  }

  /** Broadcasts, all or nothing (within push.max_batch); resolves with the count accepted. */
  async broadcastMany(inputs: readonly unknown[]): Promise<number> {
    return this.publishPrepared(await this.prepare(inputs, (input) => this.broadcastBody(input), 'broadcasts', false));
  }

  /** `field`: the batch's list, named in errors. */
  private async prepare(items: readonly unknown[], encode: (item: unknown) => Uint8Array, field: string, more: boolean): Promise<Uint8Array[]> {
    const maxBatch = this.config.push.max_batch;
    if (items.length === 0) throw new PushError('PUSH_ERR_EMPTY_BATCH', `"${field}" must hold at least one item`);
    if (more || items.length > maxBatch) {
      throw new PushError('PUSH_ERR_BATCH_TOO_LARGE', `the batch holds ${more ? 'more than ' : ''}${items.length} ${field}; push.max_batch is ${maxBatch}: split it`);
    }
    this.fits(items.length, 0);
    const bodies = new Array<Uint8Array>(items.length);
    let bytes = 0;
    let cost = 0;
    for (let i = 0; i < items.length; i++) {
      let body: Uint8Array;
      try {
        body = encode(items[i]);
      } catch (err) {
        if (err instanceof PushError) throw new PushError(err.code, `${field}[${i}]: ${err.message}`);
        throw err;
      }
      bodies[i] = body;
      bytes += body.byteLength;
      cost += body.byteLength + PER_PUSH_COST;
      if (cost >= CHUNK_COST && i + 1 < items.length) {
        cost = 0;
        await nextTurn();
        if (this.closed) throw new PushError('PUSH_ERR_SHUTTING_DOWN');
      }
    }
    this.fits(items.length, bytes);
    return bodies;
  }

  /** Throws when a batch this large could never be queued (so "retry later" would be a lie). */
  private fits(count: number, bytes: number): void {
    const problem = this.queue.neverFits(count, bytes);
    if (problem !== null) throw new PushError('PUSH_ERR_BATCH_TOO_LARGE', `${problem}: split the batch`);
  }

  /** Queues what prepareMany() returned. */
  publishPrepared(bodies: readonly Uint8Array[]): Promise<number> {
    return this.publish(bodies).then(() => bodies.length);
  }

  async system(scope: Scope): Promise<SystemReply & NodeCount> {
    if (scope === 'node' || this.peers === null) return this.localSystem();
    const [mine, peers] = await Promise.all([this.localSystem(), this.peers.ask('/system')]);
    return combineSystem(mine, peers);
  }

  private async localSystem(): Promise<SystemReply> {
    const stats = this.shardStats();
    const sum = (k: keyof ShardStats): number => stats.reduce((n, s) => n + s[k], 0);
    return {
      cpuNum: cpus().length,
      goroutineNum: 1 + this.shards.shards + this.processorThreads,
      clientNum: sum('clients'),
      groupNum: sum('groups'),
    };
  }

  /** Member count of a group (-1 when it does not exist): on this node from its owner shard, or summed over the nodes. */
  async group(cardId: string, scope: Scope): Promise<GroupReply & NodeCount> {
    const owner = this.owner(cardId);
    const mine = this.shards.ask<'group'>(owner, { q: 'group', card: cardId }).then((clientNum) => ({ clientNum }));
    if (scope === 'node' || this.peers === null) return mine;
    const [local, peers] = await Promise.all([mine, this.peers.ask(`/group?cardID=${encodeURIComponent(cardId)}`)]);
    return combineGroup(local, peers);
  }

  async isOnline(cardId: string, scope: Scope): Promise<OnlineReply & NodeCount> {
    const owner = this.owner(cardId);
    const mine = this.shards.ask<'online'>(owner, { q: 'online', card: cardId }).then((online): OnlineReply => ({ result: online ? 'yes' : 'no' }));
    if (scope === 'node' || this.peers === null) return mine;
    const [local, peers] = await Promise.all([mine, this.peers.ask(`/isOnline?cardID=${encodeURIComponent(cardId)}`)]);
    return combineOnline(local, peers);
  }

  private owner(cardId: string): number {
    if (cardId === '') throw new PushError('PUSH_ERR_MISSING_CARD_ID');
    return ownerOf(cardId, this.shards.shards);
  }

  close(): void {
    this.closed = true;
  }
}
