// One warning per etcd outage, however many calls fail during it, and one
// line when etcd answers again: an operator sees when it started and how long
// it lasted, without a line per retry.

import type { Logger } from '../../shared/log';

export class EtcdHealth {
  private downSince: number | null = null;

  constructor(private readonly log: Logger, private readonly endpoints: readonly string[]) {}

  get down(): boolean {
    return this.downSince !== null;
  }

  failed(during: string, err: unknown): void {
    if (this.downSince !== null) return;
    this.downSince = Date.now();
    this.log.warn('etcd unreachable; serving on and retrying', {
      code: 'PUSH_ERR_ETCD_UNAVAILABLE', endpoints: this.endpoints.join(','), during, error: (err as Error)?.message ?? String(err),
    });
  }

  ok(): void {
    if (this.downSince === null) return;
    this.log.info('etcd reachable again', { downMs: Date.now() - this.downSince });
    this.downSince = null;
  }
}
