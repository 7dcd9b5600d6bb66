// `npm run bench -- <scenario> [options]`: starts what is measured (pusher,
// or the naive baseline, plus nsqd for --driver nsq) unless --target names a
// running server, runs the scenario, stops everything, and writes the JSON
// result and its SVG plot under bench/results/.

import { join } from 'node:path';
import { Fleet } from './fleet';
import { parseOptions, USAGE, wantsHelp, type Options, type Scenario } from './options';
import { formatProfiles, summariseDir, type ThreadProfile } from './profile';
import { machine, RESULTS_DIR, stamp, writeResult, type RunResult } from './results';
import { externalServer, inspectorUrl, startNaive, startNsqd, startPusher, type Nsqd, type ServerHandle } from './server-proc';
import type { Ctx } from './scenarios/common';
import { connections } from './scenarios/connections';
import { push } from './scenarios/push';
import { fanout } from './scenarios/fanout';
import { sustained } from './scenarios/sustained';
import { chaos } from './scenarios/chaos';
import { joins } from './scenarios/joins';
import { cluster, startCluster, type ClusterProcs } from './scenarios/cluster';

const SCENARIO: Record<Exclude<Scenario, 'cluster'>, (ctx: Ctx) => Promise<Record<string, unknown>>> = { connections, push, fanout, sustained, chaos, joins };

async function startServer(o: Options, nsqd: Nsqd | null, profileDir: string | null): Promise<ServerHandle> {
  if (o.target !== null) return externalServer(o.target, o.serverPid, o.serverInspect === null ? null : await inspectorUrl(o.serverInspect), o.apiKey);
  // connections forces full GCs in the server through its inspector (bench/inspector-gc.ts).
  const inspect = o.scenario === 'connections';
  if (o.server === 'naive') return startNaive(profileDir, inspect);
  // chaos crashes a shard through the debug route and restarts the server
  // under connected clients: the real NSQ warm-up, and ports it gets back.
  const chaos = o.scenario === 'chaos';
  return startPusher({
    shards: o.shards, sets: chaos ? ['debug.crash_route=true', ...o.sets] : o.sets, nsqdTcp: nsqd?.tcp ?? null, profileDir, inspect,
    nsqWarmup: chaos ? null : 0, apiKey: o.apiKey,
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (wantsHelp(argv)) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let o: Options;
  try {
    o = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const started = new Date();
  const name = o.name !== '' ? o.name : `${o.scenario}-${stamp(started)}`;
  const profileDir = o.serverCpuProf && o.target === null ? join(RESULTS_DIR, `profile-${name}`) : null;
  const scenario = o.scenario;
  const nsqd = o.driver === 'nsq' && o.target === null && o.server === 'pusher' && scenario !== 'cluster' ? await startNsqd(o.nsqdArgs) : null;
  let server: ServerHandle | null = null;
  let fleet: Fleet | null = null;
  let procs: ClusterProcs | null = null;
  let summary: Record<string, unknown>;
  try {
    if (scenario === 'cluster') {
      // Several nodes: the fleet samples the first one per second; the scenario measures every node itself.
      procs = await startCluster(o);
      server = procs.nodes[0]!;
      const clusterNsqd = procs.nsqd;
      fleet = new Fleet(server, scenario, { nsqdPid: () => clusterNsqd.pid, pollStats: false, wsUrls: procs.nodes.map((n) => n.wsUrl) });
      summary = await cluster({ o, server, nsqd: clusterNsqd, fleet }, procs);
    } else {
      server = await startServer(o, nsqd, profileDir);
      fleet = new Fleet(server, scenario, { nsqdPid: () => nsqd?.pid ?? o.nsqdPid, pollStats: scenario !== 'connections' });
      summary = await SCENARIO[scenario]({ o, server, nsqd, fleet });
    }
  } finally {
    await fleet?.close();
    if (procs !== null) await procs.stop();
    else await server?.stop();
    await nsqd?.stop();
  }
  let profile: ThreadProfile[] | undefined;
  if (profileDir !== null) {
    profile = summariseDir(profileDir);
    process.stderr.write(`${formatProfiles(profile)}\n(profiles in ${profileDir})\n`);
  }
  const result: RunResult = {
    scenario: o.scenario, startedAt: started.toISOString(), command: `npm run bench -- ${process.argv.slice(2).join(' ')}`, options: o,
    machine: machine(), server: { kind: server!.kind, command: server!.command }, summary,
    totals: { ...fleet!.totals, closedDuringRun: fleet!.closed }, latency: fleet!.hist.percentiles(), series: fleet!.series,
    ...(profile !== undefined ? { profile } : {}),
  };
  const files = writeResult(result, name);
  const headline = Object.fromEntries(Object.entries(summary).filter(([, v]) => typeof v !== 'object' || v === null));
  process.stdout.write(`${JSON.stringify(headline)}\nresult: ${files.json}\nplot:   ${files.svg}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
