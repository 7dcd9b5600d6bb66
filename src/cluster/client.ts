// The etcd client (npm etcd3, gRPC to etcd's v3 API) with failure handling
// fitted to a node that must keep serving through etcd outages: every call
// fails fast and the callers (registration.ts, peers.ts) retry on their own
// schedule. etcd3's defaults would get in the way: a per-host circuit breaker
// that refuses calls for 5 s after etcd is back, and a watch backoff that
// grows to 30 s.

import { ExponentialBackoff, handleWhen, noop, retry } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';

/** Deadline of every unary call (grant, put, range, revoke). */
export const CALL_TIMEOUT_MS = 2_000;

export function createEtcdClient(endpoints: readonly string[]): Etcd3 {
  return new Etcd3({
    hosts: endpoints.map((e) => `http://${e}`),
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
    faultHandling: {
      host: () => noop,
      // One try per endpoint: a call goes to the next one when the first is down.
      global: endpoints.length > 1 ? retry(handleWhen(isRecoverableError), { maxAttempts: endpoints.length - 1 }) : noop,
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }).next(),
    },
    // grpc-js waits up to 2 minutes between reconnection attempts by default.
    grpcOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1_000 },
  });
}
