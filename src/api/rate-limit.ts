// gateway.rate_limit: requests per second per API key, or per client address
// when keys are off; a burst of as many is allowed (token buckets). Shared by
// the gateway and gRPC (main thread). Buckets that have refilled are dropped
// by a sweep, so the map holds only clients that were busy lately.

/** Buckets are swept this often; one full again is as good as none. */
const SWEEP_MS = 10_000;
/** Past this many tracked clients, the oldest half is forgotten (each of those gets a fresh burst). */
const MAX_CLIENTS = 100_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimit {
  private readonly buckets = new Map<string, Bucket>();
  private readonly sweeper: NodeJS.Timeout | null = null;

  constructor(readonly rate: number) {
    if (rate > 0) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweeper.unref();
    }
  }

  get on(): boolean {
    return this.rate > 0;
  }

  /** 0 when `client` may make a request now (it is counted), else the seconds to wait (Retry-After). */
  take(client: string): number {
    const now = Date.now();
    let b = this.buckets.get(client);
    if (b === undefined) {
      if (this.buckets.size >= MAX_CLIENTS) this.forgetOldest();
      b = { tokens: this.rate, at: now };
      this.buckets.set(client, b);
    } else {
      b.tokens = Math.min(this.rate, b.tokens + ((now - b.at) * this.rate) / 1000);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rate));
  }

  private sweep(): void {
    const now = Date.now();
    for (const [client, b] of this.buckets) if (b.tokens + ((now - b.at) * this.rate) / 1000 >= this.rate) this.buckets.delete(client);
  }

  private forgetOldest(): void {
    let n = this.buckets.size >> 1;
    for (const client of this.buckets.keys()) {
      if (n-- <= 0) break;
      this.buckets.delete(client);
    }
  }

  close(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
  }
}
