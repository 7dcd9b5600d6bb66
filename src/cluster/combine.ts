// Cluster-wide answers from this node's own and the other nodes' answers:
// /system sums every count, /group sums the members (-1 only when no node
// that answered has the group), /isOnline is "yes" if any node says so.
// `nodes` counts this node and every other one known from etcd,
// `nodesAnswered` those whose answer is in the sum. An answer that is not of
// the expected shape counts as no answer.

import type { PeerAnswers } from './peer-queries';

export interface SystemReply {
  cpuNum: number;
  /** gopusher's goroutine count; here the number of threads (main + shards + processors). */
  goroutineNum: number;
  clientNum: number;
  groupNum: number;
}

export interface GroupReply {
  clientNum: number;
}

export interface OnlineReply {
  result: 'yes' | 'no';
}

/** Present only in cluster-wide answers (etcd.enable, no scope=node). */
export interface NodeCount {
  nodes?: number;
  nodesAnswered?: number;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

function fields(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function counted<T>(mine: T, peers: PeerAnswers, valid: (v: Record<string, unknown>) => T | null): { all: T[]; nodes: number; nodesAnswered: number } {
  const all = [mine];
  for (const a of peers.answers) {
    const f = fields(a);
    const v = f === null ? null : valid(f);
    if (v !== null) all.push(v);
  }
  return { all, nodes: 1 + peers.asked, nodesAnswered: all.length };
}

export function combineSystem(mine: SystemReply, peers: PeerAnswers): SystemReply & NodeCount {
  const { all, nodes, nodesAnswered } = counted(mine, peers, (f) => (
    isCount(f.cpuNum) && isCount(f.goroutineNum) && isCount(f.clientNum) && isCount(f.groupNum)
      ? { cpuNum: f.cpuNum, goroutineNum: f.goroutineNum, clientNum: f.clientNum, groupNum: f.groupNum }
      : null
  ));
  const sum = (k: keyof SystemReply): number => all.reduce((n, r) => n + r[k], 0);
  return { cpuNum: sum('cpuNum'), goroutineNum: sum('goroutineNum'), clientNum: sum('clientNum'), groupNum: sum('groupNum'), nodes, nodesAnswered };
}

export function combineGroup(mine: GroupReply, peers: PeerAnswers): GroupReply & NodeCount {
  const { all, nodes, nodesAnswered } = counted(mine, peers, (f) => (isCount(f.clientNum) && f.clientNum >= -1 ? { clientNum: f.clientNum } : null));
  const having = all.filter((r) => r.clientNum >= 0);
  const clientNum = having.length === 0 ? -1 : having.reduce((n, r) => n + r.clientNum, 0);
  return { clientNum, nodes, nodesAnswered };
}

export function combineOnline(mine: OnlineReply, peers: PeerAnswers): OnlineReply & NodeCount {
  const { all, nodes, nodesAnswered } = counted(mine, peers, (f) => (f.result === 'yes' || f.result === 'no' ? { result: f.result } : null));
  return { result: all.some((r) => r.result === 'yes') ? 'yes' : 'no', nodes, nodesAnswered };
}
