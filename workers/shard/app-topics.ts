// Broadcasts inside a shard, with uWS's own publish/subscribe: every joined
// connection is subscribed to one topic, its app_id's, so a broadcast to an
// app is one publish, and a broadcast to all is one publish per app_id in
// use. uWS then writes each subscriber in C++, and coalesces what is
// published to one socket in one event-loop turn into one write; a send() to
// a subscriber first writes what was published to it before, so broadcasts
// and pushes keep the order in which this shard handed them over.
//
// Slow subscribers: uWS's publish sends like ws.send(), so a socket over
// server.max_backpressure is closed (closeOnBackpressureLimit) exactly as a
// push would close it; uWS just does not tell us, so such frames are not
// counted as dropped. Runs in a shard thread.

import type { TemplatedApp } from 'uWebSockets.js';
import type { Socket } from './registry';

function topic(app: string): string {
  return `app:${app}`;
}

export class AppTopics {
  /** app_id -> joined connections with it ('' = joined without one). */
  private readonly counts = new Map<string, number>();

  constructor(private readonly app: TemplatedApp) {}

  /** `ws` joins with `app`; `before`: its app_id until now, null when it was not joined. */
  join(ws: Socket, before: string | null, app: string): void {
    if (before === app) return;
    if (before !== null) {
      ws.unsubscribe(topic(before));
      this.leave(before);
    }
    ws.subscribe(topic(app));
    this.counts.set(app, (this.counts.get(app) ?? 0) + 1);
  }

  /** A joined connection with `app` closed (uWS drops its subscription itself). */
  leave(app: string): void {
    const n = this.counts.get(app)! - 1;
    if (n === 0) this.counts.delete(app);
    else this.counts.set(app, n);
  }

  /** Sends `payload` to every joined connection with `app` ('' = every joined connection); returns how many. */
  publish(payload: Uint8Array, app: string): number {
    if (app !== '') {
      const n = this.counts.get(app) ?? 0;
      if (n > 0) this.app.publish(topic(app), payload, false, false);
      return n;
    }
    let total = 0;
    for (const [a, n] of this.counts) {
      this.app.publish(topic(a), payload, false, false);
      total += n;
    }
    return total;
  }
}
