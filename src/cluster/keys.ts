// What a node writes to etcd. The first key is gopusher's, byte for byte, so
// that the confd templates of a gopusher deployment keep rendering nginx's
// upstream unchanged; the second is pusher's own and says where the other
// nodes ask this one for cluster-wide answers.

/** gopusher's registration key: `/gopusher/<listen_key>/<address>` (listen_key as configured, not normalised). */
export function registrationKey(listenKey: string, address: string): string {
  return `/gopusher/${listenKey}/${address}`;
}

/** gopusher's registration value, one nginx `server` line's arguments. */
export function registrationValue(address: string): string {
  return `${address} weight=1`;
}

/** Where every node of one listen_key keeps its NodeRecord (outside /gopusher/, which confd templates range over). */
export function nodesPrefix(listenKey: string): string {
  return `/pusher/${listenKey}/nodes/`;
}

/** The node's id is its advertised WebSocket address: unique in a cluster, and the same after a restart. */
export function nodeKey(listenKey: string, id: string): string {
  return nodesPrefix(listenKey) + id;
}

/** How the other nodes reach one node (addresses as host:port; grpc null when it has none). */
export interface NodeRecord {
  readonly ws: string;
  readonly http: string;
  readonly grpc: string | null;
}

/** A NodeRecord from its JSON in etcd, or null when it is not one (written by something else). */
export function parseNodeRecord(json: string): NodeRecord | null {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object') return null;
  const { ws, http, grpc } = v as Record<string, unknown>;
  if (typeof ws !== 'string' || typeof http !== 'string' || (grpc !== null && typeof grpc !== 'string')) return null;
  return { ws, http, grpc };
}
