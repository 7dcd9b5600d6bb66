// The other nodes of this cluster, as their node records in etcd say: listed
// once, then kept current by a watch on the prefix (a node that stops
// gracefully, or whose lease expires, drops out at once). The list is listed
// again whenever the watch reconnects, after this node registered, and every
// RELIST_MS (a watch resumed against an etcd that lost its data would miss
// events). While etcd is away the last known list is used.

import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Logger } from '../../shared/log';
import type { EtcdHealth } from './health';
import { nodesPrefix, parseNodeRecord, type NodeRecord } from './keys';
import { parseHostPort } from '../config/schema';

const RELIST_MS = 10_000;

export class Peers {
  /** Other nodes by id (their advertised WebSocket address). */
  private readonly nodes = new Map<string, NodeRecord>();
  /** The etcd revision the map reflects: a listing older than the events already applied is dropped. */
  private revision = 0n;
  private watcher: Watcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly prefix: string;

  constructor(
    private readonly client: Etcd3,
    private readonly health: EtcdHealth,
    private readonly log: Logger,
    listenKey: string,
    private readonly selfId: string,
  ) {
    this.prefix = nodesPrefix(listenKey);
  }

  start(): void {
    this.timer = setInterval(() => void this.refresh(), RELIST_MS);
    this.timer.unref();
    void this.refresh();
    this.watch();
  }

  /** The other nodes known now. */
  list(): NodeRecord[] {
    return [...this.nodes.values()];
  }

  /** The hosts the other nodes' gateways are reached at (IPs as advertised). */
  hosts(): Set<string> {
    const out = new Set<string>();
    for (const n of this.nodes.values()) {
      const hp = parseHostPort(n.http);
      if (hp !== null) out.add(hp.host);
    }
    return out;
  }

  /** Lists the nodes again (keeps the last known list when etcd does not answer). */
  async refresh(): Promise<void> {
    let res;
    try {
      res = await this.client.getAll().prefix(this.prefix).exec();
    } catch (err) {
      if (!this.closed) this.health.failed('listing nodes', err);
      return;
    }
    this.health.ok();
    const revision = BigInt(res.header.revision);
    if (revision < this.revision) return;
    this.revision = revision;
    this.nodes.clear();
    for (const kv of res.kvs) this.put(kv);
  }

  private watch(): void {
    // watcher() rather than create(): the watcher exists (and can be cancelled) before etcd answers; etcd3 connects it and reconnects it.
    const watcher = this.client.watch().prefix(this.prefix).watcher();
    this.watcher = watcher;
    watcher.on('put', (kv: IKeyValue) => this.apply(kv, true));
    watcher.on('delete', (kv: IKeyValue) => this.apply(kv, false));
    watcher.on('connected', () => void this.refresh());
    watcher.on('disconnected', (err: Error) => {
      if (!this.closed) this.health.failed('watching nodes', err);
    });
    // Cancelled by etcd (e.g. its history was compacted past the revision to resume from): watch afresh.
    watcher.on('error', (err: Error) => {
      if (this.closed) return;
      this.log.info('etcd watch of the nodes ended; watching again', { error: err.message });
      this.watch();
    });
  }

  private apply(kv: IKeyValue, present: boolean): void {
    const revision = BigInt(kv.mod_revision);
    if (revision > this.revision) this.revision = revision;
    if (present) this.put(kv);
    else this.nodes.delete(kv.key.toString().slice(this.prefix.length));
  }

  private put(kv: IKeyValue): void {
    const id = kv.key.toString().slice(this.prefix.length);
    if (id === this.selfId) return;
    const record = parseNodeRecord(kv.value.toString());
    if (record !== null) this.nodes.set(id, record);
    else this.log.debug('not a node record; ignored', { key: kv.key.toString() });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    await this.watcher?.cancel().catch(() => undefined);
  }
}
