// Cluster mode (etcd.enable): one etcd client for this node's registration
// (registration.ts) and its view of the other nodes (peers.ts), and the
// queries that ask them (peer-queries.ts). Started once the node serves, so
// nginx never routes to a node that can't take connections yet; closed first
// on shutdown, so nginx stops routing to it before its connections close.

import type { Etcd3 } from 'etcd3';
import type { Config } from '../config/schema';
import { once } from '../../shared/lifecycle';
import type { Logger } from '../../shared/log';
import { createEtcdClient } from './client';
import { EtcdHealth } from './health';
import type { NodeRecord } from './keys';
import { PeerQueries, type PeerAccess } from './peer-queries';
import { Peers } from './peers';
import { Registration } from './registration';

/** close() waits this long at most for the watch to be cancelled. */
const CLOSE_TIMEOUT_MS = 1_000;

export class Cluster {
  private readonly client: Etcd3;
  private readonly health: EtcdHealth;
  private readonly peers: Peers;
  private registration: Registration | null = null;
  readonly queries: PeerQueries;

  constructor(private readonly config: Config, private readonly log: Logger, access: PeerAccess) {
    const { etcd } = config;
    this.client = createEtcdClient(etcd.endpoints);
    this.health = new EtcdHealth(log, etcd.endpoints);
    this.peers = new Peers(this.client, this.health, log, etcd.listen_key, etcd.advertise);
    this.queries = new PeerQueries(this.peers, etcd.query_timeout, access, log);
  }

  /** Whether `address` (an IP, as a socket reports it) is the gateway host of another node. */
  isPeer(address: string): boolean {
    return this.peers.hosts().has(address);
  }

  /** GET /readyz: null once this node's keys are in etcd, else why not. */
  notReady(): string | null {
    return this.registration === null ? 'not started' : this.registration.notRegistered;
  }

  /** Registers this node (retrying in the background until etcd answers) and starts following the others. */
  start(record: NodeRecord): void {
    const { etcd } = this.config;
    this.registration = new Registration(this.client, this.health, this.log, etcd.listen_key, etcd.ttl, record, () => void this.peers.refresh());
    this.registration.start();
    this.peers.start();
  }

  /** Revokes the registration (bounded), stops watching, closes the client. */
  readonly close = once(async () => {
    await this.registration?.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.peers.close(), new Promise((r) => (timer = setTimeout(r, CLOSE_TIMEOUT_MS)))]);
    clearTimeout(timer);
    this.client.close();
  });
}
