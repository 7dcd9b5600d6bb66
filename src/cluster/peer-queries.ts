// Asks every other node's gateway for its own answer (`?scope=node`), all at
// once, each bounded by etcd.query_timeout: a node that is slow, gone or
// answers something else is left out and only counted, so a cluster-wide
// answer never waits longer than the deadline.

import type { Logger } from '../../shared/log';
import type { NodeRecord } from './keys';

export interface PeerAnswers {
  /** Other nodes asked. */
  readonly asked: number;
  /** The JSON bodies of those that answered 200 in time. */
  readonly answers: unknown[];
}

export interface PeerList {
  list(): NodeRecord[];
}

/** How this node reaches the others' gateways: the cluster's nodes share their API keys and TLS setting. */
export interface PeerAccess {
  /** The Authorization header value ('' = none), read per request so that a SIGHUP rotation applies. */
  authorization(): string;
  /** The gateways serve TLS (tls.cert): their certificates must be trusted here (NODE_EXTRA_CA_CERTS for a private CA). */
  readonly tls: boolean;
}

export class PeerQueries {
  /** The last refusal status of each node that refused (401, 403, 429): logged once per change, a misconfiguration to fix. */
  private readonly refusing = new Map<string, number>();

  constructor(private readonly peers: PeerList, private readonly timeoutMs: number, private readonly access: PeerAccess, private readonly log: Logger) {}

  /** `path` is the gateway route with its query, e.g. `/group?cardID=x`; `scope=node` is added. */
  async ask(path: string): Promise<PeerAnswers> {
    const nodes = this.peers.list();
    const query = `${path}${path.includes('?') ? '&' : '?'}scope=node`;
    const replies = await Promise.all(nodes.map((node) => this.askOne(node, query)));
    return { asked: nodes.length, answers: replies.filter((r) => r !== undefined) };
  }

  private async askOne(node: NodeRecord, query: string): Promise<unknown> {
    try {
      // The signal bounds the body too.
      const auth = this.access.authorization();
      const res = await fetch(`${this.access.tls ? 'https' : 'http'}://${node.http}${query}`, {
        signal: AbortSignal.timeout(this.timeoutMs),
        headers: auth === '' ? {} : { authorization: auth },
      });
      if (res.ok) {
        this.refusing.delete(node.ws);
        return await res.json();
      }
      await res.body?.cancel();
      if (res.status >= 400 && res.status < 500 && this.refusing.get(node.ws) !== res.status) {
        this.refusing.set(node.ws, res.status);
        this.log.warn('another node refuses this node\'s queries; cluster answers leave it out (API keys and origins must be the same on every node)', { node: node.ws, status: res.status });
      } else {
        this.log.debug('node answered an error', { node: node.ws, status: res.status });
      }
    } catch (err) {
      this.log.debug('node did not answer', { node: node.ws, error: (err as Error).message });
    }
    return undefined;
  }
}
