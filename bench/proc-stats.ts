// Reads a process's resident memory and CPU time from /proc (Linux): what the
// server costs, sampled without touching it.

import { readFileSync } from 'node:fs';

/** USER_HZ: /proc CPU times are in these ticks (100 on every common Linux build). */
const TICKS_PER_S = 100;

export interface ProcSample {
  /** Monotonic time of the sample, ms. */
  at: number;
  rssBytes: number;
  /** User + system CPU time so far, seconds. */
  cpuS: number;
  threads: number;
}

export function sampleProc(pid: number): ProcSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces): state is [0], utime [11], stime [12].
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    const threads = /Threads:\s+(\d+)/.exec(status);
    return {
      at: performance.now(),
      rssBytes: rss === null ? 0 : Number(rss[1]) * 1024,
      cpuS: (Number(f[11]) + Number(f[12])) / TICKS_PER_S,
      threads: threads === null ? 0 : Number(threads[1]),
    };
  } catch {
    // The process is gone (or never was ours to read): no sample.
    return null;
  }
}

/** CPU used between two samples, in % of one core. */
export function cpuPercent(a: ProcSample, b: ProcSample): number {
  const dt = (b.at - a.at) / 1000;
  return dt <= 0 ? 0 : (100 * (b.cpuS - a.cpuS)) / dt;
}
