// The HTTP gateway (main thread, its own uWS App): gopusher's routes, JSON per
// the proto3 JSON mapping of proto/rpc.proto, CORS as gopusher sends it.

import * as uWS from 'uWebSockets.js';
import type { Config } from './config';
import type { Logger } from './shared/log';
import { ApiErrors, PushError, type ApiErrorCode } from './errors';
import { BODY_TOO_LARGE, readBody } from './http-body';
import type { PushService } from './push';

const CORS: readonly [string, string][] = [
  ['Access-Control-Allow-Origin', '*'],
  ['Access-Control-Allow-Headers', 'Content-Type,AccessToken,X-CSRF-Token, Authorization, Token'],
  ['Access-Control-Allow-Methods', 'POST, GET, OPTIONS'],
  ['Access-Control-Expose-Headers', 'Content-Length, Access-Control-Allow-Origin, Access-Control-Allow-Headers, Content-Type'],
  ['Access-Control-Allow-Credentials', 'true'],
];

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 204: '204 No Content', 400: '400 Bad Request', 404: '404 Not Found', 405: '405 Method Not Allowed',
  413: '413 Payload Too Large', 500: '500 Internal Server Error', 503: '503 Service Unavailable', 504: '504 Gateway Timeout',
};

const OK_BODY = '{"code":0,"message":"ok"}';

function okBody(): string {
  return OK_BODY;
}

/** Per-request state kept across awaits: uWS throws if `res` is used after abort. */
class Exchange {
  aborted = false;
  constructor(readonly res: uWS.HttpResponse, readonly cors: boolean) {}
}

/**
 * Registers onAborted and reads what the answer needs from `req` now: the
 * HttpRequest is gone once the handler returns.
 */
function open(res: uWS.HttpResponse, req: uWS.HttpRequest): Exchange {
  // CORS headers matter only to browsers, which always send Origin on
  // cross-origin requests; other callers are spared ~300 bytes per answer.
  const x = new Exchange(res, req.getHeader('origin') !== '');
  res.onAborted(() => {
    x.aborted = true;
  });
  return x;
}

function writeHead(res: uWS.HttpResponse, status: number, cors: boolean): void {
  res.writeStatus(STATUS_TEXT[status] ?? `${status}`);
  if (cors) for (const [k, v] of CORS) res.writeHeader(k, v);
}

function sendJson(x: Exchange, status: number, body: string, close = false): void {
  if (x.aborted) return;
  x.res.cork(() => {
    // uWS answers 200 OK unless told otherwise: one native call less per push.
    if (status !== 200 || x.cors) writeHead(x.res, status, x.cors);
    x.res.writeHeader('Content-Type', 'application/json').end(body, close);
  });
}

function errorBody(code: ApiErrorCode, message: string): string {
  return JSON.stringify({ code: ApiErrors[code].grpc, message, error: code });
}

/** Routes and the methods they answer, for 405 and the Allow header. */
const ROUTES: Record<string, string> = {
  '/': 'GET', '/push': 'POST', '/push/batch': 'POST', '/system': 'GET', '/isOnline': 'GET', '/group': 'GET', '/stats': 'GET',
};

export interface GatewayHooks {
  /** Extra operational numbers for GET /stats. */
  stats(): Promise<unknown>;
  /** Debug hook (config debug.crash_route): crash shard N, or processor thread N. */
  crash(kind: 'shard' | 'processor', n: number): boolean;
}

export class Gateway {
  private listenSocket: uWS.us_listen_socket | null = null;
  private readonly app: uWS.TemplatedApp;

  constructor(private readonly config: Config, private readonly push: PushService, private readonly hooks: GatewayHooks, private readonly log: Logger) {
    this.app = uWS.App();
    const app = this.app;
    app.options('/*', (res) => {
      writeHead(res, 204, true);
      res.endWithoutBody(0);
    });
    app.get('/', (res, req) => this.respond(open(res, req), async () => JSON.stringify({ msg: 'welcome to socket server', server: 'pusher' })));
    app.post('/push', (res, req) => this.withBody(open(res, req), req, this.pushOne));
    app.post('/push/batch', (res, req) => this.withBody(open(res, req), req, async (json) => {
      const pushes = (json as { pushes?: unknown } | null)?.pushes;
      if (pushes !== undefined && pushes !== null && !Array.isArray(pushes)) {
        throw new PushError('PUSH_ERR_INVALID_REQUEST', '"pushes" must be an array of PushRequest objects');
      }
      const accepted = await this.push.pushMany(pushes ?? []);
      return JSON.stringify({ code: 0, message: 'ok', accepted });
    }));
    app.get('/system', (res, req) => this.respond(open(res, req), async () => JSON.stringify(await this.push.system())));
    app.get('/isOnline', (res, req) => {
      const card = req.getQuery('cardID');
      this.respond(open(res, req), async () => JSON.stringify({ result: await this.push.isOnline(requireCard(card)) }));
    });
    app.get('/group', (res, req) => {
      const card = req.getQuery('cardID');
      this.respond(open(res, req), async () => JSON.stringify({ clientNum: await this.push.group(requireCard(card)) }));
    });
    app.get('/stats', (res, req) => this.respond(open(res, req), async () => JSON.stringify(await this.hooks.stats())));
    const routes: Record<string, string> = { ...ROUTES };
    if (config.debug.crashRoute) {
      routes['/debug/crash'] = 'POST';
      app.post('/debug/crash', (res, req) => {
        const processor = req.getQuery('processor');
        const crashed = processor !== undefined && processor !== '' ? this.hooks.crash('processor', Number(processor)) : this.hooks.crash('shard', Number(req.getQuery('shard')));
        this.respond(open(res, req), async () => JSON.stringify({ crashed }));
      });
    }
    app.any('/*', (res, req) => {
      const url = req.getUrl();
      const allowed = routes[url];
      if (allowed === undefined) {
        sendJson(open(res, req), 404, errorBody('PUSH_ERR_NOT_FOUND', `no route ${url}`));
        return;
      }
      writeHead(res, 405, req.getHeader('origin') !== '');
      res.writeHeader('Allow', `${allowed}, OPTIONS`).writeHeader('Content-Type', 'application/json')
        .end(errorBody('PUSH_ERR_METHOD_NOT_ALLOWED', `${req.getMethod().toUpperCase()} is not allowed on ${url}; use ${allowed}`));
    });
  }

  /** POST /push, the hot path: made once, not per request. */
  private readonly pushOne = (json: unknown): Promise<string> => this.push.push(json).then(okBody);

  /** Runs `work` and answers with its JSON, or with the error table's status for a PushError. */
  private respond(x: Exchange, work: () => Promise<string>): void {
    work().then((body) => sendJson(x, 200, body), (err: unknown) => this.fail(x, err));
  }

  private withBody(x: Exchange, req: uWS.HttpRequest, work: (json: unknown) => Promise<string>): void {
    readBody(x.res, req.getHeader('content-length'), this.config.gateway.maxBody, (body) => {
      if (body === BODY_TOO_LARGE) {
        const msg = `request body is larger than ${this.config.gateway.maxBody} bytes (gateway.max_body)`;
        sendJson(x, 413, errorBody('PUSH_ERR_BODY_TOO_LARGE', msg), true);
        return;
      }
      // Refuse before parsing when the push can't be queued anyway.
      try {
        this.push.admit();
      } catch (err) {
        this.fail(x, err);
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch (err) {
        sendJson(x, 400, errorBody('PUSH_ERR_BAD_JSON', `request body is not valid JSON: ${(err as Error).message}`));
        return;
      }
      work(json).then((out) => sendJson(x, 200, out), (err: unknown) => this.fail(x, err));
    });
  }

  private fail(x: Exchange, err: unknown): void {
    if (err instanceof PushError) {
      sendJson(x, ApiErrors[err.code].http, errorBody(err.code, err.message));
      return;
    }
    this.log.error('request failed', { code: 'PUSH_ERR_INTERNAL', error: (err as Error)?.message ?? String(err) });
    sendJson(x, 500, errorBody('PUSH_ERR_INTERNAL', 'internal error'));
  }

  start(): Promise<void> {
    const { host } = this.config.server;
    const { port } = this.config.gateway;
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (token) => {
        if (token === false) reject(new Error(`gateway could not listen on ${host}:${port}`));
        else {
          this.listenSocket = token;
          resolve();
        }
      });
    });
  }

  /** The port actually bound (gateway.port = 0 picks a free one). */
  get port(): number {
    return this.listenSocket === null ? 0 : uWS.us_socket_local_port(this.listenSocket);
  }

  /** Stops accepting; requests in progress still get their answer. */
  stopListening(): void {
    if (this.listenSocket !== null) {
      uWS.us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
  }

  close(): void {
    this.stopListening();
    this.app.close();
  }
}

function requireCard(card: string | undefined): string {
  if (card === undefined || card === '') throw new PushError('PUSH_ERR_MISSING_CARD_ID');
  return card;
}
