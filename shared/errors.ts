// Every error a client, a push caller or an operator can see, with a stable
// code. README's "Errors" section lists the same table; test/errors.test.ts
// checks that the two agree.

/** gRPC status codes used here (numbers from grpc's status.proto). */
export const GrpcStatus = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export interface ErrorSpec {
  /** HTTP status the gateway answers with. */
  readonly http: number;
  /** gRPC status code the gRPC service answers with. */
  readonly grpc: number;
  /** Default human-readable message (a call site may give a more precise one). */
  readonly message: string;
}

/** Errors of the push API (HTTP gateway and gRPC). */
export const ApiErrors = {
  PUSH_ERR_BAD_JSON: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'request body is not valid JSON' },
  PUSH_ERR_INVALID_REQUEST: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'request does not match the PushRequest message' },
  PUSH_ERR_EMPTY_TO: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: '"to" must list at least one card_id' },
  PUSH_ERR_BAD_ID: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'ids must be non-empty, well-formed Unicode strings within the length limit' },
  PUSH_ERR_TOO_MANY_RECIPIENTS: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: '"to" lists more card_ids than push.max_recipients' },
  PUSH_ERR_CONTENT_TOO_LARGE: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: '"content" is longer than push.max_content bytes' },
  PUSH_ERR_EMPTY_BATCH: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'a batch must hold at least one push (or broadcast)' },
  PUSH_ERR_BATCH_TOO_LARGE: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'the batch holds more pushes than push.max_batch, or more than the queue can ever hold' },
  PUSH_ERR_BAD_ENCODING: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'a string field is not valid UTF-8' },
  PUSH_ERR_CONTENT_TYPE: { http: 415, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'a browser request (with Origin) must send Content-Type: application/json' },
  PUSH_ERR_UNAUTHORIZED: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, message: 'missing or wrong API key (Authorization: Bearer <key>)' },
  PUSH_ERR_ORIGIN_DENIED: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, message: 'the Origin is not in server.allowed_origins' },
  PUSH_ERR_RATE_LIMITED: { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED, message: 'too many requests; retry after the Retry-After seconds' },
  PUSH_ERR_ADDRESS_LIMIT: { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED, message: 'too many WebSocket connections from this address (server.max_connections_per_address)' },
  PUSH_ERR_TOO_MANY_CONNECTIONS: { http: 503, grpc: GrpcStatus.UNAVAILABLE, message: 'the server holds as many connections as it may; retry later' },
  PUSH_ERR_OVERLOADED: { http: 503, grpc: GrpcStatus.UNAVAILABLE, message: 'the gateway holds gateway.max_body_total bytes of request bodies; retry later' },
  PUSH_ERR_MISSING_CARD_ID: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'cardID is required (a query parameter on HTTP)' },
  PUSH_ERR_BAD_SCOPE: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'scope must be node or cluster (or empty: cluster)' },
  PUSH_ERR_BODY_TOO_LARGE: { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED, message: 'request body is larger than gateway.max_body bytes' },
  PUSH_ERR_BAD_HTTP: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, message: 'malformed HTTP/1.1 request' },
  PUSH_ERR_HEADERS_TOO_LARGE: { http: 431, grpc: GrpcStatus.RESOURCE_EXHAUSTED, message: 'request line and headers are too large' },
  PUSH_ERR_NOT_FOUND: { http: 404, grpc: GrpcStatus.NOT_FOUND, message: 'no such route' },
  PUSH_ERR_METHOD_NOT_ALLOWED: { http: 405, grpc: GrpcStatus.UNIMPLEMENTED, message: 'method not allowed on this route' },
  PUSH_ERR_QUEUE_FULL: { http: 503, grpc: GrpcStatus.UNAVAILABLE, message: 'the push queue is full; retry later' },
  PUSH_ERR_QUEUE_UNAVAILABLE: { http: 503, grpc: GrpcStatus.UNAVAILABLE, message: 'the push queue is unavailable; retry later' },
  PUSH_ERR_SHUTTING_DOWN: { http: 503, grpc: GrpcStatus.UNAVAILABLE, message: 'the server is shutting down' },
  PUSH_ERR_TIMEOUT: { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED, message: 'a shard did not answer in time' },
  PUSH_ERR_INTERNAL: { http: 500, grpc: GrpcStatus.INTERNAL, message: 'internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ApiErrorCode = keyof typeof ApiErrors;

/** An API error: carries its stable code; HTTP and gRPC map it through ApiErrors. */
export class PushError extends Error {
  readonly code: ApiErrorCode;
  constructor(code: ApiErrorCode, message?: string) {
    super(message ?? ApiErrors[code].message);
    this.name = 'PushError';
    this.code = code;
  }
}

/**
 * WebSocket errors. `close` is the close code the server ends the connection
 * with; 0 means the connection stays open and the client gets an error frame
 * `{"type":2,"code":"...","data":"<message>"}` instead.
 */
export const WsErrors = {
  PUSH_ERR_WS_BAD_JSON: { close: 4000, message: 'frame is not a JSON object with an "event" string' },
  PUSH_ERR_WS_UNKNOWN_EVENT: { close: 4001, message: 'unknown event' },
  PUSH_ERR_WS_BINARY: { close: 1003, message: 'binary frames are not supported' },
  PUSH_ERR_WS_TOO_LARGE: { close: 1009, message: 'frame is larger than server.max_payload' },
  PUSH_ERR_WS_JOIN_INVALID: {
    close: 0,
    message: 'join needs data.card_id (and optional data.app_id) as non-empty, well-formed Unicode strings within push.max_id_length, '
      + 'optional data.recover true or false, optional data.since {"offset": integer >= 0, "epoch": string}',
  },
  PUSH_ERR_WS_TOKEN_MISSING: { close: 4401, message: 'signed joins are on: the join needs data.token (or ?token= on the upgrade)' },
  PUSH_ERR_WS_TOKEN_INVALID: { close: 4401, message: 'the join token is malformed, badly signed, not yet valid, or has the wrong issuer or audience' },
  PUSH_ERR_WS_TOKEN_EXPIRED: { close: 4401, message: 'the join token has expired' },
  PUSH_ERR_WS_TOKEN_MISMATCH: { close: 4403, message: 'the join token was issued for another card_id (sub) or app_id' },
  PUSH_ERR_WS_RATE_LIMITED: { close: 4429, message: 'more joins than server.max_joins_per_second, or too many frames while a join token is checked' },
  PUSH_ERR_WS_SHUTDOWN: { close: 1001, message: 'server shutting down' },
  PUSH_ERR_WS_INTERNAL: { close: 1011, message: 'shard restarting after an internal error' },
} as const;

export type WsErrorCode = keyof typeof WsErrors;

/**
 * Codes that only appear in log lines (`code=...`): events an operator should
 * be able to grep for, which no caller is answered with.
 */
export const LogErrors = {
  PUSH_ERR_BAD_MESSAGE: 'a queue message is not a protobuf PushRequest; it is finished (never retried) and counted as processors.undecodable',
  PUSH_ERR_SHUTDOWN_UNDELIVERED: 'a shutdown ran out of server.drain_timeout; the line says how many accepted pushes were not delivered',
  PUSH_ERR_QUEUE_CONFIG: 'nsqd refuses a consumer setting (queue.output_buffer_timeout); the line says what the consumer does instead',
  PUSH_ERR_ETCD_UNAVAILABLE: 'etcd (etcd.endpoints) cannot be reached: one line per outage; the node keeps serving and registers again when etcd is back (an info line says so)',
  PUSH_ERR_AUTH_OFF: 'the server listens on a non-loopback address without signed joins or API keys; the line names the keys to set',
  PUSH_ERR_API_KEYS_RELOAD: 'SIGHUP could not re-read auth.api_keys_file; the keys in force stay as they were',
} as const;

/** Start-up errors: one line on stderr, then exit code 2. */
export const StartupErrors = {
  PUSH_ERR_CONFIG: 'a configuration value is missing or invalid',
  PUSH_ERR_PORT_IN_USE: 'a port the server needs is already in use',
  PUSH_ERR_START: 'a part of the server failed to start',
} as const;

export type StartupErrorCode = keyof typeof StartupErrors;

export class StartupError extends Error {
  readonly code: StartupErrorCode;
  constructor(code: StartupErrorCode, message: string) {
    super(message);
    this.name = 'StartupError';
    this.code = code;
  }
}

export const EXIT_STARTUP = 2;
