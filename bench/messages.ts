// IPC messages between the orchestrator (run.ts) and its child processes:
// connection holders (holder.ts) and push senders (sender.ts).

import type { SparseCounts } from './histogram';

export interface AppShare {
  app: string;
  weight: number;
}

export interface HolderStart {
  t: 'start';
  /** Connection i goes to urls[i % urls.length] (several: the nodes of a cluster). */
  urls: string[];
  /** Global index of this holder's first connection: card_id = c<floor(index / groupSize)>. */
  first: number;
  /** Connections to open now; a later HolderGrow raises it. */
  count: number;
  groupSize: number;
  apps: AppShare[];
  /** Source addresses to spread connections over (empty: let the kernel pick). */
  localAddresses: string[];
  /** Connection attempts in flight at once. */
  concurrency: number;
  /**
   * chaos: reopen and rejoin a connection whenever it closes (after a short,
   * spread delay) and retry failed attempts without end, as real clients do.
   */
  reconnect: boolean;
  /** chaos: record every connection's join and close time and every push id received, into this file at stop (null: don't). */
  recordFile: string | null;
}

export interface HolderTick {
  t: 'tick';
  /** Connections joined (got the join's "ok") and still open. */
  joined: number;
  /** Connections that failed for good (all retries used) or closed unexpectedly. */
  failed: number;
  closed: number;
  /** Push frames received in this interval, and their latency histogram. */
  delivered: number;
  hist: SparseCounts;
  sum: number;
  max: number;
  /** Frames that were not bench pushes (errors, stray replies). */
  other: number;
}

/** Open more connections: `count` in all (indices first .. first + count - 1). */
export interface HolderGrow {
  t: 'grow';
  count: number;
}

export interface HolderJoined {
  t: 'joined';
  /** The count this answers: every one of them joined or failed for good. */
  count: number;
  joined: number;
  failed: number;
}

/** http-broadcast: POST /broadcast to every connection (appID ""); each request is one broadcast. */
export type PushPath = 'http' | 'http-batch' | 'http-broadcast' | 'grpc' | 'grpc-batch' | 'grpc-stream';

export interface SenderStart {
  t: 'start';
  path: PushPath;
  httpUrl: string;
  grpcAddr: string;
  /** This sender's index and the number of senders: push j of this sender is global push index*senders+j. */
  index: number;
  senders: number;
  /** Pushes per second for this sender; 0 = as fast as the window allows. */
  rate: number;
  /** Most pushes this sender sends (0 = no bound but time). */
  count: number;
  durationMs: number;
  /** Recipient layout: `connections` joined in groups of `groupSize`. */
  connections: number;
  groupSize: number;
  /** Pushes per request (http-batch, grpc-batch) or per stream message (grpc-stream). */
  batch: number;
  /** Transport connections and requests in flight on each. */
  conns: number;
  inflight: number;
  /** Open a new connection when one closes (HTTP): the server may be restarted under the sender. */
  reconnect: boolean;
  /**
   * chaos: give each push an id (in its content, after the send time) and
   * record its send time, answer time and outcome into this file when done
   * (null: don't).
   */
  recordFile: string | null;
  /** Sent as Authorization: Bearer (HTTP) or the same metadata (gRPC); '' = none. */
  apiKey: string;
}

export interface SenderTick {
  t: 'tick';
  /** Pushes written in this interval. */
  sent: number;
  /** Pushes the server accepted (2xx, gRPC OK), failed (other answers, errors), in this interval. */
  acked: number;
  failed: number;
  /** Frames the accepted pushes should produce (group sizes summed). */
  expected: number;
}

export interface SenderDone {
  t: 'done';
  sent: number;
  acked: number;
  failed: number;
  expected: number;
  /** First few distinct failure descriptions. */
  errors: string[];
}

export type ParentToChild = HolderStart | HolderGrow | SenderStart | { t: 'stop' };
export type HolderToParent = HolderTick | HolderJoined;
export type SenderToParent = SenderTick | SenderDone;
