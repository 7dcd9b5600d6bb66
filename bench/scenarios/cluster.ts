// cluster: several pusher nodes on this machine, as cluster mode runs them:
// nsqd found through nsqlookupd, one NSQ channel per node (every node consumes
// every push and delivers it to its own connections), each node registered in
// etcd (cluster-wide /system). The holders connect straight to the nodes,
// connection i to node i mod N (no nginx in the way of the numbers), so each
// node process holds connections / N sockets: under the 20,000 open files of
// one process. Measures: connections per second, RSS per connection (every
// node's RSS after a full GC in every thread, at 0 and at N connections), then
// pushes (each to one connection, so delivered by one node and consumed by
// all) spread over the nodes' gateways: pushes/s, and CPU per node and nsqd
// over the push window.

import { InspectorGc } from '../inspector-gc';
import { cpuPercent, sampleProc, type ProcSample } from '../proc-stats';
import { serverJson, startNsqd, startNsqlookupd, startEtcd, startPusher, type Daemon, type Nsqd, type ServerHandle } from '../server-proc';
import type { Options } from '../options';
import { connect, load, type Ctx } from './common';

const TOPIC = 'pusher';
const GC_SETTLE_MS = 2_000;

export interface ClusterProcs {
  lookupd: Daemon & { tcp: string; http: string };
  nsqd: Nsqd;
  etcd: Daemon & { endpoint: string };
  nodes: ServerHandle[];
  stop(): Promise<void>;
}

/** nsqlookupd, nsqd (README's flags, announcing to nsqlookupd), etcd, then the nodes; stop() ends them in reverse. */
export async function startCluster(o: Options): Promise<ClusterProcs> {
  const started: Daemon[] = [];
  const stop = async (): Promise<void> => {
    for (const d of started.reverse()) await d.stop();
  };
  try {
    const lookupd = await startNsqlookupd();
    started.push(lookupd);
    const nsqd = await startNsqd([`--lookupd-tcp-address=${lookupd.tcp}`, '--broadcast-address=127.0.0.1', ...o.nsqdArgs]);
    started.push(nsqd);
    // The topic first: nsqlookupd points the consumers at it, and each node's channel exists before the first push.
    const res = await fetch(`${nsqd.http}/topic/create?topic=${TOPIC}`, { method: 'POST' });
    if (!res.ok) throw new Error(`nsqd topic/create: ${res.status}`);
    const etcd = await startEtcd();
    started.push(etcd);
    const nodes: ServerHandle[] = [];
    for (let i = 0; i < o.nodes; i++) {
      const node = await startPusher({
        shards: o.shards > 0 ? o.shards : 1, nsqdTcp: null, nsqWarmup: null, profileDir: null, inspect: true, apiKey: o.apiKey,
        sets: [
          'processor.threads=1', 'queue.driver=nsq', 'queue.nsqd_tcp=', `queue.lookupd_http=${lookupd.http}`, `queue.topic=${TOPIC}`,
          `queue.channel=node-${i}`, 'queue.warmup=0', 'etcd.enable=true', `etcd.endpoints=${etcd.endpoint}`, ...o.sets,
        ],
      });
      started.push({ pid: node.pid!, stop: () => node.stop() });
      nodes.push(node);
    }
    await waitConsuming(nsqd, o.nodes);
    return { lookupd, nsqd, etcd, nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Until every node's channel exists in nsqd with a consumer on it. */
async function waitConsuming(nsqd: Nsqd, nodes: number): Promise<void> {
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    const body = (await (await fetch(`${nsqd.http}/stats?format=json&topic=${TOPIC}`)).json()) as { topics: { channels: { channel_name: string; clients: unknown[] }[] }[] | null };
    const channels = body.topics?.[0]?.channels ?? [];
    if (channels.filter((c) => c.channel_name.startsWith('node-') && c.clients.length > 0).length >= nodes) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the nodes did not all consume from nsqd within 30 s');
}

/** Full GC in every thread of every node, then the sum of their RSS. */
async function rssAfterGc(gcs: InspectorGc[], nodes: ServerHandle[]): Promise<number[]> {
  for (const gc of gcs) await gc.collect();
  await new Promise((r) => setTimeout(r, GC_SETTLE_MS));
  return nodes.map((n) => sampleProc(n.pid!)?.rssBytes ?? 0);
}

interface NodeStats {
  clients: number;
  delivered: number;
  undelivered: number;
}

async function nodeStats(n: ServerHandle): Promise<NodeStats> {
  const body = (await serverJson(n, '/stats')) as { shards: NodeStats[] };
  const out = { clients: 0, delivered: 0, undelivered: 0 };
  for (const s of body.shards) {
    out.clients += s.clients;
    out.delivered += s.delivered;
    out.undelivered += s.undelivered;
  }
  return out;
}

export async function cluster(ctx: Ctx, c: ClusterProcs): Promise<Record<string, unknown>> {
  const { o, fleet } = ctx;
  const gcs = await Promise.all(c.nodes.map((n) => InspectorGc.connect(n.inspectUrl!)));
  try {
    const rssBefore = await rssAfterGc(gcs, c.nodes);
    const conn = await connect(ctx, undefined, true);
    const rssAfter = await rssAfterGc(gcs, c.nodes);
    const rssPerConnBytes = Math.round((rssAfter.reduce((a, b) => a + b, 0) - rssBefore.reduce((a, b) => a + b, 0)) / conn.joined);
    const system = (await serverJson(c.nodes[0]!, '/system')) as Record<string, number>;
    process.stderr.write(`cluster /system: ${JSON.stringify(system)}; RSS per connection ${rssPerConnBytes} B\n`);

    const statsBefore = await Promise.all(c.nodes.map(nodeStats));
    const procsBefore = c.nodes.map((n) => sampleProc(n.pid!));
    const nsqdBefore = sampleProc(c.nsqd.pid!);
    const l = await load(ctx, c.nodes.map((n) => n.httpUrl));
    const procsAfter = c.nodes.map((n) => sampleProc(n.pid!));
    const nsqdAfter = sampleProc(c.nsqd.pid!);
    const statsAfter = await Promise.all(c.nodes.map(nodeStats));
    const lat = fleet.hist.percentiles();
    const per100k = (a: ProcSample | null, b: ProcSample | null): number | null => (a === null || b === null || l.acked === 0 ? null : +(((b.cpuS - a.cpuS) * 100_000) / l.acked).toFixed(3));
    const pct = (a: ProcSample | null, b: ProcSample | null): number | null => (a === null || b === null ? null : Math.round(cpuPercent(a, b)));
    const perNode = c.nodes.map((n, i) => ({
      ws: n.wsUrl,
      connections: statsAfter[i]!.clients,
      rssMb: Math.round(rssAfter[i]! / 2 ** 20),
      cpuPct: pct(procsBefore[i]!, procsAfter[i]!),
      cpuSecPer100kPushes: per100k(procsBefore[i]!, procsAfter[i]!),
      delivered: statsAfter[i]!.delivered - statsBefore[i]!.delivered,
      undelivered: statsAfter[i]!.undelivered - statsBefore[i]!.undelivered,
    }));
    const nodesCpuSecPer100k = perNode.reduce((s, n) => s + (n.cpuSecPer100kPushes ?? 0), 0);
    const nsqdCpuSecPer100k = per100k(nsqdBefore, nsqdAfter);
    return {
      nodes: o.nodes, joined: conn.joined, connectPerS: conn.connectPerS, rssPerConnBytes,
      clusterClientNum: system.clientNum ?? null, clusterNodesAnswered: system.nodesAnswered ?? null,
      pushesPerS: l.ackedPerS, deliveredPerS: l.deliveredPerS, overallDeliveredPerS: l.overallDeliveredPerS, lost: l.lost, failed: l.failed, p50Ms: lat.p50, p99Ms: lat.p99,
      meanNodeCpuPct: Math.round(perNode.reduce((s, n) => s + (n.cpuPct ?? 0), 0) / perNode.length),
      meanNodeCpuSecPer100k: +(nodesCpuSecPer100k / perNode.length).toFixed(3),
      nodesCpuSecPer100k: +nodesCpuSecPer100k.toFixed(3), nsqdCpuPct: pct(nsqdBefore, nsqdAfter), nsqdCpuSecPer100k,
      perNode, rssBeforeBytes: rssBefore, rssAfterBytes: rssAfter, system, load: l, connect: conn,
    };
  } finally {
    for (const gc of gcs) gc.close();
  }
}
