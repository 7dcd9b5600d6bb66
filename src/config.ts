// Reads config.ini plus `--set section.key=value` overrides into one frozen,
// fully filled, validated Config. Every problem is collected and reported at
// once; start-up then stops with exit code 2 (see main.ts).

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseIni } from 'ini';
import { LEVELS, type LogLevel } from './shared/log';
import { StartupError } from './errors';

export type QueueDriver = 'memory' | 'nsq';

export interface Config {
  readonly server: {
    readonly host: string;
    readonly wsPort: number;
    /** Resolved shard count (config 0 = one per core). */
    readonly shards: number;
    readonly maxPayload: number;
    readonly idleTimeout: number;
    readonly maxBackpressure: number;
    /** Seconds a shutdown spends delivering what was accepted before closing connections. */
    readonly drainTimeout: number;
  };
  readonly gateway: { readonly port: number; readonly maxBody: number };
  readonly grpc: { readonly host: string; readonly port: number; readonly enabled: boolean };
  readonly queue: {
    readonly driver: QueueDriver;
    readonly nsqdTcp: readonly string[];
    readonly lookupdHttp: readonly string[];
    readonly topic: string;
    /** Resolved channel (config empty = derived from host name and ws_port). */
    readonly channel: string;
    readonly maxInFlight: number;
    readonly capacity: number;
    /** NSQ: seconds at most between start-up and consuming (see Server.consumeAfterWarmUp). */
    readonly warmup: number;
    /** NSQ: IDENTIFY output_buffer_timeout in ms; -1 = unbuffered. */
    readonly outputBufferTimeout: number;
  };
  readonly processor: { readonly threads: number; readonly batchSize: number };
  readonly push: { readonly maxContent: number; readonly maxRecipients: number; readonly maxIdLength: number };
  readonly log: { readonly level: LogLevel };
  readonly debug: { readonly crashRoute: boolean };
}

type Raw = Record<string, Record<string, string>>;

/** Every key the server knows, with its default as written in config.ini. */
const DEFAULTS: Raw = {
  server: { host: '0.0.0.0', ws_port: '8080', shards: '0', max_payload: '16384', idle_timeout: '120', max_backpressure: '262144', drain_timeout: '10' },
  gateway: { port: '8081', max_body: '1048576' },
  grpc: { addr: '0.0.0.0:9002' },
  queue: {
    driver: 'memory', nsqd_tcp: '127.0.0.1:4150', lookupd_http: '', topic: 'pusher', channel: '',
    max_in_flight: '2500', capacity: '100000', warmup: '5', output_buffer_timeout: '1',
  },
  processor: { threads: '0', batch_size: '1000' },
  push: { max_content: '65536', max_recipients: '1000', max_id_length: '256' },
  log: { level: 'info' },
  debug: { crash_route: 'false' },
};

export interface CliArgs {
  configFile: string | null;
  sets: string[];
}

export function parseArgs(argv: readonly string[]): CliArgs {
  const out: CliArgs = { configFile: null, sets: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') && arg.startsWith('--') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (flag === '--config' || flag === '--set') {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new StartupError('PUSH_ERR_CONFIG', `${flag} needs a value`);
      if (flag === '--config') out.configFile = value;
      else out.sets.push(value);
    } else {
      throw new StartupError('PUSH_ERR_CONFIG', `unknown argument "${arg}" (use --config FILE and --set section.key=value)`);
    }
  }
  return out;
}

class Checker {
  readonly problems: string[] = [];
  constructor(private readonly raw: Raw) {}

  str(section: string, key: string): string {
    return this.raw[section]![key]!.trim();
  }

  int(section: string, key: string, min: number, max: number): number {
    const s = this.str(section, key);
    const n = /^-?\d+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      this.problems.push(`${section}.${key} must be an integer from ${min} to ${max} (got "${s}")`);
      return min;
    }
    return n;
  }

  bool(section: string, key: string): boolean {
    const s = this.str(section, key).toLowerCase();
    if (s === 'true' || s === '1' || s === 'yes') return true;
    if (s === 'false' || s === '0' || s === 'no' || s === '') return false;
    this.problems.push(`${section}.${key} must be true or false (got "${s}")`);
    return false;
  }

  oneOf<T extends string>(section: string, key: string, allowed: readonly T[]): T {
    const s = this.str(section, key);
    if ((allowed as readonly string[]).includes(s)) return s as T;
    this.problems.push(`${section}.${key} must be one of ${allowed.join(', ')} (got "${s}")`);
    return allowed[0]!;
  }

  list(section: string, key: string): string[] {
    return this.str(section, key).split(',').map((s) => s.trim()).filter((s) => s !== '');
  }

  hostPort(section: string, key: string, value: string): { host: string; port: number } {
    const at = value.lastIndexOf(':');
    const host = at > 0 ? value.slice(0, at).replace(/^\[|\]$/g, '') : '';
    const port = Number(value.slice(at + 1));
    if (at <= 0 || !Number.isInteger(port) || port < 0 || port > 65535 || host === '') {
      this.problems.push(`${section}.${key} must be host:port (got "${value}")`);
      return { host: '0.0.0.0', port: 0 };
    }
    return { host, port };
  }
}

function merge(raw: Raw, source: Record<string, unknown>, origin: string, problems: string[]): void {
  for (const [section, keys] of Object.entries(source)) {
    const known = raw[section];
    if (known === undefined || keys === null || typeof keys !== 'object') {
      problems.push(`unknown section [${section}] in ${origin}`);
      continue;
    }
    for (const [key, value] of Object.entries(keys as Record<string, unknown>)) {
      if (!(key in known)) problems.push(`unknown key ${section}.${key} in ${origin}`);
      else known[key] = String(value);
    }
  }
}

/** Builds the Config, or throws StartupError(PUSH_ERR_CONFIG) naming every bad key. */
export function loadConfig(args: CliArgs, cpus: number): Config {
  const raw: Raw = {};
  for (const [s, keys] of Object.entries(DEFAULTS)) raw[s] = { ...keys };
  const problems: string[] = [];

  if (args.configFile !== null) {
    let text: string;
    try {
      text = readFileSync(args.configFile, 'utf8');
    } catch (err) {
      throw new StartupError('PUSH_ERR_CONFIG', `config file ${args.configFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    merge(raw, parseIni(text), args.configFile, problems);
  }
  for (const set of args.sets) {
    const m = /^([a-z_]+)\.([a-z_]+)=(.*)$/s.exec(set);
    if (m === null) problems.push(`--set "${set}" must look like section.key=value`);
    else merge(raw, { [m[1]!]: { [m[2]!]: m[3]! } }, '--set', problems);
  }

  const c = new Checker(raw);
  const wsPort = c.int('server', 'ws_port', 1, 65535);
  const shardsRaw = c.int('server', 'shards', 0, 64);
  const grpcAddr = c.str('grpc', 'addr');
  const grpc = grpcAddr === '' || grpcAddr === 'off' ? { host: '', port: 0 } : c.hostPort('grpc', 'addr', grpcAddr);
  const channel = c.str('queue', 'channel');
  const topic = c.str('queue', 'topic');
  const nameRe = /^[.a-zA-Z0-9_-]{1,64}(#ephemeral)?$/;
  if (!nameRe.test(topic)) c.problems.push(`queue.topic must be 1-64 characters of [.a-zA-Z0-9_-] (got "${topic}")`);
  if (channel !== '' && !nameRe.test(channel)) c.problems.push(`queue.channel must be 1-64 characters of [.a-zA-Z0-9_-] (got "${channel}")`);
  const threads = c.int('processor', 'threads', 0, 64);

  const config: Config = {
    server: {
      host: c.str('server', 'host') || '0.0.0.0',
      wsPort,
      shards: shardsRaw === 0 ? cpus : shardsRaw,
      maxPayload: c.int('server', 'max_payload', 256, 16 * 1024 * 1024),
      idleTimeout: c.int('server', 'idle_timeout', 0, 960),
      maxBackpressure: c.int('server', 'max_backpressure', 1024, 1 << 30),
      drainTimeout: c.int('server', 'drain_timeout', 0, 3600),
    },
    gateway: { port: c.int('gateway', 'port', 0, 65535), maxBody: c.int('gateway', 'max_body', 1024, 64 * 1024 * 1024) },
    grpc: { host: grpc.host, port: grpc.port, enabled: grpc.host !== '' },
    queue: {
      driver: c.oneOf('queue', 'driver', ['memory', 'nsq'] as const),
      nsqdTcp: c.list('queue', 'nsqd_tcp'),
      lookupdHttp: c.list('queue', 'lookupd_http'),
      topic,
      channel: channel !== '' ? channel : defaultChannel(hostname(), wsPort),
      maxInFlight: c.int('queue', 'max_in_flight', 1, 1_000_000),
      capacity: c.int('queue', 'capacity', 1, 100_000_000),
      warmup: c.int('queue', 'warmup', 0, 600),
      outputBufferTimeout: c.int('queue', 'output_buffer_timeout', -1, 30_000),
    },
    processor: { threads: threads === 0 ? Math.max(1, Math.min(4, cpus)) : threads, batchSize: c.int('processor', 'batch_size', 1, 100_000) },
    push: {
      maxContent: c.int('push', 'max_content', 1, 1024 * 1024),
      maxRecipients: c.int('push', 'max_recipients', 1, 1_000_000),
      maxIdLength: c.int('push', 'max_id_length', 1, 4096),
    },
    log: { level: c.oneOf('log', 'level', LEVELS) },
    debug: { crashRoute: c.bool('debug', 'crash_route') },
  };
  if (config.queue.driver === 'nsq' && config.queue.nsqdTcp.length === 0 && config.queue.lookupdHttp.length === 0) {
    c.problems.push('queue.driver = nsq needs queue.nsqd_tcp or queue.lookupd_http');
  }
  for (const addr of config.queue.nsqdTcp) c.hostPort('queue', 'nsqd_tcp', addr);

  const all = [...problems, ...c.problems];
  if (all.length > 0) throw new StartupError('PUSH_ERR_CONFIG', all.join('; '));
  return deepFreeze(config);
}

/** NSQ channel names allow [.a-zA-Z0-9_-]; a host name may hold other characters. */
export function defaultChannel(host: string, wsPort: number): string {
  const safe = host.replace(/[^.a-zA-Z0-9_-]/g, '_').slice(0, 48);
  return `${safe || 'pusher'}-${wsPort}`;
}

function deepFreeze<T extends object>(obj: T): T {
  for (const v of Object.values(obj)) if (v !== null && typeof v === 'object') deepFreeze(v as object);
  return Object.freeze(obj);
}
