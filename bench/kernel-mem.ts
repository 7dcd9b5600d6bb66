// Kernel memory that grows with TCP connections, read from /proc: the TCP
// buffer pages of /proc/net/sockstat, and the slab caches every socket takes
// objects from (/proc/slabinfo, readable by root only). Both are counters of
// the whole machine: on one box the load generator's client sockets count as
// much as the server's, and other processes' sockets and files add noise.

import { readFileSync } from 'node:fs';

const PAGE_BYTES = 4096;

/**
 * The slab caches one TCP socket (an open file) allocates from: the socket
 * (TCP, TCPv6), its inode and dentry, the open file, the epoll entry and
 * the head of its epoll list, and the LSM blobs of inode and file.
 * proc_inode_cache is left out: it grows when something lists
 * /proc/<pid>/fd (here: the sandbox's own monitoring) and is reclaimable.
 */
export const SOCKET_SLABS = [
  'TCP', 'TCPv6', 'sock_inode_cache', 'dentry', 'filp', 'eventpoll_epi', 'ep_head', 'lsm_inode_cache', 'lsm_file_cache',
] as const;

export interface KernelMem {
  /** TCP sockets in use and TCP buffer memory (sockstat "mem", pages → bytes). */
  tcpInuse: number;
  tcpBufBytes: number;
  /** Objects in use and their bytes (objects × object size), per cache of SOCKET_SLABS; null when /proc/slabinfo can't be read. */
  slab: Record<string, { objects: number; bytes: number }> | null;
  slabBytes: number | null;
}

function sockstat(): { inuse: number; mem: number } {
  try {
    const m = /^TCP: inuse (\d+) .*\bmem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'latin1'));
    return m === null ? { inuse: 0, mem: 0 } : { inuse: Number(m[1]), mem: Number(m[2]) };
  } catch {
    // Not Linux: no kernel numbers, the RSS ones still stand.
    return { inuse: 0, mem: 0 };
  }
}

function slabinfo(): Record<string, { objects: number; bytes: number }> | null {
  let text: string;
  try {
    text = readFileSync('/proc/slabinfo', 'latin1');
  } catch {
    // Only root may read it: report what sockstat gives and say so (null).
    return null;
  }
  const out: Record<string, { objects: number; bytes: number }> = {};
  for (const line of text.split('\n')) {
    // name active_objs num_objs objsize ...
    const f = line.split(/\s+/, 4);
    if (!(SOCKET_SLABS as readonly string[]).includes(f[0]!)) continue;
    const objects = Number(f[1]);
    out[f[0]!] = { objects, bytes: objects * Number(f[3]) };
  }
  return out;
}

export function sampleKernel(): KernelMem {
  const s = sockstat();
  const slab = slabinfo();
  return {
    tcpInuse: s.inuse, tcpBufBytes: s.mem * PAGE_BYTES, slab,
    slabBytes: slab === null ? null : Object.values(slab).reduce((n, c) => n + c.bytes, 0),
  };
}
