// What the every-node-consumes-every-push model costs as nodes are added:
// reads the cluster results bench/results/<prefix>-<n>.json (a fixed rate)
// and <prefix>-<n>-max.json (as fast as the nodes take pushes) for each node
// count, writes bench/results/<prefix>.svg (against the node count: pushes/s,
// and CPU per 100,000 pushes per node, for all nodes and for nsqd) and prints
// the table README shows.
//
//   node dist/bench/cluster-plot.js [prefix=cluster-nodes] [nodes=1,2,4]

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderSvg } from './plot';
import { RESULTS_DIR } from './results';

interface Summary {
  pushesPerS: number;
  overallDeliveredPerS: number;
  meanNodeCpuSecPer100k: number;
  nodesCpuSecPer100k: number;
  nsqdCpuSecPer100k: number;
  meanNodeCpuPct: number;
  p50Ms: number;
  p99Ms: number;
  lost: number;
}

function summary(name: string): Summary {
  return (JSON.parse(readFileSync(join(RESULTS_DIR, `${name}.json`), 'utf8')) as { summary: Summary }).summary;
}

const prefix = process.argv[2] ?? 'cluster-nodes';
const nodes = (process.argv[3] ?? '1,2,4').split(',').map(Number);
const fixed = nodes.map((n) => summary(`${prefix}-${n}`));
const max = nodes.map((n) => summary(`${prefix}-${n}-max`));

const svg = renderSvg({
  title: 'Cluster on one machine: every node consumes every push',
  subtitle: `${prefix}-<nodes>.json (fixed rate) and ${prefix}-<nodes>-max.json (as fast as taken); 2 cores shared by the nodes, nsqd, etcd and the load`,
  x: nodes,
  xLabel: 'pusher nodes',
  markers: true,
  panels: [
    {
      title: 'pushes/s, as fast as taken', log: false, series: [
        { label: 'accepted', color: '#1f77b4', values: max.map((s) => s.pushesPerS) },
        { label: 'delivered (first push to last frame)', color: '#ff7f0e', values: max.map((s) => s.overallDeliveredPerS) },
      ],
    },
    {
      title: 'CPU seconds per 100,000 pushes (fixed rate)', log: false, series: [
        { label: 'per node', color: '#2ca02c', values: fixed.map((s) => s.meanNodeCpuSecPer100k) },
        { label: 'all nodes', color: '#d62728', values: fixed.map((s) => s.nodesCpuSecPer100k) },
        { label: 'nsqd', color: '#9467bd', values: fixed.map((s) => s.nsqdCpuSecPer100k) },
      ],
    },
  ],
});
writeFileSync(join(RESULTS_DIR, `${prefix}.svg`), svg);

console.log('| nodes | as fast as taken: accepted / delivered per s | at 2,000/s: node CPU % each | CPU-s per 100k pushes at 2,000/s: per node / all nodes / nsqd | p50 / p99 ms at 2,000/s | lost |');
console.log('| --- | --- | --- | --- | --- | --- |');
nodes.forEach((n, i) => {
  const f = fixed[i]!;
  const m = max[i]!;
  console.log(`| ${n} | ${m.pushesPerS.toLocaleString('en')} / ${m.overallDeliveredPerS.toLocaleString('en')} | ${f.meanNodeCpuPct} | ${f.meanNodeCpuSecPer100k} / ${f.nodesCpuSecPer100k} / ${f.nsqdCpuSecPer100k} | ${f.p50Ms} / ${f.p99Ms} | ${f.lost + m.lost} |`);
});
