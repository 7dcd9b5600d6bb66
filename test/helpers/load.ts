// Load for the delivery tests: a stream of unique pushes with a few requests
// in flight (recording which were answered 200), a CPU hog, and the check
// that every accepted push reached every member that stayed connected.

import { spawn } from 'node:child_process';
import type { Client, Running } from './server';
import { postJson, until } from './server';

/** The part of a tap Test these helpers need. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * Pushes unique contents round-robin to `cards`, `concurrency` requests in
 * flight, until stopped; `batch` > 1 sends that many per POST /push/batch.
 */
export class PushStream {
  /** content -> card, for every push answered 200. */
  readonly accepted = new Map<string, string>();
  readonly rejected: { status: number; error: string; message: string }[] = [];
  private n = 0;
  private stopped = false;
  private readonly workers: Promise<void>[];
  private waiters: { count: number; resolve: () => void }[] = [];

  constructor(private readonly server: Pick<Running, 'http'>, private readonly cards: readonly string[], concurrency: number, private readonly batch = 1) {
    this.workers = Array.from({ length: concurrency }, () => this.work());
  }

  private async work(): Promise<void> {
    while (!this.stopped) {
      const pushes = Array.from({ length: this.batch }, () => {
        const i = this.n++;
        return { to: [this.cards[i % this.cards.length]!], content: `m-${i}` };
      });
      let res: { status: number; body: any };
      try {
        res = this.batch === 1
          ? await postJson(`${this.server.http}/push`, pushes[0])
          : await postJson(`${this.server.http}/push/batch`, { pushes });
      } catch {
        // The server is restarting: not accepted, try again shortly.
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      if (res.status === 200) {
        for (const p of pushes) this.accepted.set(p.content, p.to[0]!);
        this.waiters = this.waiters.filter((w) => (this.accepted.size >= w.count ? (w.resolve(), false) : true));
      } else {
        this.rejected.push({ status: res.status, error: res.body.error, message: res.body.message });
        // Rejections come back at once; pace the retries instead of spinning.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }

  /** Resolves once `count` pushes in total were accepted. */
  acceptedAtLeast(count: number): Promise<void> {
    if (this.accepted.size >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /** Resolves once `count` more pushes were rejected than now. */
  async rejectedAtLeast(count: number): Promise<void> {
    const target = this.rejected.length + count;
    await until(async () => this.rejected.length >= target, `${count} pushes rejected`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }
}

/** Keeps one core busy (a spinning process) until the test ends: faults show up under load. */
export function cpuHog(t: Teardown): void {
  const hog = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  t.teardown(() => {
    hog.kill('SIGKILL');
  });
}

/**
 * The accepted pushes each member has not received: `members` maps a client
 * to its card. Waits (bounded) for them to arrive first.
 */
export async function missingPushes(accepted: ReadonlyMap<string, string>, members: ReadonlyMap<Client, string>, timeoutMs = 20_000): Promise<string[]> {
  const missing = (): string[] => {
    const out: string[] = [];
    for (const [client, card] of members) {
      const seen = new Set(client.frames);
      for (const [content, to] of accepted) {
        if (to === card && !seen.has(`{"type":1,"data":"${content}"}`)) out.push(`${card}:${content}`);
      }
    }
    return out;
  };
  await until(async () => missing().length === 0, 'every accepted push reached every member', timeoutMs).catch(() => undefined);
  return missing();
}
