// The HTTP gateway (main thread, its own HTTP/1.1 server: src/http/):
// gopusher's routes, JSON per the proto3 JSON mapping of proto/rpc.proto, CORS
// as gopusher sends it.

import type { Config } from '../config/schema';
import type { Logger } from '../../shared/log';
import { ApiErrors, PushError, type ApiErrorCode } from '../../shared/errors';
import type { Exchange, HttpHandler, Refusal } from './http/connection';
import { HttpServer } from './http/server';
import type { PushService } from './push-service';
import type { Readiness } from '../ops/health';
import { loadPages } from '../ops/pages';

const CORS = [
  'Access-Control-Allow-Origin: *',
  'Access-Control-Allow-Headers: Content-Type,AccessToken,X-CSRF-Token, Authorization, Token',
  'Access-Control-Allow-Methods: POST, GET, OPTIONS',
  'Access-Control-Expose-Headers: Content-Length, Access-Control-Allow-Origin, Access-Control-Allow-Headers, Content-Type',
  'Access-Control-Allow-Credentials: true',
].map((h) => `${h}\r\n`).join('');

const OK_BODY = '{"code":0,"message":"ok"}';

/** CORS headers matter only to browsers, which always send Origin on cross-origin requests; other callers are spared ~300 bytes per answer. */
function cors(x: Exchange): string {
  return x.head.origin ? CORS : '';
}

function errorBody(code: ApiErrorCode, message: string): string {
  return JSON.stringify({ code: ApiErrors[code].grpc, message, error: code });
}


function queryParam(x: Exchange, name: string): string {
  return x.head.query === '' ? '' : new URLSearchParams(x.head.query).get(name) ?? '';
}

interface Route {
  readonly method: string;
  run(x: Exchange, body: Buffer): void;
}

export interface GatewayHooks {
  /** Extra operational numbers for GET /stats. */
  stats(): Promise<unknown>;
  /** GET /metrics: the Prometheus text exposition and its content type. */
  metrics(): Promise<{ text: string; type: string }>;
  /** GET /readyz. */
  readiness(): Readiness;
  /** Debug hook (config debug.crash_route): crash shard N, or processor thread N. */
  crash(kind: 'shard' | 'processor', n: number): boolean;
}

export class Gateway implements HttpHandler {
  private readonly server: HttpServer;
  private readonly routes = new Map<string, Route>();
  /** Error answers by code, for /metrics. */
  readonly errors = new Map<string, number>();

  constructor(private readonly config: Config, private readonly push: PushService, private readonly hooks: GatewayHooks, private readonly log: Logger) {
    this.server = new HttpServer(this, config.gateway.max_body);
    const add = (method: string, path: string, work: (x: Exchange) => Promise<string>): void => {
      this.routes.set(path, { method, run: (x) => this.respond(x, work(x)) });
    };
    add('GET', '/', async () => JSON.stringify({ msg: 'welcome to socket server', server: 'pusher' }));
    add('GET', '/system', async () => JSON.stringify(await this.push.system()));
    add('GET', '/isOnline', async (x) => JSON.stringify({ result: await this.push.isOnline(queryParam(x, 'cardID')) }));
    add('GET', '/group', async (x) => JSON.stringify({ clientNum: await this.push.group(queryParam(x, 'cardID')) }));
    add('GET', '/stats', async () => JSON.stringify(await this.hooks.stats()));
    this.routes.set('/metrics', { method: 'GET', run: (x) => {
      this.hooks.metrics().then(({ text, type }) => x.answer(200, text, cors(x), type), (err: unknown) => this.fail(x, err));
    } });
    add('GET', '/healthz', async () => '{"status":"ok"}');
    this.routes.set('/readyz', { method: 'GET', run: (x) => {
      const r = this.hooks.readiness();
      x.answer(r.ready ? 200 : 503, JSON.stringify(r), cors(x));
    } });
    for (const file of loadPages(config.server.ws_port)) {
      // Pages change with the package, not at run time; revalidating is cheap (they are small).
      this.routes.set(file.path, { method: 'GET', run: (x) => x.answer(200, file.body, 'Cache-Control: no-cache\r\n', file.type) });
    }
    this.routes.set('/push', { method: 'POST', run: (x, body) => this.pushOne(x, body) });
    this.routes.set('/push/batch', { method: 'POST', run: (x, body) => this.withJson(x, body, async (json) => {
      const pushes = (json as { pushes?: unknown } | null)?.pushes;
      if (pushes !== undefined && pushes !== null && !Array.isArray(pushes)) {
        throw new PushError('PUSH_ERR_INVALID_REQUEST', '"pushes" must be an array of PushRequest objects');
      }
      const accepted = await this.push.pushMany(pushes ?? []);
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

  request(x: Exchange, body: Buffer): void {
    const { method, path } = x.head;
    if (method === 'OPTIONS') {
      x.answer(204, '', CORS);
      return;
    }
    const route = this.routes.get(path);
    if (route === undefined) {
      this.sendError(x, 'PUSH_ERR_NOT_FOUND', `no route ${path}`);
      return;
    }
    if (method !== route.method) {
      const allow = `Allow: ${route.method}, OPTIONS\r\n`;
      this.sendError(x, 'PUSH_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}; use ${route.method}`, cors(x) + allow);
      return;
    }
    try {
      route.run(x, body);
    } catch (err) {
      this.fail(x, err);
    }
  }

  refuse(x: Exchange, code: Refusal, message: string): void {
    if (code === 'PUSH_ERR_BODY_TOO_LARGE') message = `request body is larger than ${this.config.gateway.max_body} bytes (gateway.max_body)`;
    this.sendError(x, code, message);
  }

  /** POST /push, the hot path: no async wrapper, no JSON step shared with the batch. */
  private pushOne(x: Exchange, body: Buffer): void {
    const json = this.parse(x, body);
    if (json === undefined) return;
    this.push.push(json).then(() => x.answer(200, OK_BODY, cors(x)), (err: unknown) => this.fail(x, err));
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
    work.then((body) => x.answer(200, body, cors(x)), (err: unknown) => this.fail(x, err));
  }

  /** Answers with the error table's status and body, and counts the code (pusher_http_errors_total). */
  private sendError(x: Exchange, code: ApiErrorCode, message: string, headers = cors(x)): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
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
