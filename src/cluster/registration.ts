// This node in etcd: gopusher's key (what confd renders into nginx's upstream)
// and pusher's node record (where the other nodes ask for cluster-wide
// answers), both on one lease that etcd3 keeps alive every ttl/3 s. When the
// lease is lost (etcd was away longer than the lease, or came back without its
// data) or could not be granted (etcd unreachable at start-up), the keys are
// written again on a new lease, once a second until it works; the node serves
// throughout. close() revokes the lease, which deletes both keys at once.

import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../../shared/log';
import type { EtcdHealth } from './health';
import { nodeKey, registrationKey, registrationValue, type NodeRecord } from './keys';

const RETRY_MS = 1_000;
/** close() gives the revocation this long; past it the lease expires by itself after etcd.ttl. */
const REVOKE_TIMEOUT_MS = 1_500;

export class Registration {
  private lease: Lease | null = null;
  /** The keys are in etcd on `lease` (as far as this node knows). */
  private registered = false;
  /** Registered once since start. */
  private everRegistered = false;
  /**
   * GET /readyz: why this node is not in etcd yet, or null once it has been.
   * Only the first registration gates readiness: an etcd outage later must not
   * take every node out of service at once (they keep serving; see run()).
   */
  get notRegistered(): string | null {
    return this.everRegistered ? null : 'not registered in etcd yet';
  }
  private closed = false;
  private wakeOnClose: () => void = () => undefined;
  private readonly closing = new Promise<void>((resolve) => (this.wakeOnClose = resolve));

  constructor(
    private readonly client: Etcd3,
    private readonly health: EtcdHealth,
    private readonly log: Logger,
    private readonly listenKey: string,
    private readonly ttl: number,
    private readonly record: NodeRecord,
    /** Called each time the keys were written (peers.ts lists the nodes again then). */
    private readonly onRegistered: () => void,
  ) {}

  get key(): string {
    return registrationKey(this.listenKey, this.record.ws);
  }

  start(): void {
    void this.run();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const lease = this.client.lease(this.ttl);
      this.lease = lease;
      const lost = new Promise<Error>((resolve) => lease.once('lost', resolve));
      // Typed as a response, but etcd3 emits the error.
      lease.on('keepaliveFailed', (err: unknown) => this.health.failed('lease keep-alive', err));
      lease.on('keepaliveSucceeded', () => this.health.ok());
      try {
        await lease.put(this.key).value(registrationValue(this.record.ws));
        await lease.put(nodeKey(this.listenKey, this.record.ws)).value(JSON.stringify(this.record));
      } catch (err) {
        lease.release();
        if (this.closed) return;
        this.health.failed('registration', err);
        await Promise.race([this.closing, new Promise((r) => setTimeout(r, RETRY_MS))]);
        continue;
      }
      if (this.closed) {
        // close() came while the keys were being written: take them out again.
        await lease.revoke({ deadline: Date.now() + REVOKE_TIMEOUT_MS }).catch(() => undefined);
        return;
      }
      this.registered = true;
      this.everRegistered = true;
      this.health.ok();
      this.log.info('registered in etcd', { key: this.key, ttlS: this.ttl });
      this.onRegistered();
      const err = await Promise.race([lost, this.closing]);
      if (this.closed) return;
      this.registered = false;
      this.log.info('etcd lease lost; registering again', { error: err?.message });
    }
  }

  /** Revokes the lease (etcd deletes both keys, confd takes the node out of nginx), bounded. */
  async close(): Promise<void> {
    this.closed = true;
    this.wakeOnClose();
    const lease = this.lease;
    if (lease === null || !this.registered) {
      lease?.release();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const revoked = await Promise.race([
      lease.revoke({ deadline: Date.now() + REVOKE_TIMEOUT_MS }).then(() => true, () => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, REVOKE_TIMEOUT_MS, false))),
    ]);
    clearTimeout(timer);
    if (revoked) this.log.info('etcd registration revoked', { key: this.key });
    else this.log.info('etcd registration not revoked (etcd unreachable); it expires with the lease', { key: this.key, ttlS: this.ttl });
  }
}
