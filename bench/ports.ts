// Free loopback ports for the servers and daemons the bench and the tests
// start (test/helpers re-exports this: one picker for both).
//
// A port is picked at random below the kernel's ephemeral range: ports from
// listen(0) come from that range, where the kernel also takes the source ports
// of outgoing connections (thousands here) and the inspector's port 0, so one
// could be taken again before its server binds it, or while a process that is
// restarted on the same ports (chaos, etcd started later) is down. A port is
// handed out once per process, and reserved machine-wide by a file for
// RESERVE_MS, so that parallel test files (tap runs several at once) never
// get the same one between picking it and binding it.

import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOWEST = 10_000;
const RESERVE_MS = 15 * 60_000;
const RESERVED_DIR = join(tmpdir(), 'pusher-ports');

const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const top = Math.min(low ?? 32768, 65536);
  mkdirSync(RESERVED_DIR, { recursive: true });
  for (;;) {
    const port = LOWEST + Math.floor(Math.random() * (top - LOWEST));
    if (handedOut.has(port) || !reserve(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
}

/** Takes the machine-wide reservation of `port` (one expired long ago is taken over). */
function reserve(port: number): boolean {
  const file = join(RESERVED_DIR, String(port));
  try {
    closeSync(openSync(file, 'wx'));
    return true;
  } catch {
    try {
      if (Date.now() - statSync(file).mtimeMs < RESERVE_MS) return false;
      unlinkSync(file);
      closeSync(openSync(file, 'wx'));
      return true;
    } catch {
      return false;
    }
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}
