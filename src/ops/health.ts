// GET /healthz and GET /readyz. Liveness: the process answers HTTP. Readiness:
// every check passes; each is a synchronous look at state the main thread
// already holds (shard threads, heartbeats in shared counters, queue
// connections), so polling every second costs nothing but the request.
//
// Checks are a list (src/server.ts): server, shards, queue and, in cluster
// mode, the etcd registration.

export interface ReadinessCheck {
  /** Key in the answer's `checks`. */
  readonly name: string;
  /** Null when this part is ready, else why not (one line). */
  check(): string | null;
}

export interface Readiness {
  readonly ready: boolean;
  /** Per check: "ok" or why not. */
  readonly checks: Record<string, string>;
}

export function readiness(checks: readonly ReadinessCheck[]): Readiness {
  const out: Record<string, string> = {};
  let ready = true;
  for (const c of checks) {
    const why = c.check();
    out[c.name] = why ?? 'ok';
    if (why !== null) ready = false;
  }
  return { ready, checks: out };
}
