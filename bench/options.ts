// Command line of `npm run bench -- <scenario> [options]`: parsing, the
// defaults of each scenario (full and --quick), and the usage text.

import { parseArgs } from 'node:util';
import type { AppShare, PushPath } from './messages';

export const SCENARIOS = ['connections', 'push', 'fanout', 'sustained', 'chaos', 'cluster', 'joins'] as const;
/** chaos: the faults, in the order they happen. */
export const FAULTS = ['nsqd', 'shard', 'pusher'] as const;
export type FaultKind = (typeof FAULTS)[number];
export type Scenario = (typeof SCENARIOS)[number];
const PATHS: readonly PushPath[] = ['http', 'http-batch', 'http-broadcast', 'grpc', 'grpc-batch', 'grpc-stream'];

export interface Options {
  scenario: Scenario;
  quick: boolean;
  connections: number;
  groupSize: number;
  /** Offered pushes per second, 0 = as fast as possible. */
  rate: number;
  /** Seconds of sending (connections: seconds of idle measurement). */
  duration: number;
  /** Most pushes, 0 = bounded by duration only. */
  count: number;
  path: PushPath;
  /** Pushes per request / stream message on the batch paths. */
  batch: number;
  driver: 'memory' | 'nsq';
  /** Connection holder processes (0 = one per 15,000 connections). */
  processes: number;
  /** connections: connection counts to measure memory at, ascending, the last = connections (empty: even steps). */
  steps: number[];
  senders: number;
  /** Connections per sender process, and requests in flight on each. */
  senderConns: number;
  inflight: number;
  shards: number;
  appMix: AppShare[];
  server: 'pusher' | 'naive';
  target: string | null;
  serverPid: number | null;
  /** An external nsqd to sample (with --target). */
  nsqdPid: number | null;
  /** host:port of an external server's inspector (node --inspect=host:port), for the connections scenario's forced GCs. */
  serverInspect: string | null;
  sets: string[];
  /** Extra nsqd flags for --driver nsq, after the bench's own (a repeated flag: the last wins). */
  nsqdArgs: string[];
  serverCpuProf: boolean;
  /** chaos: the faults to inject, spread over the run in this order. */
  faults: FaultKind[];
  /** chaos: how nsqd is stopped: SIGKILL (`kill`), or pause the channel, SIGTERM, start, unpause (`planned`). */
  nsqdStop: 'kill' | 'planned';
  /** chaos: keep the sender's and holders' records (they are kept anyway when a push was missed). */
  keepRecords: boolean;
  /** Optional suffix for result file names (e.g. a reference name). */
  name: string;
  /** cluster: pusher nodes (processes) started side by side. */
  nodes: number;
  /** Senders send it (and a started server requires it: auth.api_keys); '' = none. */
  apiKey: string;
  /** joins: tokens are signed with it (and a started server requires them: auth.join_secret); '' = unsigned joins. */
  joinSecret: string;
}

export const USAGE = `usage: npm run bench -- <scenario> [options]
scenarios: connections | push | fanout | sustained | chaos | cluster | joins   (see bench/README.md)
  --quick                 short smoke variant (< 1 minute)
  --connections N         WebSocket connections to hold
  --group-size K          connections per card_id
  --rate R                offered pushes/s (0 = as fast as possible)
  --duration S            seconds of sending (connections: seconds idle)
  --count N               most pushes (0 = duration only)
  --path P                http | http-batch | http-broadcast | grpc | grpc-batch | grpc-stream
  --batch B               pushes per request / stream message (batch paths)
  --driver D              memory | nsq (starts nsqd via scripts/nsqd.sh)
  --processes P           connection holder processes (default: 1 per 15,000)
  --senders S             sender processes          --sender-conns C   connections each
  --inflight F            requests in flight per sender connection
  --shards N              server.shards for the started server
  --app-mix a=1,b=3       app_id weights for joins (default: no app_id)
  --server pusher|naive   what to start (naive: bench/baseline-naive.ts)
  --target http://h:p,ws://h:p/ws[,grpc://h:p]   use a running server instead
  --server-pid PID        sample this pid's RSS/CPU (with --target)
  --nsqd-pid PID          sample this nsqd's CPU too (with --target)
  --server-inspect H:P    connections with --target: the server's inspector (node --inspect=H:P), to force GCs
  --steps a,b,c           connections: measure memory at these counts (default: 6 even steps up to N, 4 with --quick)
  --set section.key=value extra server config (repeatable)
  --nsqd-arg FLAG         extra nsqd flag, e.g. --nsqd-arg --mem-queue-size=0 (repeatable)
  --server-cpu-prof       run the server with --cpu-prof, summarise the profiles
  --faults a,b,c          chaos: faults in order, from nsqd, shard, pusher (default: all three)
  --nsqd-stop kill|planned  chaos: SIGKILL nsqd, or pause the channel + SIGTERM (default kill)
  --keep-records          chaos: keep the push and frame records (bench/chaos-log.ts) in a temporary dir
  --nodes N               cluster: pusher nodes (each its own process, NSQ channel, etcd registration)
  --api-key KEY           senders send Authorization: Bearer KEY (gRPC: metadata); a started server gets auth.api_keys=KEY
  --join-secret S         joins: signed join tokens (HS256, S at least 32 characters); a started server gets auth.join_secret=S
  --name NAME             result file name: bench/results/NAME.{json,svg}
  --help, -h              this text
against another gopusher-compatible server (gopusher itself included):
  npm run bench -- push --target http://host:8081,ws://host:8080/ws --connections 1000 --duration 20`;

function defaults(scenario: Scenario, quick: boolean): Options {
  const o: Options = {
    scenario, quick, connections: 1000, groupSize: 1, rate: 0, duration: quick ? 8 : 20, count: 0, path: 'http', batch: 1,
    driver: 'memory', processes: 0, steps: [], senders: 1, senderConns: 8, inflight: 64, shards: 0, appMix: [], server: 'pusher',
    target: null, serverPid: null, nsqdPid: null, serverInspect: null, sets: [], nsqdArgs: [], serverCpuProf: false,
    faults: [...FAULTS], nsqdStop: 'kill', keepRecords: false, name: '', nodes: 2, apiKey: '', joinSecret: '',
  };
  switch (scenario) {
    case 'connections':
      o.connections = quick ? 5000 : 19000;
      o.duration = quick ? 5 : 15;
      break;
    case 'push':
      break;
    case 'fanout':
      // 10 groups of 1,000 at 1,000 pushes/s offers 1M frames/s.
      o.connections = quick ? 5000 : 10000;
      o.groupSize = 1000;
      o.rate = 1000;
      break;
    case 'sustained':
      o.connections = quick ? 5000 : 19000;
      o.rate = 10000;
      o.duration = quick ? 20 : 120;
      break;
    case 'chaos':
      // Groups of 4: most groups have members on both shards, so owners forward.
      o.connections = quick ? 2000 : 5000;
      o.groupSize = 4;
      o.rate = 2000;
      o.duration = quick ? 30 : 90;
      o.driver = 'nsq';
      break;
    case 'cluster':
      // Every node consumes every push from nsqd; pushes spread over the nodes' gateways, pipelined.
      o.driver = 'nsq';
      o.connections = quick ? 4000 : 10000;
      o.duration = quick ? 8 : 15;
      o.senders = 2;
      break;
    case 'joins':
      // Each connection keeps `inflight` joins outstanding, alternating between two card_ids.
      o.connections = quick ? 100 : 200;
      o.inflight = 4;
      o.duration = quick ? 5 : 10;
      break;
  }
  return o;
}

function int(flag: string, v: string | undefined, min = 0): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer ≥ ${min}, got ${v}`);
  return n;
}

function steps(v: string | undefined): number[] {
  const out = (v ?? '').split(',').map((x) => int('--steps', x.trim(), 1));
  for (let i = 1; i < out.length; i++) if (out[i]! <= out[i - 1]!) throw new Error('--steps must be ascending');
  return out;
}

/**
 * Memory is measured at `parts` evenly spaced counts up to n (rounded to
 * 100): a least-squares slope over evenly spaced points leans less on any one
 * of them than over 1k, 2k, 5k, 10k, ... would.
 */
function evenSteps(n: number, parts: number): number[] {
  const out: number[] = [];
  for (let i = 1; i <= parts; i++) {
    const v = i === parts ? n : Math.round((n * i) / parts / 100) * 100;
    if (v > (out[out.length - 1] ?? 0)) out.push(v);
  }
  return out;
}

function faults(v: string | undefined): FaultKind[] {
  const out = (v ?? '').split(',').filter((f) => f !== '') as FaultKind[];
  for (const f of out) if (!FAULTS.includes(f)) throw new Error(`--faults: unknown fault "${f}" (use ${FAULTS.join(', ')})`);
  return out;
}

function appMix(v: string): AppShare[] {
  return v.split(',').filter((s) => s !== '').map((part) => {
    const [app, w] = part.split('=');
    const weight = w === undefined ? 1 : Number(w);
    if (app === undefined || app === '' || !(weight > 0)) throw new Error(`--app-mix: bad entry "${part}" (use app=weight,...)`);
    return { app, weight };
  });
}

/** Every flag; values are checked below. */
const FLAGS = {
  help: { type: 'boolean', short: 'h' },
  quick: { type: 'boolean' },
  connections: { type: 'string' },
  'group-size': { type: 'string' },
  rate: { type: 'string' },
  duration: { type: 'string' },
  count: { type: 'string' },
  path: { type: 'string' },
  batch: { type: 'string' },
  driver: { type: 'string' },
  processes: { type: 'string' },
  senders: { type: 'string' },
  'sender-conns': { type: 'string' },
  inflight: { type: 'string' },
  shards: { type: 'string' },
  'app-mix': { type: 'string' },
  server: { type: 'string' },
  target: { type: 'string' },
  'server-pid': { type: 'string' },
  'nsqd-pid': { type: 'string' },
  'server-inspect': { type: 'string' },
  steps: { type: 'string' },
  set: { type: 'string', multiple: true },
  'nsqd-arg': { type: 'string', multiple: true },
  'server-cpu-prof': { type: 'boolean' },
  faults: { type: 'string' },
  'nsqd-stop': { type: 'string' },
  'keep-records': { type: 'boolean' },
  name: { type: 'string' },
  nodes: { type: 'string' },
  'api-key': { type: 'string' },
  'join-secret': { type: 'string' },
} as const;

/** `--help` or `-h` anywhere: print the usage, whatever else is there. */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/**
 * `--nsqd-arg --flag` as `--nsqd-arg=--flag`: parseArgs refuses a value that
 * starts with a dash after a space, and an nsqd flag always does.
 */
export function joinNsqdArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--nsqd-arg' && i + 1 < argv.length) out.push(`--nsqd-arg=${argv[++i]}`);
    else out.push(argv[i]!);
  }
  return out;
}

function oneOf<T extends string>(flag: string, v: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(v)) throw new Error(`--${flag} must be one of ${choices.join(', ')}`);
  return v as T;
}

export function parseOptions(argv: readonly string[]): Options {
  const { values: v, positionals } = parseArgs({ args: joinNsqdArgs(argv), options: FLAGS, strict: true, allowPositionals: true });
  const scenario = positionals[0] as Scenario;
  if (!SCENARIOS.includes(scenario)) throw new Error(`unknown scenario "${positionals[0] ?? ''}"`);
  if (positionals.length > 1) throw new Error(`unexpected argument "${positionals[1]}"`);
  const o = defaults(scenario, v.quick === true);
  const n = (flag: keyof typeof FLAGS, min = 0): number | undefined => {
    const raw = v[flag];
    return typeof raw === 'string' ? int(`--${flag}`, raw, min) : undefined;
  };
  o.connections = n('connections', 1) ?? o.connections;
  o.groupSize = n('group-size', 1) ?? o.groupSize;
  o.rate = n('rate') ?? o.rate;
  o.duration = n('duration', 1) ?? o.duration;
  o.count = n('count') ?? o.count;
  o.batch = n('batch', 1) ?? o.batch;
  o.processes = n('processes', 1) ?? o.processes;
  o.senders = n('senders', 1) ?? o.senders;
  o.senderConns = n('sender-conns', 1) ?? o.senderConns;
  o.inflight = n('inflight', 1) ?? o.inflight;
  o.shards = n('shards', 1) ?? o.shards;
  o.serverPid = n('server-pid', 1) ?? o.serverPid;
  o.nsqdPid = n('nsqd-pid', 1) ?? o.nsqdPid;
  o.serverInspect = v['server-inspect'] ?? o.serverInspect;
  if (v.steps !== undefined) o.steps = steps(v.steps);
  o.serverCpuProf = v['server-cpu-prof'] === true;
  if (v.path !== undefined) o.path = oneOf('path', v.path, PATHS);
  if (v.driver !== undefined) o.driver = oneOf('driver', v.driver, ['memory', 'nsq'] as const);
  if (v.server !== undefined) o.server = oneOf('server', v.server, ['pusher', 'naive'] as const);
  if (v['app-mix'] !== undefined) o.appMix = appMix(v['app-mix']);
  if (v.faults !== undefined) o.faults = faults(v.faults);
  if (v['nsqd-stop'] !== undefined) o.nsqdStop = oneOf('nsqd-stop', v['nsqd-stop'], ['kill', 'planned'] as const);
  o.keepRecords = v['keep-records'] === true;
  o.target = v.target ?? o.target;
  o.sets = v.set ?? [];
  o.nsqdArgs = v['nsqd-arg'] ?? [];
  o.name = v.name ?? o.name;
  o.nodes = n('nodes', 1) ?? o.nodes;
  o.apiKey = v['api-key'] ?? o.apiKey;
  o.joinSecret = v['join-secret'] ?? o.joinSecret;
  const explicitBatch = v.batch !== undefined;
  const explicitInflight = v.inflight !== undefined;
  const explicitConns = v['sender-conns'] !== undefined;
  // Batch paths carry 100 pushes per request / stream message unless told
  // otherwise, with a smaller window: 8 x 8 x 100 pushes in flight, enough to
  // keep the server busy without filling its queue (latency = backlog / rate).
  if (o.path === 'http-batch' || o.path === 'grpc-batch' || o.path === 'grpc-stream') {
    if (!explicitBatch) o.batch = 100;
    if (!explicitInflight) o.inflight = 8;
  }
  // With nsq the HTTP paths model callers that wait for each answer (nsqd's
  // MPUB acknowledgement) before sending the next: one request in flight per
  // connection, over more connections, as the reference push-nsq-http was
  // measured. Pipelining works too: --inflight 64 --sender-conns 8.
  if (o.driver === 'nsq' && o.scenario !== 'cluster' && (o.path === 'http' || o.path === 'http-batch')) {
    if (!explicitInflight) o.inflight = 1;
    if (!explicitConns && o.path === 'http') o.senderConns = 64;
  }
  if (o.server === 'naive' && o.path !== 'http' && o.path !== 'http-batch') throw new Error('the naive server has HTTP only');
  if (o.nsqdPid !== null && o.target === null) throw new Error('--nsqd-pid goes with --target (without it the bench starts and samples its own nsqd)');
  if (o.serverInspect !== null && o.target === null) throw new Error('--server-inspect goes with --target (a server the bench starts gets an inspector anyway)');
  if (o.scenario === 'connections') {
    // --steps sets the connection count (its last step) unless --connections is given too.
    if (o.steps.length === 0) o.steps = evenSteps(o.connections, o.quick ? 4 : 6);
    else if (v.connections !== undefined) o.steps = [...o.steps.filter((n) => n < o.connections), o.connections];
    else o.connections = o.steps[o.steps.length - 1]!;
  }
  if (o.scenario === 'chaos') {
    // It restarts nsqd and the server: both must be the bench's own, and the pushes must be answered one by one (HTTP).
    if (o.target !== null || o.server !== 'pusher') throw new Error('chaos starts and restarts its own pusher and nsqd: no --target, no --server naive');
    if (o.driver !== 'nsq') throw new Error('chaos runs with --driver nsq (it restarts nsqd)');
    if (o.path !== 'http' && o.path !== 'http-batch') throw new Error('chaos pushes over HTTP: --path http or http-batch');
    if (o.count !== 0) throw new Error('chaos is bounded by --duration, not --count');
    if (o.rate === 0) throw new Error('chaos needs a fixed --rate');
  }
  if (o.scenario === 'cluster') {
    if (o.target !== null || o.server !== 'pusher' || o.driver !== 'nsq') throw new Error('cluster starts its own pusher nodes with NSQ (no --target, --server, --driver memory)');
    // One process can't hold much more: the open-file limit (20,000 here) counts every socket.
    if (Math.ceil(o.connections / o.nodes) > 19_500) throw new Error(`cluster: ${Math.ceil(o.connections / o.nodes)} connections per node is over 19,500 (the 20,000 open files of one process): add --nodes`);
  }
  if (o.groupSize > o.connections) o.groupSize = o.connections;
  if (o.target === null) {
    if (o.apiKey !== '') o.sets.push(`auth.api_keys=${o.apiKey}`);
    if (o.joinSecret !== '') o.sets.push(`auth.join_secret=${o.joinSecret}`);
    // A bench connection joins far more often than a client would.
    if (o.scenario === 'joins') o.sets.push('server.max_joins_per_second=0');
  }
  return o;
}
