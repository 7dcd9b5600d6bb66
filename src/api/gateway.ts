// The HTTP gateway (main thread, its own HTTP/1.1 server: src/http/):
// gopusher's routes, JSON per the proto3 JSON mapping of proto/rpc.proto, CORS
// as gopusher sends it, and the security checks in front of every route
// (origin, API key, rate limit, content type: see request()).

import type { Config } from '../config/schema';
import type { Logger } from '../../shared/log';
import { ApiErrors, PushError, type ApiErrorCode } from '../../shared/errors';
import { OriginList } from '../../shared/origins';
import { addressKey, normalizeAddress, TrustedProxies } from '../../shared/client-address';
import type { Exchange, HttpHandler, Refusal } from './http/connection';
import { HttpServer } from './http/server';
import { parseScope, type PushService } from './push-service';
import type { ApiKeys } from './api-keys';
import type { RateLimit } from './rate-limit';
import type { Readiness } from '../ops/health';
import { loadPages } from '../ops/pages';

// Never Access-Control-Allow-Credentials: browsers refuse it with "*", and
// the API authenticates with keys, not cookies, so no page needs a visitor's
// credentials sent along.
const CORS_REST = [
  'Access-Control-Allow-Headers: Content-Type,AccessToken,X-CSRF-Token, Authorization, Token',
  'Access-Control-Allow-Methods: POST, GET, OPTIONS',
  'Access-Control-Expose-Headers: Content-Length, Access-Control-Allow-Origin, Access-Control-Allow-Headers, Content-Type',
].map((h) => `${h}\r\n`).join('');
const CORS_ANY = `Access-Control-Allow-Origin: *\r\n${CORS_REST}`;

const OK_BODY = '{"code":0,"message":"ok"}';
const JSON_TYPE = /^application\/json[ \t]*(?:;|$)/i;
const WWW_AUTHENTICATE = 'WWW-Authenticate: Bearer realm="pusher"\r\n';

function errorBody(code: ApiErrorCode, message: string): string {
  return JSON.stringify({ code: ApiErrors[code].grpc, message, error: code });
}

/**
 * Equal strings, in time that depends on their length only: a proxy may carry
 * several clients' requests over one connection, so a cached key must not be
 * compared with ===, which stops at the first difference.
 */
function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function queryParam(x: Exchange, name: string): string {
  return x.head.query === '' ? '' : new URLSearchParams(x.head.query).get(name) ?? '';
}

interface Route {
  readonly method: string;
  /** Open to anyone (no API key, no rate limit): the welcome route. */
  readonly open: boolean;
  run(x: Exchange, body: Buffer): void;
}

export interface GatewayHooks {
  /** Extra operational numbers for GET /stats. */
  stats(): Promise<unknown>;
  /** GET /metrics: the Prometheus text exposition and its content type. */
  metrics(): Promise<{ text: string; type: string }>;
  /** GET /readyz. */
  readiness(): Readiness;
  /** A request from this address is another node of the cluster (etcd.enable); false outside cluster mode. */
  isPeer(address: string): boolean;
  /** Debug hook (config debug.crash_route): crash shard N, or processor thread N. */
  crash(kind: 'shard' | 'processor', n: number): boolean;
}

export interface GatewaySecurity {
  readonly apiKeys: ApiKeys;
  readonly rateLimit: RateLimit;
  readonly tls: { readonly cert: Buffer; readonly key: Buffer } | null;
}

export class Gateway implements HttpHandler {
  private readonly server: HttpServer;
  private readonly routes = new Map<string, Route>();
  private readonly origins: OriginList;
  private readonly proxies: TrustedProxies;
  /** Rate-limit identities of the API keys, by index (no string built per request). */
  private keyIds: string[] = [];
  /** Error answers by code, for /metrics. */
  readonly errors = new Map<string, number>();

  constructor(private readonly config: Config, private readonly push: PushService, private readonly hooks: GatewayHooks,
    private readonly log: Logger, private readonly security: GatewaySecurity) {
    const g = config.gateway;
    this.origins = new OriginList(config.server.allowed_origins);
    this.proxies = new TrustedProxies(config.server.trusted_proxies);
    this.server = new HttpServer(this, {
      maxBody: g.max_body, maxBodyTotal: g.max_body_total, maxConnections: g.max_connections, tls: security.tls,
      busyAnswer: busyAnswer(g.max_connections),
    });
    const add = (method: string, path: string, work: (x: Exchange) => Promise<string>, open = false): void => {
      this.routes.set(path, { method, open, run: (x) => this.respond(x, work(x)) });
    };
    add('GET', '/', async () => JSON.stringify({ msg: 'welcome to socket server', server: 'pusher' }), true);
    // ?scope=node: this node's answer (what the other nodes ask for); otherwise the cluster's (etcd.enable).
    add('GET', '/system', async (x) => JSON.stringify(await this.push.system(parseScope(queryParam(x, 'scope')))));
    add('GET', '/isOnline', async (x) => JSON.stringify(await this.push.isOnline(queryParam(x, 'cardID'), parseScope(queryParam(x, 'scope')))));
    add('GET', '/group', async (x) => JSON.stringify(await this.push.group(queryParam(x, 'cardID'), parseScope(queryParam(x, 'scope')))));
    add('GET', '/stats', async () => JSON.stringify(await this.hooks.stats()));
    // Prometheus sends the key as a bearer token (authorization in its scrape config).
    this.routes.set('/metrics', { method: 'GET', open: false, run: (x) => {
      this.hooks.metrics().then(({ text, type }) => x.answer(200, text, this.cors(x), type), (err: unknown) => this.fail(x, err));
    } });
    // Health and pages are open: a load balancer's probe carries no key, and the pages ask for one before they call the API.
    add('GET', '/healthz', async () => '{"status":"ok"}', true);
    this.routes.set('/readyz', { method: 'GET', open: true, run: (x) => {
      const r = this.hooks.readiness();
      x.answer(r.ready ? 200 : 503, JSON.stringify(r), this.cors(x));
    } });
    for (const file of loadPages(config.server.ws_port)) {
      // Pages change with the package, not at run time; revalidating is cheap (they are small).
      this.routes.set(file.path, { method: 'GET', open: true, run: (x) => x.answer(200, file.body, 'Cache-Control: no-cache\r\n', file.type) });
    }
    this.routes.set('/push', { method: 'POST', open: false, run: (x, body) => this.pushOne(x, body) });
    this.routes.set('/push/batch', { method: 'POST', open: false, run: (x, body) => this.withJson(x, body, async (json) => {
      const pushes = (json as { pushes?: unknown } | null)?.pushes;
      if (pushes !== undefined && pushes !== null && !Array.isArray(pushes)) {
        throw new PushError('PUSH_ERR_INVALID_REQUEST', '"pushes" must be an array of PushRequest objects');
      }
      const accepted = await this.push.pushMany(pushes ?? []);
      return JSON.stringify({ code: 0, message: 'ok', accepted });
    }) });
    this.routes.set('/broadcast', { method: 'POST', open: false, run: (x, body) => this.withJson(x, body, async (json) => {
      await this.push.broadcast(json);
      return OK_BODY;
    }) });
    this.routes.set('/broadcast/batch', { method: 'POST', open: false, run: (x, body) => this.withJson(x, body, async (json) => {
      const broadcasts = (json as { broadcasts?: unknown } | null)?.broadcasts;
      if (broadcasts !== undefined && broadcasts !== null && !Array.isArray(broadcasts)) {
        throw new PushError('PUSH_ERR_INVALID_REQUEST', '"broadcasts" must be an array of BroadcastRequest objects');
      }
      const accepted = await this.push.broadcastMany(broadcasts ?? []);
      return JSON.stringify({ code: 0, message: 'ok', accepted });
    }) });
    if (config.debug.crash_route) {
      add('POST', '/debug/crash', async (x) => {
        const processor = queryParam(x, 'processor');
        const crashed = processor !== '' ? this.hooks.crash('processor', Number(processor)) : this.hooks.crash('shard', Number(queryParam(x, 'shard')));
        return JSON.stringify({ crashed });
      });
    }
  }

  /** CORS headers matter only to browsers, which always send Origin on cross-origin requests; other callers are spared ~300 bytes per answer. */
  private cors(x: Exchange): string {
    const origin = x.head.origin;
    if (origin === '') return '';
    // With an allow-list, request() has refused other origins already.
    return this.origins.any ? CORS_ANY : `Access-Control-Allow-Origin: ${origin}\r\nVary: Origin\r\n${CORS_REST}`;
  }

  request(x: Exchange, body: Buffer): void {
    const { method, path, origin } = x.head;
    if (origin !== '' && !this.origins.allows(origin)) {
      this.sendError(x, 'PUSH_ERR_ORIGIN_DENIED', `origin ${origin} is not in server.allowed_origins`, '');
      return;
    }
    if (method === 'OPTIONS') {
      x.answer(204, '', origin === '' && this.origins.any ? CORS_ANY : this.cors(x));
      return;
    }
    const route = this.routes.get(path);
    if (route === undefined) {
      this.sendError(x, 'PUSH_ERR_NOT_FOUND', `no route ${path}`);
      return;
    }
    if (method !== route.method) {
      const allow = `Allow: ${route.method}, OPTIONS\r\n`;
      this.sendError(x, 'PUSH_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}; use ${route.method}`, this.cors(x) + allow);
      return;
    }
    if (!route.open && !this.admit(x)) return;
    // A page on another site can send a "simple" cross-origin POST (text/plain,
    // a form) without asking first; JSON makes the browser ask (preflight).
    if (method === 'POST' && origin !== '' && !JSON_TYPE.test(x.head.contentType)) {
      this.sendError(x, 'PUSH_ERR_CONTENT_TYPE', `a request with an Origin must send Content-Type: application/json (got "${x.head.contentType}")`);
      return;
    }
    try {
      route.run(x, body);
    } catch (err) {
      this.fail(x, err);
    }
  }

  /** API key (when configured) and rate limit; answers and returns false when the request may not run. */
  private admit(x: Exchange): boolean {
    const { apiKeys, rateLimit } = this.security;
    let key = -1;
    if (apiKeys.on) {
      const conn = x.conn;
      const auth = x.head.authorization;
      if (auth !== '' && conn.authorizedGen === apiKeys.generation && sameString(auth, conn.authorized)) key = conn.authorizedKey;
      else {
        key = apiKeys.match(auth);
        if (key < 0) {
          // A wrong key still takes from its address's budget: guessing keys is rate limited too.
          if (rateLimit.on && !this.takeRate(x, this.clientKey(x))) return false;
          this.sendError(x, 'PUSH_ERR_UNAUTHORIZED', auth === '' ? 'this route needs Authorization: Bearer <API key>' : 'the API key is not valid', this.cors(x) + WWW_AUTHENTICATE);
          return false;
        }
        conn.authorized = auth;
        conn.authorizedGen = apiKeys.generation;
        conn.authorizedKey = key;
      }
    }
    if (!rateLimit.on) return true;
    // The other nodes of a cluster asking for this node's answer (?scope=node)
    // are part of one caller's request, which their own gateway counted.
    if (queryParam(x, 'scope') === 'node' && this.hooks.isPeer(normalizeAddress(x.conn.socket.remoteAddress ?? ''))) return true;
    return this.takeRate(x, key >= 0 ? this.keyId(key) : this.clientKey(x));
  }

  /** The rate-limit identity of the client's address (behind trusted proxies: the forwarded one). */
  private clientKey(x: Exchange): string {
    return addressKey(this.proxies.client(x.conn.socket.remoteAddress ?? '', x.head.forwardedFor));
  }

  /** Takes one request from `who`'s budget; answers 429 and returns false when it is spent. */
  private takeRate(x: Exchange, who: string): boolean {
    const { rateLimit } = this.security;
    const wait = rateLimit.take(who);
    if (wait === 0) return true;
    this.sendError(x, 'PUSH_ERR_RATE_LIMITED', `more than ${rateLimit.rate} requests per second (gateway.rate_limit); retry in ${wait} s`, `${this.cors(x)}Retry-After: ${wait}\r\n`);
    return false;
  }

  private keyId(key: number): string {
    if (this.keyIds.length <= key) this.keyIds = Array.from({ length: key + 1 }, (_, i) => `key ${i}`);
    return this.keyIds[key]!;
  }

  busy(): void {
    this.count('PUSH_ERR_TOO_MANY_CONNECTIONS');
  }

  /** One more error answer with `code` (pusher_http_errors_total). */
  private count(code: ApiErrorCode): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  refuse(x: Exchange, code: Refusal, message: string): void {
    if (code === 'PUSH_ERR_BODY_TOO_LARGE') message = `request body is larger than ${this.config.gateway.max_body} bytes (gateway.max_body)`;
    else if (code === 'PUSH_ERR_OVERLOADED') message = `request bodies being received hold gateway.max_body_total (${this.config.gateway.max_body_total} bytes); retry later`;
    this.sendError(x, code, message);
  }

  /** POST /push, the hot path: no async wrapper, no JSON step shared with the batch. */
  private pushOne(x: Exchange, body: Buffer): void {
    const json = this.parse(x, body);
    if (json === undefined) return;
    this.push.push(json).then(() => x.answer(200, OK_BODY, this.cors(x)), (err: unknown) => this.fail(x, err));
  }

  private withJson(x: Exchange, body: Buffer, work: (json: unknown) => Promise<string>): void {
    const json = this.parse(x, body);
    if (json !== undefined) this.respond(x, work(json));
  }

  /** The body as JSON, or undefined after answering the error. Refuses before parsing when the push can't be queued anyway. */
  private parse(x: Exchange, body: Buffer): unknown {
    try {
      this.push.admit();
    } catch (err) {
      this.fail(x, err);
      return undefined;
    }
    try {
      return JSON.parse(body.toString('utf8'));
    } catch (err) {
      this.sendError(x, 'PUSH_ERR_BAD_JSON', `request body is not valid JSON: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** Answers with the JSON `work` resolves to, or with the error table's status for a PushError. */
  private respond(x: Exchange, work: Promise<string>): void {
    work.then((body) => x.answer(200, body, this.cors(x)), (err: unknown) => this.fail(x, err));
  }

  /** Answers with the error table's status and body, and counts the code (pusher_http_errors_total). */
  private sendError(x: Exchange, code: ApiErrorCode, message: string, headers = this.cors(x)): void {
    this.count(code);
    x.answer(ApiErrors[code].http, errorBody(code, message), headers);
  }

  private fail(x: Exchange, err: unknown): void {
    if (err instanceof PushError) {
      this.sendError(x, err.code, err.message);
      return;
    }
    this.log.error('request failed', { code: 'PUSH_ERR_INTERNAL', error: (err as Error)?.message ?? String(err) });
    this.sendError(x, 'PUSH_ERR_INTERNAL', 'internal error');
  }

  start(): Promise<void> {
    return this.server.listen(this.config.server.host, this.config.gateway.port).catch((err: Error) => {
      throw new Error(`gateway could not listen on ${this.config.server.host}:${this.config.gateway.port}: ${err.message}`);
    });
  }

  /** The port actually bound (gateway.port = 0 picks a free one). */
  get port(): number {
    return this.server.port;
  }

  /** Stops accepting connections; requests in progress still get their answer. */
  stopListening(): void {
    this.server.stopListening();
  }

  close(): Promise<void> {
    return this.server.close();
  }
}

/** The whole answer for a connection over gateway.max_connections. */
function busyAnswer(max: number): string {
  const body = errorBody('PUSH_ERR_TOO_MANY_CONNECTIONS', `the gateway holds ${max} connections (gateway.max_connections); retry later`);
  return `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`;
}
