// The process's open-file limit, which bounds how many connections it can
// hold: past it accept() fails with EMFILE, and uSockets then retries the
// still-readable listen socket in a busy loop. server.max_connections = 0 is
// derived from it (load.ts), with descriptors kept back for the rest.

import { readFileSync } from 'node:fs';

/** Assumed when /proc is not there to ask (not Linux): the usual soft default. */
const UNKNOWN_LIMIT = 1024;

/** The soft RLIMIT_NOFILE (the one that applies) from /proc/self/limits. */
export function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    if (soft === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(soft);
    return Number.isSafeInteger(n) && n > 0 ? n : UNKNOWN_LIMIT;
  } catch {
    return UNKNOWN_LIMIT;
  }
}

/** WebSocket connections allowed when max_connections is 0: the limit less the reserve (at most half of it). */
export function derivedMaxConnections(limit: number, reserve: number): number {
  return Math.max(1, limit - Math.min(reserve, Math.floor(limit / 2)));
}
