// Reads config.ini plus `--set section.key=value` overrides into one frozen,
// fully filled, validated Config (keys and rules: schema.ts). Every problem is
// collected and reported at once; start-up then stops with exit code 2.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parse as parseIni } from 'ini';
import { StartupError } from '../../shared/errors';
import { SCHEMA, isWildcard, joinHostPort, parseHostPort, type Config, type Values } from './schema';
import { derivedMaxConnections, openFileLimit } from './fd-limit';

export interface CliArgs {
  readonly configFile: string | null;
  readonly sets: readonly string[];
}

/** `--config FILE` and any number of `--set section.key=value`. */
export function parseCli(argv: readonly string[]): CliArgs {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: { config: { type: 'string' }, set: { type: 'string', multiple: true } },
      strict: true,
      allowPositionals: false,
    });
    return { configFile: values.config ?? null, sets: values.set ?? [] };
  } catch (err) {
    throw new StartupError('PUSH_ERR_CONFIG', `${(err as Error).message} (use --config FILE and --set section.key=value)`);
  }
}

/** Builds the Config, or throws StartupError(PUSH_ERR_CONFIG) naming every bad key. */
export function loadConfig(args: CliArgs, cpus: number, fileLimit = openFileLimit()): Config {
  const raw = new Map<string, string>();
  for (const [section, keys] of Object.entries(SCHEMA)) {
    for (const [key, spec] of Object.entries(keys)) raw.set(`${section}.${key}`, spec.default);
  }
  const problems: string[] = [];
  const put = (section: string, key: string, value: unknown, origin: string): void => {
    const name = `${section}.${key}`;
    if (!raw.has(name)) problems.push(`unknown key ${name} in ${origin}`);
    else raw.set(name, String(value).trim());
  };

  if (args.configFile !== null) {
    let text: string;
    try {
      text = readFileSync(args.configFile, 'utf8');
    } catch (err) {
      throw new StartupError('PUSH_ERR_CONFIG', `config file ${args.configFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    for (const [section, keys] of Object.entries(parseIni(text))) {
      if (!(section in SCHEMA) || keys === null || typeof keys !== 'object') {
        problems.push(`unknown section [${section}] in ${args.configFile}`);
        continue;
      }
      for (const [key, value] of Object.entries(keys as Record<string, unknown>)) put(section, key, value, args.configFile);
    }
  }
  for (const set of args.sets) {
    const m = /^([a-z_]+)\.([a-z_]+)=(.*)$/s.exec(set);
    if (m === null) problems.push(`--set "${set}" must look like section.key=value`);
    else put(m[1]!, m[2]!, m[3]!, '--set');
  }

  const values: Record<string, Record<string, unknown>> = {};
  for (const [section, keys] of Object.entries(SCHEMA)) {
    const out: Record<string, unknown> = (values[section] = {});
    for (const [key, spec] of Object.entries(keys)) {
      const value = raw.get(`${section}.${key}`)!;
      const parsed: unknown = spec.parse(value);
      if (parsed !== null && typeof parsed === 'object' && 'error' in parsed) problems.push(`${section}.${key} ${(parsed as { error: string }).error} (got "${value}")`);
      else out[key] = parsed;
    }
  }
  const v = values as unknown as Values;
  if (problems.length === 0 && v.queue.driver === 'nsq' && v.queue.nsqd_tcp.length === 0 && v.queue.lookupd_http.length === 0) {
    problems.push('queue.driver = nsq needs queue.nsqd_tcp or queue.lookupd_http');
  }
  if (problems.length === 0) problems.push(...crossChecks(v));
  if (problems.length > 0) throw new StartupError('PUSH_ERR_CONFIG', problems.join('; '));
  return deepFreeze(resolve(v, cpus, fileLimit));
}

/** Rules that involve more than one key. */
function crossChecks(v: Values): string[] {
  const problems: string[] = [];
  const { auth, tls } = v;
  if (auth.join_secret !== '' && auth.join_key_file !== '') problems.push('auth.join_secret and auth.join_key_file are both set; use one');
  // An HS256 secret is as strong as it is long: anyone holding one token can guess offline.
  if (auth.join_secret !== '' && auth.join_secret.length < 32) problems.push('auth.join_secret must be at least 32 characters');
  if ((tls.cert === '') !== (tls.key === '')) problems.push('tls.cert and tls.key must be set together');
  if (v.etcd.enable) {
    const advertised = advertise(v);
    if (isWildcard(parseHostPort(advertised)!.host)) {
      problems.push(`etcd.enable = true needs an address nginx and the other nodes can reach: etcd.advertise = host:port (it would be ${advertised}, from server.host)`);
    }
  }
  return problems;
}

/** The keys whose 0 or empty means "derive it". */
function resolve(v: Values, cpus: number, fileLimit: number): Config {
  const maxConnections = v.server.max_connections === 0 ? derivedMaxConnections(fileLimit, v.server.fd_reserve) : v.server.max_connections;
  return {
    ...v,
    server: { ...v.server, host: v.server.host || '0.0.0.0', shards: v.server.shards === 0 ? cpus : v.server.shards, max_connections: maxConnections },
    queue: { ...v.queue, channel: v.queue.channel !== '' ? v.queue.channel : defaultChannel(hostname(), v.server.ws_port) },
    processor: { ...v.processor, threads: v.processor.threads === 0 ? Math.max(1, Math.min(4, cpus)) : v.processor.threads },
    etcd: { ...v.etcd, advertise: advertise(v) },
  };
}

/** etcd.advertise, or server.host:server.ws_port when empty. */
function advertise(v: Values): string {
  return v.etcd.advertise !== '' ? v.etcd.advertise : joinHostPort(v.server.host || '0.0.0.0', v.server.ws_port);
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


