// Who may open a WebSocket: the upgrade's checks, in a shard thread. Origin
// against server.allowed_origins (403), every shard's connections against
// server.max_connections (503), the client address's against
// server.max_connections_per_address (429). Counts are shared by the shards
// (shared/conn-counters.ts). A refused upgrade is answered and its
// connection closed, so the listen socket never sees the file limit (where
// uSockets would retry accept() in a busy loop).

import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { ApiErrors, type ApiErrorCode } from '../../shared/errors';
import { ConnCounters, sketchHash } from '../../shared/conn-counters';
import { OriginList } from '../../shared/origins';
import { addressKey, TrustedProxies } from '../../shared/client-address';
import type { ShardLimits } from '../../shared/frames';
import { S_UPGRADES_REFUSED, UPGRADE_CODES, type UpgradeRefusal } from '../../shared/counters';

const STATUS: Partial<Record<number, string>> = { 403: '403 Forbidden', 429: '429 Too Many Requests', 503: '503 Service Unavailable' };

/** Answers a refused upgrade with the gateway's error body, and closes the connection. */
function answer(res: HttpResponse, code: ApiErrorCode, message: string): void {
  const { http, grpc } = ApiErrors[code];
  res.writeStatus(STATUS[http] ?? String(http)).writeHeader('Content-Type', 'application/json')
    .end(JSON.stringify({ code: grpc, message, error: code }), true);
}

export class Admission {
  private readonly origins: OriginList;
  private readonly proxies: TrustedProxies;

  /** `shard`: this shard's counters (shared/counters.ts), where refusals are counted by code. */
  constructor(readonly counters: ConnCounters, private readonly opts: ShardLimits, private readonly shard: Float64Array) {
    this.origins = new OriginList(opts.allowedOrigins);
    this.proxies = new TrustedProxies(opts.trustedProxies);
  }

  /**
   * Checks an upgrade; answers and returns null when it is refused, else the
   * sketch hash of its client address (-1 when addresses are not counted).
   * Reads `req` synchronously (it is valid only inside the upgrade handler).
   */
  check(res: HttpResponse, req: HttpRequest): number | null {
    const origin = req.getHeader('origin');
    // No Origin: not a browser, which is what the list guards against (pages of other sites).
    if (origin !== '' && !this.origins.allows(origin)) {
      this.refuse(res, 'PUSH_ERR_ORIGIN_DENIED', `origin ${origin} is not in server.allowed_origins`);
      return null;
    }
    const { maxConnections, maxPerAddress } = this.opts;
    if (this.counters.total() >= maxConnections) {
      this.refuse(res, 'PUSH_ERR_TOO_MANY_CONNECTIONS', `the server holds ${maxConnections} WebSocket connections (server.max_connections); retry later`);
      return null;
    }
    if (maxPerAddress === 0) return -1;
    const peer = Buffer.from(res.getRemoteAddressAsText()).toString('latin1');
    const h = sketchHash(addressKey(this.proxies.client(peer, req.getHeader('x-forwarded-for'))));
    if (this.counters.fromAddress(h) >= maxPerAddress) {
      this.refuse(res, 'PUSH_ERR_ADDRESS_LIMIT', `this address holds ${maxPerAddress} WebSocket connections (server.max_connections_per_address)`);
      return null;
    }
    return h;
  }

  private refuse(res: HttpResponse, code: UpgradeRefusal, message: string): void {
    this.shard[S_UPGRADES_REFUSED + UPGRADE_CODES.indexOf(code)]!++;
    answer(res, code, message);
  }
}
