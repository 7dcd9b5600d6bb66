// Every configuration key, once: its type, default, range and meaning. The
// loader (load.ts) validates config.ini and --set against it, and
// config.ini's comments and README's configuration table are generated from
// it (`npm run config-docs`; test/config.test.ts fails when they drift).
// In code a key has the name it has in config.ini: config.server.ws_port.

import { FORMATS, LEVELS } from '../../shared/log';
import { parseCidr } from '../../shared/client-address';

interface Spec<T> {
  readonly default: string;
  readonly doc: string;
  /** Parses a raw value; returns an error message instead when it is invalid. */
  readonly parse: (raw: string) => T | { readonly error: string };
  /** How README states the range (empty: the doc says it). */
  readonly range: string;
}

function int(def: number, min: number, max: number, doc: string): Spec<number> {
  return {
    default: String(def), doc, range: `${min}–${max}`,
    parse: (s) => {
      const n = /^-?\d+$/.test(s) ? Number(s) : NaN;
      return Number.isSafeInteger(n) && n >= min && n <= max ? n : { error: `must be an integer from ${min} to ${max}` };
    },
  };
}

function bool(def: boolean, doc: string): Spec<boolean> {
  return {
    default: String(def), doc, range: 'true, false',
    parse: (s) => {
      const v = s.toLowerCase();
      if (v === 'true' || v === '1' || v === 'yes') return true;
      if (v === 'false' || v === '0' || v === 'no' || v === '') return false;
      return { error: 'must be true or false' };
    },
  };
}

function str(def: string, doc: string, pattern?: { re: RegExp; what: string }): Spec<string> {
  return {
    default: def, doc, range: '',
    parse: (s) => (pattern === undefined || s === '' || pattern.re.test(s) ? s : { error: `must be ${pattern.what}` }),
  };
}

function oneOf<T extends string>(def: T, choices: readonly T[], doc: string): Spec<T> {
  return {
    default: def, doc, range: choices.join(', '),
    parse: (s) => ((choices as readonly string[]).includes(s) ? (s as T) : { error: `must be one of ${choices.join(', ')}` }),
  };
}

/** Comma-separated host:port addresses. */
function addrs(def: string, doc: string): Spec<string[]> {
  return {
    default: def, doc, range: '',
    parse: (s) => {
      const list = s.split(',').map((x) => x.trim()).filter((x) => x !== '');
      const bad = list.find((x) => parseHostPort(x) === null);
      return bad === undefined ? list : { error: `must be comma-separated host:port addresses (got "${bad}")` };
    },
  };
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** host:port, or "off" (null). */
function addrOrOff(def: string, doc: string): Spec<HostPort | null> {
  return {
    default: def, doc, range: '',
    parse: (s) => (s === '' || s === 'off' ? null : parseHostPort(s) ?? { error: 'must be host:port or off' }),
  };
}

export function parseHostPort(s: string): HostPort | null {
  const at = s.lastIndexOf(':');
  const host = at > 0 ? s.slice(0, at).replace(/^\[|\]$/g, '') : '';
  const port = Number(s.slice(at + 1));
  return at <= 0 || host === '' || !Number.isInteger(port) || port < 0 || port > 65535 ? null : { host, port };
}

/** host:port, with brackets around an IPv6 host. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An address that means "every interface": fine to listen on, useless to be reached at. */
export function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** Comma-separated values, each checked by `valid` (a message when it is bad). */
function list(def: string, doc: string, valid: (item: string) => string | null = () => null): Spec<string[]> {
  return {
    default: def, doc, range: '',
    parse: (s) => {
      const items = s.split(',').map((x) => x.trim()).filter((x) => x !== '');
      for (const item of items) {
        const problem = valid(item);
        if (problem !== null) return { error: `${problem} (got "${item}")` };
      }
      return items;
    },
  };
}

const ORIGIN = (o: string): string | null => (/^(?:https?:\/\/)?(?:\*\.)?[a-z0-9.-]+(?::\d{1,5})?$/i.test(o) ? null : 'must list origins like https://app.example.com or *.example.com');
const ADDRESS = (a: string): string | null => (parseCidr(a) !== null ? null : 'must list IP addresses or CIDR ranges (10.0.0.0/8)');

const NSQ_NAME = { re: /^[.a-zA-Z0-9_-]{1,64}(#ephemeral)?$/, what: '1-64 characters of [.a-zA-Z0-9_-]' };

/** Comma-separated etcd client addresses, host:port with an optional http:// (TLS to etcd is not built in). */
function etcdEndpoints(def: string, doc: string): Spec<string[]> {
  return {
    default: def, doc, range: '',
    parse: (s) => {
      const list = s.split(',').map((x) => x.trim().replace(/^http:\/\//, '')).filter((x) => x !== '');
      const bad = list.find((x) => parseHostPort(x) === null);
      if (bad !== undefined) return { error: `must be comma-separated host:port (or http://host:port) addresses (got "${bad}")` };
      return list.length > 0 ? list : { error: 'must name at least one etcd address' };
    },
  };
}

/** host:port, or empty (derived later). */
function addrOrEmpty(def: string, doc: string): Spec<string> {
  return {
    default: def, doc, range: '',
    parse: (s) => (s === '' || parseHostPort(s) !== null ? s : { error: 'must be host:port' }),
  };
}


export const SCHEMA = {
  server: {
    host: str('0.0.0.0', 'address the WebSocket shards and the HTTP gateway listen on'),
    ws_port: int(8080, 1, 65535, 'WebSocket port (path /ws), shared by every shard thread (SO_REUSEPORT); 0 is refused (each shard would get its own port)'),
    shards: int(0, 0, 64, 'shard threads; 0 = one per core (os.availableParallelism())'),
    max_payload: int(16384, 256, 16 * 1024 * 1024, 'largest frame a client may send, bytes (larger: closed with 1009)'),
    idle_timeout: int(120, 0, 960, 'seconds without traffic before a connection is closed; uWS pings idle clients first. 0 = never'),
    max_backpressure: int(262144, 1024, 1 << 30, 'bytes buffered for one slow client before it is closed'),
    drain_timeout: int(10, 0, 3600, 'seconds a shutdown (SIGTERM/SIGINT) spends delivering the accepted backlog to connected clients before closing them'),
    max_connections: int(0, 0, 100_000_000, 'WebSocket connections at once, all shards together (more: the upgrade is answered 503); 0 = the open-file limit (soft RLIMIT_NOFILE) minus server.fd_reserve'),
    fd_reserve: int(1024, 16, 1_000_000, 'file descriptors kept free for everything but WebSocket connections (gateway, gRPC, nsqd, the process itself) when max_connections is 0; at most half the limit'),
    max_connections_per_address: int(0, 0, 100_000_000, 'WebSocket connections at once from one client address (more: 429); 0 = no limit (behind a proxy or carrier NAT many users share one address: see trusted_proxies)'),
    max_joins_per_second: int(10, 0, 1_000_000, 'joins one connection may send per second (a burst of as many is allowed); more: closed with 4429. 0 = no limit'),
    allowed_origins: list('', 'browser origins allowed to open WebSockets (others: 403) and to get CORS answers from the gateway, comma-separated: exact (https://app.example.com) or a subdomain pattern (*.example.com, https://*.example.com); empty = any', ORIGIN),
    trusted_proxies: list('', 'proxy addresses or CIDR ranges whose X-Forwarded-For names the client (for per-address limits); empty = the peer address is the client', ADDRESS),
  },
  gateway: {
    port: int(8081, 0, 65535, 'HTTP gateway port'),
    max_body: int(1048576, 1024, 64 * 1024 * 1024, 'largest HTTP request body, bytes (larger: 413)'),
    max_body_total: int(64 * 1024 * 1024, 1024, 16 * 1024 * 1024 * 1024, 'request body bytes all connections may hold while they arrive; a body that would pass it gets 503 and the connection closes'),
    max_connections: int(512, 1, 1_000_000, 'HTTP connections at once; more are answered 503 and closed'),
    rate_limit: int(0, 0, 100_000_000, 'requests per second (gateway and gRPC calls) one API key, or one client address when auth.api_keys is off, may make; a burst of as many is allowed; more: 429 with Retry-After. 0 = no limit'),
  },
  grpc: {
    addr: addrOrOff('0.0.0.0:9002', 'gRPC address (host:port); off disables gRPC'),
    max_message: int(4 * 1024 * 1024, 1024, 64 * 1024 * 1024, 'largest gRPC request message, bytes (larger: RESOURCE_EXHAUSTED from grpc-js)'),
  },
  queue: {
    driver: oneOf('memory', ['memory', 'nsq'] as const, 'memory (embedded, nothing else needed) or nsq'),
    nsqd_tcp: addrs('127.0.0.1:4150', 'nsqd TCP addresses, comma-separated; pushes go to the first reachable one, all are consumed'),
    lookupd_http: addrs('', 'nsqlookupd HTTP addresses, comma-separated; when set, nsqd is discovered through them'),
    topic: str('pusher', 'NSQ topic (gopusher producers publish here: the body is a protobuf PushRequest)', NSQ_NAME),
    channel: str('', 'NSQ channel; empty = <hostname>-<ws_port>, so every node gets every push', NSQ_NAME),
    max_in_flight: int(2500, 1, 1_000_000, 'messages handed to the processors and not yet finished (NSQ: split over the processor threads, each capped by nsqd --max-rdy-count, 2500 by default)'),
    capacity: int(100000, 1, 100_000_000, 'messages the embedded queue holds (driver = memory); when full, pushes get 503'),
    capacity_bytes: int(128 * 1024 * 1024, 1024, 64 * 1024 * 1024 * 1024, 'bytes of queued push bodies the embedded queue holds (driver = memory); when full, pushes get 503'),
    warmup: int(5, 0, 600, "driver = nsq: seconds from start-up to consuming, so that reconnecting clients are back before the backlog waiting in nsqd is delivered (set it to your clients' reconnect time); 0 = at once"),
    output_buffer_timeout: int(1, -1, 30_000, 'driver = nsq: milliseconds nsqd may hold messages for this node before writing them (IDENTIFY output_buffer_timeout); nsqd must allow it (--min-output-buffer-timeout), else the consumer says so once and reads unbuffered; -1 = unbuffered'),
  },
  processor: {
    threads: int(0, 0, 64, 'processor threads; 0 = one per core, at most 4'),
    batch_size: int(1000, 1, 100_000, 'most queue messages per processor task'),
  },
  push: {
    max_content: int(65536, 1, 1024 * 1024, 'largest push content, UTF-8 bytes'),
    max_recipients: int(1000, 1, 1_000_000, "most card_ids in one push's to"),
    max_id_length: int(256, 1, 4096, 'longest card_id / app_id, characters'),
    max_batch: int(10000, 1, 1_000_000, 'most pushes in one batch (POST /push/batch, gRPC PushBatch, one PushStream message); more: 400'),
  },
  auth: {
    join_secret: str('', 'HS256 secret (at least 32 characters) that join tokens are signed with; set it (or join_key_file) to require signed joins'),
    join_key_file: str('', 'PEM public key (RS256 or ES256) or JWKS file that join tokens are verified with; instead of join_secret'),
    join_issuer: str('', 'when set, a join token must carry this iss'),
    join_audience: str('', 'when set, a join token must carry this aud'),
    join_clock_skew: int(30, 0, 600, 'seconds of clock difference allowed when checking a join token\'s exp and nbf'),
    api_keys: list('', 'API keys, comma-separated: when set (or api_keys_file), pushes, queries and /stats need Authorization: Bearer <key> (gRPC: the same metadata)'),
    api_keys_file: str('', 'file of API keys, one per line (# comments); re-read on SIGHUP, so keys rotate without a restart'),
  },
  tls: {
    cert: str('', 'PEM certificate (chain) file: with tls.key, WebSocket, gateway and gRPC serve TLS only (wss://, https://)'),
    key: str('', 'PEM private key file of tls.cert'),
  },
  history: {
    size: int(32, 0, 10_000, 'pushes kept per card_id for recovery (joins with "recover"/"since"), by the shard that owns the card; only cards with a recovering connection now or within history.ttl keep any. 0 = keep none (a rejoin recovers only when it missed nothing)'),
    ttl: int(300, 1, 86_400, 'seconds a kept push stays recoverable; a card with no connection and no push for this long forgets its history (a rejoin then gets recovered:false)'),
    max_bytes: int(64 * 1024 * 1024, 0, 1 << 30, 'characters of kept push frames per shard at most (bytes for ASCII; V8 adds ~16 B per kept push); past it the least recently active cards lose their kept pushes first (rejoins that needed them get recovered:false)'),
  },
  etcd: {
    enable: bool(false, "register this node in etcd in gopusher's layout (key /gopusher/<listen_key>/<advertise>, value \"<advertise> weight=1\", on a lease kept alive), so that confd can render nginx's upstream; /system, /isOnline and /group then answer for every registered node"),
    endpoints: etcdEndpoints('127.0.0.1:2379', 'etcd client addresses (host:port), comma-separated (gopusher: registeredAddr)'),
    listen_key: str('pusher', 'the <listen_key> in /gopusher/<listen_key>/<advertise> (gopusher: listenKey); nodes with the same one form a cluster', { re: /^[^\s]{1,128}$/, what: '1-128 characters without spaces' }),
    ttl: int(30, 2, 3600, 'seconds of the lease the keys are on, renewed every ttl/3 s: a node that dies without shutting down leaves nginx and the cluster answers this long after'),
    advertise: addrOrEmpty('', 'WebSocket address (host:port) nginx and the other nodes reach this node at; the key names it. Empty = server.host:server.ws_port, refused when that is a wildcard (0.0.0.0, ::). The gateway and gRPC are advertised on their own ports at server.host / grpc.addr, or at this host when those are wildcards'),
    query_timeout: int(500, 10, 60_000, 'milliseconds a cluster-wide /system, /isOnline or /group waits for each other node; one that has not answered by then is left out and counted in nodes but not nodesAnswered'),
  },
  metrics: {
    latency_sample: int(100, 0, 1_000_000, 'GET /metrics measures the latency (accepted to written to the socket) of 1 push in this many; 0 = none'),
  },
  log: {
    level: oneOf('info', LEVELS, 'debug, info, warn, error or silent; one line per event on stdout'),
    format: oneOf('text', FORMATS, 'text (time level thread: message key=value ...) or json (one object per line: time, level, thread, msg, code, fields) for log shippers'),
  },
  debug: {
    crash_route: bool(false, 'enables POST /debug/crash?shard=N and ?processor=N (the tests crash a shard or a processor thread with it); never in production'),
  },
} as const;

export type Schema = typeof SCHEMA;
export type Section = keyof Schema;
type ValueOf<S> = S extends Spec<infer T> ? T : never;

/** The configuration as parsed, one field per key, named as in config.ini. */
export type Values = { readonly [S in Section]: { readonly [K in keyof Schema[S]]: ValueOf<Schema[S][K]> } };

/**
 * The configuration the server runs with: Values, with the keys whose 0 or
 * empty means "derive it" resolved (server.shards, server.max_connections,
 * processor.threads, queue.channel, etcd.advertise).
 */
export type Config = Values;
