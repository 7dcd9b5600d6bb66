// The two lifecycle patterns every part shares: close once (a second call
// waits for the first), and wait, bounded, until work in progress is done.

/** Runs `fn` on the first call; every later call gets the first call's promise. */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => (running ??= fn());
}

/** Waits (bounded) until `isIdle()` holds; the owner calls poke() whenever work finished. */
export class IdleWaiter {
  private waiters: (() => void)[] = [];

  constructor(private readonly isIdle: () => boolean) {}

  poke(): void {
    if (this.waiters.length > 0 && this.isIdle()) for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves true once idle, false when `timeoutMs` passed first. */
  wait(timeoutMs: number): Promise<boolean> {
    if (this.isIdle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve(false);
      }, Math.max(0, timeoutMs));
      this.waiters.push(wake);
    });
  }
}
