// The chaos scenario's verdict, from what the sender and the holders recorded:
// did every acknowledged push reach every member of its group that was
// connected throughout its delivery? A member (one WebSocket connection, from
// its join's "ok" to its close) is connected throughout a push when it joined
// before the push was sent and was still open THROUGHOUT_MS after the push was
// acknowledged. README's promise is delivery to every connection of the group
// connected when the push is delivered; with THROUGHOUT_MS well above the
// delivery time (ms, seconds during a fault), such a member is one. Close
// times are the holder's: a holder short of CPU notices a close late (seen:
// 1.4 s after a shard crash). A second check needs no close time: a member
// that received a later push of its group (sent LATER_MS or more after this
// one was acknowledged) was served after this push, and must have it too
// (pushes to a group arrive in order, up to swaps within a millisecond and
// redeliveries, which come while the member is still connected).
// Also: duplicates, what failed, per fault how long until pushes were
// acknowledged again and every push the fault delayed was delivered, and
// whether what was still queued when the server was restarted reached its
// members once they had reconnected (README: "the backlog that waited in nsqd
// reaches them").

import { ownerOf } from '../shared/hash';
import { PushStatus, type Columns } from './chaos-log';
import type { FaultRecord } from './chaos-faults';

export const THROUGHOUT_MS = 5_000;
export const LATER_MS = 1_000;
/** A push is late when a member connected throughout got it more than this long after its acknowledgement (or never). */
export const ON_TIME_MS = 1_000;
/** A fault's late pushes are those acknowledged from THROUGHOUT_MS before it until this long after acknowledgements resumed. */
export const STEADY_MS = 5_000;
/** A stretch without acknowledgements shorter than this is not an outage. */
const ACK_GAP_MIN_MS = 500;
const MISSED_SAMPLES = 20;
const BEFORE_FAULTS = 'before any fault';

export interface ChaosInput {
  senders: Columns[];
  holders: Columns[];
  connections: number;
  groupSize: number;
  /** The server's shard count, to name each missed push's owner shard. */
  shards: number;
  faults: FaultRecord[];
  /** The fleet's start in µs since the epoch, and its series' times (s), for the per-second numbers. */
  startedUs: number;
  seriesT: number[];
}

export interface FaultRecovery {
  kind: string;
  label: string;
  at: number;
  /** The longest stretch without any acknowledgement from the fault on (s), and when it ended, from the fault (0: none over 0.5 s). */
  ackGapS: number;
  acksResumedAfterS: number;
  /** Pushes sent from the fault until acknowledgements resumed that were not acknowledged. */
  failed: number;
  /** Pushes the fault delayed: acknowledged from THROUGHOUT_MS before it until STEADY_MS after acks resumed, delivered > ON_TIME_MS after their ack (or missed). */
  late: number;
  /** The worst such delay (s), and when the last of them was delivered, from the fault (0: none late). */
  worstDelayS: number | null;
  caughtUpAfterS: number;
  /** From the fault until pushes were acknowledged again and every push it delayed was delivered: max of the two. */
  recoveredAfterS: number;
}

export interface MissedSample {
  id: number;
  group: string;
  ownerShard: number;
  sentS: number;
  ackedS: number;
  /** The member connection: its global index, when it joined and closed (null: open at the end). */
  member: { index: number; joinedS: number; closedS: number | null };
  /** Members connected throughout, and how many of them received it. */
  membersConnected: number;
  membersReceived: number;
  /** The last fault before the push was sent, and how long before. */
  afterFault: string | null;
  sinceFaultS: number | null;
}

/** One check: (push, member that must have it) pairs, and those where the member never got the push. */
export interface Check {
  /** Which members must have a push: see the top of this file. */
  rule: string;
  checkedDeliveries: number;
  missed: number;
  /** Acknowledged pushes no member must have (all reconnecting at the time, or no later push reached them): nothing to check. */
  pushesWithoutConnectedMember: number;
  missedByFault: Record<string, number>;
  missedByOwnerShard: Record<string, number>;
  samples: MissedSample[];
}

/**
 * The server restart's backlog: (push, member) pairs where the push was
 * acknowledged before the restart and the member had joined before it was
 * sent but was closed by the restart less than THROUGHOUT_MS after the ack
 * (so the main check leaves the pair out). Delivered before the close, to the
 * member's next connection (it reconnected, and the push had waited in nsqd),
 * or neither.
 */
export interface RestartBacklog {
  pairs: number;
  deliveredBeforeRestart: number;
  deliveredAfterReconnect: number;
  neither: number;
  samples: { id: number; group: string; member: number; ackedS: number; closedS: number; rejoinedS: number | null }[];
  /** Connections the restart closed, and when their members were back (joined again), in s from the restart: half, 90 %, 99 %, all (null: some never were). */
  closed: number;
  rejoinedAfterS: { p50: number | null; p90: number | null; p99: number | null; all: number | null };
  /**
   * Pushes acknowledged after the restart until every connection was back,
   * and how many of them no connection received: the server consumed them
   * while their members were still away (the warm-up is meant to wait).
   */
  ackedWhileRejoining: number;
  ackedWhileRejoiningNeverReceived: number;
}

export interface Verdict {
  /** Pushes offered, acknowledged, and failed by kind (PushStatus). */
  sent: number;
  acknowledged: number;
  failed: { refused: number; connectionError: number; notSent: number; unanswered: number };
  /** Members connected throughout (THROUGHOUT_MS): the pass criterion (missed must be 0). */
  check: Check;
  /** Members that received a later push (LATER_MS): must be 0 as well. */
  later: Check;
  /** Frames a connection received for a push it had already received, in all and by the last fault before. */
  duplicates: number;
  duplicatesByFault: Record<string, number>;
  /** Acknowledged pushes no connection received at all, by the last fault before their ack; unacknowledged ones some connection received. */
  acknowledgedNeverReceived: number;
  neverReceivedByFault: Record<string, number>;
  receivedNotAcknowledged: number;
  /** Frames received (first and again), frames that carried no id of this run, connections (sessions) recorded. */
  frames: number;
  foreignFrames: number;
  sessions: number;
  /** Acknowledgement to the last member connected throughout receiving it, ms, over pushes with such members. */
  deliveryAfterAckMs: { p50: number; p99: number; p999: number; max: number };
  recovery: FaultRecovery[];
  /** null without a server restart among the faults. */
  restartBacklog: RestartBacklog | null;
  perSecond: PerSecond;
}

/**
 * Per entry of the fleet's series (the second up to its `t`), from the
 * records' own times (the children's 1 s reports drift against the fleet's
 * clock): pushes offered (send time), acknowledged (answer time), failed
 * (answer time; not sent: when due), delivered (first frame at any member),
 * and frames received.
 */
export interface PerSecond {
  sent: number[];
  acked: number[];
  failed: number[];
  deliveredPushes: number[];
  frames: number[];
}

/** Counts times (µs since the epoch) into the fleet's seconds: the first series time at or after each. */
class Bins {
  readonly counts: number[];

  constructor(private readonly t: number[], private readonly startedUs: number) {
    this.counts = t.map(() => 0);
  }

  add(us: number): void {
    const at = (us - this.startedUs) / 1e6;
    let lo = 0;
    let hi = this.t.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.t[mid]! < at) lo = mid + 1;
      else hi = mid;
    }
    if (lo < this.counts.length) this.counts[lo]!++;
  }
}

interface Pushes {
  n: number;
  sendUs: Float64Array;
  ackUs: Float64Array;
  /** PushStatus, -1 for an id no sender used. */
  status: Int8Array;
}

interface Sessions {
  slot: number[];
  joinUs: number[];
  /** Infinity: open at the end. */
  closeUs: number[];
  /** Per session: push id -> first receipt (µs). */
  got: Map<number, number>[];
  /** Per push: its first receipt at any session (Infinity: none). */
  firstAny: Float64Array;
  /** Per session: the latest send time among the pushes it received (0: none). */
  lastSentUs: number[];
  frames: number;
  foreign: number;
  duplicates: number;
  duplicatesByFault: Record<string, number>;
}

const ms = (us: number): number => Math.round(us) / 1000;
const bump = (m: Record<string, number>, k: string, by = 1): void => {
  m[k] = (m[k] ?? 0) + by;
};

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

function pushesOf(senders: Columns[]): Pushes {
  let n = 0;
  for (const c of senders) for (const id of c.id!) n = Math.max(n, id + 1);
  const p: Pushes = { n, sendUs: new Float64Array(n), ackUs: new Float64Array(n), status: new Int8Array(n).fill(-1) };
  for (const c of senders) {
    for (let k = 0; k < c.id!.length; k++) {
      const id = c.id![k]!;
      p.sendUs[id] = c.sendUs![k]!;
      p.ackUs[id] = c.ackUs![k]!;
      p.status[id] = c.status![k]!;
    }
  }
  return p;
}

function sessionsOf(holders: Columns[], p: Pushes, faultAt: (us: number) => string, frames: Bins): Sessions {
  const s: Sessions = {
    slot: [], joinUs: [], closeUs: [], got: [], firstAny: new Float64Array(p.n).fill(Infinity), lastSentUs: [], frames: 0, foreign: 0, duplicates: 0, duplicatesByFault: {},
  };
  for (const h of holders) {
    const base = s.slot.length;
    for (let k = 0; k < h.slot!.length; k++) {
      s.slot.push(h.slot![k]!);
      s.joinUs.push(h.joinUs![k]!);
      s.closeUs.push(h.closeUs![k]! === 0 ? Infinity : h.closeUs![k]!);
      s.got.push(new Map());
      s.lastSentUs.push(0);
    }
    for (let k = 0; k < h.id!.length; k++) {
      const id = h.id![k]!;
      if (id < 0 || id >= p.n || p.status[id] === -1) {
        s.foreign++;
        continue;
      }
      s.frames++;
      const at = h.atUs![k]!;
      frames.add(at);
      const session = base + h.session![k]!;
      const m = s.got[session]!;
      if (p.sendUs[id]! > s.lastSentUs[session]!) s.lastSentUs[session] = p.sendUs[id]!;
      if (m.has(id)) {
        s.duplicates++;
        bump(s.duplicatesByFault, faultAt(at));
      } else m.set(id, at);
      if (at < s.firstAny[id]!) s.firstAny[id] = at;
    }
  }
  return s;
}

function emptyCheck(rule: string): Check {
  return { rule, checkedDeliveries: 0, missed: 0, pushesWithoutConnectedMember: 0, missedByFault: {}, missedByOwnerShard: {}, samples: [] };
}

export function analyse(inp: ChaosInput): Verdict {
  const sec = (us: number): number => +((us - inp.startedUs) / 1e6).toFixed(3);
  const lastFault = (us: number): FaultRecord | null => {
    let f: FaultRecord | null = null;
    for (const x of inp.faults) if (x.atUs <= us) f = x;
    return f;
  };
  const faultAt = (us: number): string => lastFault(us)?.label ?? BEFORE_FAULTS;
  const bins = (): Bins => new Bins(inp.seriesT, inp.startedUs);
  const per = { sent: bins(), acked: bins(), failed: bins(), deliveredPushes: bins(), frames: bins() };
  const p = pushesOf(inp.senders);
  const s = sessionsOf(inp.holders, p, faultAt, per.frames);
  const groups = Math.ceil(inp.connections / inp.groupSize);
  const byGroup: number[][] = Array.from({ length: groups }, () => []);
  for (let i = 0; i < s.slot.length; i++) byGroup[Math.floor(s.slot[i]! / inp.groupSize)]!.push(i);

  const failed = { refused: 0, connectionError: 0, notSent: 0, unanswered: 0 };
  const check = emptyCheck(`joined before the push was sent, open until ${THROUGHOUT_MS} ms after its ack`);
  const later = emptyCheck(`joined before the push was sent, received a push sent ${LATER_MS} ms or more after its ack`);
  /** Whether member m must have push id, by each check's rule. */
  const must = (c: Check, m: number, id: number): boolean => s.joinUs[m]! < p.sendUs[id]!
    && (c === check ? s.closeUs[m]! >= p.ackUs[id]! + THROUGHOUT_MS * 1000 : s.lastSentUs[m]! >= p.ackUs[id]! + LATER_MS * 1000);
  let acknowledged = 0;
  let neverReceived = 0;
  const neverReceivedByFault: Record<string, number> = {};
  let receivedNotAcked = 0;
  /** Acknowledgement to complete delivery (THROUGHOUT_MS members), µs; Infinity: missed; NaN: no such member. */
  const delay = new Float64Array(p.n).fill(NaN);
  for (let id = 0; id < p.n; id++) {
    const st = p.status[id]!;
    if (st === -1) continue;
    per.sent.add(p.sendUs[id]!);
    if (s.firstAny[id]! < Infinity) per.deliveredPushes.add(s.firstAny[id]!);
    if (st === PushStatus.acked) per.acked.add(p.ackUs[id]!);
    else per.failed.add(st === PushStatus.notSent || st === PushStatus.unanswered ? p.sendUs[id]! : p.ackUs[id]!);
    if (st !== PushStatus.acked) {
      if (st === PushStatus.refused) failed.refused++;
      else if (st === PushStatus.connectionError) failed.connectionError++;
      else if (st === PushStatus.notSent) failed.notSent++;
      else if (st === PushStatus.unanswered) failed.unanswered++;
      if (s.firstAny[id]! < Infinity) receivedNotAcked++;
      continue;
    }
    acknowledged++;
    if (s.firstAny[id] === Infinity) {
      neverReceived++;
      bump(neverReceivedByFault, faultAt(p.ackUs[id]!));
    }
    const g = id % groups;
    for (const c of [check, later]) {
      let connected = 0;
      let received = 0;
      let last = 0;
      const missing: number[] = [];
      for (const m of byGroup[g]!) {
        if (!must(c, m, id)) continue;
        connected++;
        const at = s.got[m]!.get(id);
        if (at === undefined) missing.push(m);
        else {
          received++;
          if (at > last) last = at;
        }
      }
      c.checkedDeliveries += connected;
      if (connected === 0) {
        c.pushesWithoutConnectedMember++;
        continue;
      }
      if (c === check) delay[id] = missing.length > 0 ? Infinity : last - p.ackUs[id]!;
      if (missing.length === 0) continue;
      c.missed += missing.length;
      const f = lastFault(p.sendUs[id]!);
      const card = `c${g}`;
      const owner = ownerOf(card, inp.shards);
      bump(c.missedByFault, f?.label ?? BEFORE_FAULTS, missing.length);
      bump(c.missedByOwnerShard, String(owner), missing.length);
      for (const m of missing) {
        if (c.samples.length >= MISSED_SAMPLES) break;
        c.samples.push({
          id, group: card, ownerShard: owner, sentS: sec(p.sendUs[id]!), ackedS: sec(p.ackUs[id]!),
          member: { index: s.slot[m]!, joinedS: sec(s.joinUs[m]!), closedS: s.closeUs[m] === Infinity ? null : sec(s.closeUs[m]!) },
          membersConnected: connected, membersReceived: received,
          afterFault: f?.label ?? null, sinceFaultS: f === null ? null : +((p.sendUs[id]! - f.atUs) / 1e6).toFixed(3),
        });
      }
    }
  }

  const restart = inp.faults.find((f) => f.kind === 'pusher');
  const finite: number[] = [];
  for (const d of delay) if (Number.isFinite(d)) finite.push(d);
  const sorted = Float64Array.from(finite).sort();
  return {
    sent: p.n, acknowledged, failed, check, later, duplicates: s.duplicates, duplicatesByFault: s.duplicatesByFault,
    acknowledgedNeverReceived: neverReceived, neverReceivedByFault, receivedNotAcknowledged: receivedNotAcked,
    frames: s.frames, foreignFrames: s.foreign, sessions: s.slot.length,
    deliveryAfterAckMs: { p50: ms(quantile(sorted, 0.5)), p99: ms(quantile(sorted, 0.99)), p999: ms(quantile(sorted, 0.999)), max: ms(sorted[sorted.length - 1] ?? 0) },
    recovery: inp.faults.map((f, i) => recovery(f, inp.faults[i + 1]?.atUs ?? Infinity, p, delay)),
    restartBacklog: restart === undefined ? null : restartBacklog(restart, p, s, byGroup, groups, sec),
    perSecond: {
      sent: per.sent.counts, acked: per.acked.counts, failed: per.failed.counts, deliveredPushes: per.deliveredPushes.counts, frames: per.frames.counts,
    },
  };
}

/** What one fault did: the acknowledgement outage, the pushes it delayed, and when both were over. */
function recovery(f: FaultRecord, nextUs: number, p: Pushes, delay: Float64Array): FaultRecovery {
  // Acknowledgement times from the fault to the next one, in order.
  const acks: number[] = [];
  for (let id = 0; id < p.n; id++) if (p.status[id] === PushStatus.acked && p.ackUs[id]! >= f.atUs && p.ackUs[id]! < nextUs) acks.push(p.ackUs[id]!);
  acks.sort((a, b) => a - b);
  let gap = 0;
  let gapEnd = f.atUs;
  let prev = f.atUs;
  for (const a of acks) {
    if (a - prev > gap) {
      gap = a - prev;
      gapEnd = a;
    }
    prev = a;
  }
  const resumedUs = gap >= ACK_GAP_MIN_MS * 1000 ? gapEnd : f.atUs;
  let failed = 0;
  let late = 0;
  let worst: number | null = null;
  let caughtUpUs = f.atUs;
  for (let id = 0; id < p.n; id++) {
    if (p.status[id] !== PushStatus.acked) {
      if (p.sendUs[id]! >= f.atUs && p.sendUs[id]! < resumedUs) failed++;
      continue;
    }
    const a = p.ackUs[id]!;
    const d = delay[id]!;
    if (a < f.atUs - THROUGHOUT_MS * 1000 || a > resumedUs + STEADY_MS * 1000 || a >= nextUs || !(d > ON_TIME_MS * 1000)) continue;
    late++;
    if (Number.isFinite(d)) {
      worst = Math.max(worst ?? 0, d);
      caughtUpUs = Math.max(caughtUpUs, a + d);
    }
  }
  const after = (us: number): number => +((us - f.atUs) / 1e6).toFixed(2);
  return {
    kind: f.kind, label: f.label, at: f.at, ackGapS: +(gap / 1e6).toFixed(2), acksResumedAfterS: after(resumedUs), failed,
    late, worstDelayS: worst === null ? null : +(worst / 1e6).toFixed(2), caughtUpAfterS: after(caughtUpUs),
    recoveredAfterS: after(Math.max(resumedUs, caughtUpUs)),
  };
}

function restartBacklog(f: FaultRecord, p: Pushes, s: Sessions, byGroup: number[][], groups: number, sec: (us: number) => number): RestartBacklog {
  // A slot's sessions in the order they joined (each holder records them so).
  const bySlot = new Map<number, number[]>();
  for (let i = 0; i < s.slot.length; i++) {
    const l = bySlot.get(s.slot[i]!);
    if (l === undefined) bySlot.set(s.slot[i]!, [i]);
    else l.push(i);
  }
  const out: RestartBacklog = {
    pairs: 0, deliveredBeforeRestart: 0, deliveredAfterReconnect: 0, neither: 0, samples: [], closed: 0,
    rejoinedAfterS: { p50: null, p90: null, p99: null, all: null }, ackedWhileRejoining: 0, ackedWhileRejoiningNeverReceived: 0,
  };
  // Back: a connection the restart closed (within THROUGHOUT_MS of it) whose slot joined again.
  const back: number[] = [];
  for (let m = 0; m < s.slot.length; m++) {
    const close = s.closeUs[m]!;
    if (close < f.atUs || close >= f.atUs + THROUGHOUT_MS * 1000) continue;
    out.closed++;
    const next = bySlot.get(s.slot[m]!)!.find((n) => s.joinUs[n]! >= close);
    back.push(next === undefined ? Infinity : (s.joinUs[next]! - f.atUs) / 1e6);
  }
  back.sort((a, b) => a - b);
  const at = (q: number): number | null => {
    const v = back[Math.min(back.length - 1, Math.ceil(q * back.length) - 1)];
    return v === undefined || v === Infinity ? null : +v.toFixed(2);
  };
  out.rejoinedAfterS = { p50: at(0.5), p90: at(0.9), p99: at(0.99), all: at(1) };
  const allBackUs = f.atUs + (back.length === 0 ? 0 : Math.min(back[back.length - 1]!, THROUGHOUT_MS * 4 / 1000) * 1e6);
  for (let id = 0; id < p.n; id++) {
    if (p.status[id] !== PushStatus.acked || p.ackUs[id]! < f.atUs || p.ackUs[id]! > allBackUs) continue;
    out.ackedWhileRejoining++;
    if (s.firstAny[id] === Infinity) out.ackedWhileRejoiningNeverReceived++;
  }
  for (let id = 0; id < p.n; id++) {
    const ack = p.ackUs[id]!;
    if (p.status[id] !== PushStatus.acked || ack >= f.atUs || ack < f.atUs - THROUGHOUT_MS * 1000) continue;
    for (const m of byGroup[id % groups]!) {
      const close = s.closeUs[m]!;
      if (!(s.joinUs[m]! < p.sendUs[id]! && close >= f.atUs && close < ack + THROUGHOUT_MS * 1000)) continue;
      out.pairs++;
      if (s.got[m]!.has(id)) {
        out.deliveredBeforeRestart++;
        continue;
      }
      const next = bySlot.get(s.slot[m]!)!.find((n) => s.joinUs[n]! >= close);
      if (next !== undefined && s.got[next]!.has(id)) {
        out.deliveredAfterReconnect++;
        continue;
      }
      out.neither++;
      if (out.samples.length < MISSED_SAMPLES) {
        out.samples.push({ id, group: `c${id % groups}`, member: s.slot[m]!, ackedS: sec(ack), closedS: sec(close), rejoinedS: next === undefined ? null : sec(s.joinUs[next]!) });
      }
    }
  }
  return out;
}
