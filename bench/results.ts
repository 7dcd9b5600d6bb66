// One result per run: bench/results/<scenario>-<timestamp>.json (or
// <name>.json with --name) and the SVG plot next to it.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Interval } from './fleet';
import type { Percentiles } from './histogram';
import type { Options } from './options';
import type { LineFit } from './fit';
import { renderSvg, type PlotSpec } from './plot';
import { chaosPlot } from './chaos-plot';
import type { Step, StepFits } from './scenarios/connections-table';
import type { ThreadProfile } from './profile';

export const RESULTS_DIR = join(__dirname, '..', '..', 'bench', 'results');

export interface RunResult {
  scenario: string;
  startedAt: string;
  command: string;
  options: Options;
  machine: ReturnType<typeof machine>;
  server: { kind: string; command: string[] };
  /** Scenario-specific headline numbers (see bench/README.md). */
  summary: Record<string, unknown>;
  totals: Record<string, number>;
  latency: Percentiles;
  series: Interval[];
  profile?: ThreadProfile[];
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

export function machine(): { cpus: number; cpuModel: string; memGb: number; node: string; kernel: string; nofile: string; portRange: string; somaxconn: string; commit: string } {
  let commit = '';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    commit = 'unknown';
  }
  const nofile = /Max open files\s+(\d+)/.exec(readOr('/proc/self/limits', ''));
  return {
    cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memGb: Math.round(totalmem() / 2 ** 30), node: process.version, kernel: release(),
    nofile: nofile?.[1] ?? '?', portRange: readOr('/proc/sys/net/ipv4/ip_local_port_range', '?').replace(/\s+/, '-'),
    somaxconn: readOr('/proc/sys/net/core/somaxconn', '?'), commit,
  };
}

export function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
}

/** connections: memory against connections at each step, with the fitted lines, and what each step added per connection. */
function memoryPlot(title: string, subtitle: string, steps: Step[], fits: StepFits): PlotSpec {
  const x = steps.map((st) => st.connections);
  const MB = 2 ** 20;
  const mb = (pick: (st: Step) => number | null): (number | null)[] => steps.map((st) => {
    const v = pick(st);
    return v === null ? null : v / MB;
  });
  const line = (f: LineFit | null): (number | null)[] => x.map((n) => (f === null ? null : (f.slope * n + f.intercept) / MB));
  const added = (pick: (st: Step) => number | null): (number | null)[] => steps.map((st, i) => {
    const p = steps[i - 1];
    const a = p === undefined ? null : pick(p);
    const b = pick(st);
    return a === null || b === null ? null : (b - a) / (st.connections - p!.connections);
  });
  const gc = fits.rssAfterGc !== null;
  const rss = (st: Step): number | null => (gc ? st.rssAfterGcBytes : st.rssBytes);
  return {
    title, subtitle, x, xLabel: 'connections held', markers: true,
    panels: [
      {
        title: 'memory, MB (dashed: least-squares fit; kernel counts both ends of each connection)', log: false, series: [
          ...(gc ? [{ label: 'RSS after full GC', color: '#1f77b4', values: mb((st) => st.rssAfterGcBytes) }] : []),
          { label: gc ? 'RSS as found' : 'server RSS', color: gc ? '#9ecae1' : '#1f77b4', values: mb((st) => st.rssBytes) },
          { label: 'RSS fit', color: '#1f77b4', values: line(fits.rssAfterGc ?? fits.rssAsFound), dashed: true },
          ...(gc ? [{ label: 'JS heap used', color: '#9467bd', values: mb((st) => st.jsHeapBytes) }] : []),
          { label: 'kernel socket slab', color: '#d62728', values: mb((st) => st.kernel.slabBytes) },
          { label: 'slab fit', color: '#d62728', values: line(fits.kernelSlab), dashed: true },
          { label: 'TCP buffers', color: '#2ca02c', values: mb((st) => st.kernel.tcpBufBytes) },
        ],
      },
      {
        title: `bytes per connection added by each step${gc ? ' (RSS after full GC)' : ''}`, log: false, series: [
          { label: 'server RSS', color: '#1f77b4', values: added(rss) },
          { label: 'kernel socket slab', color: '#d62728', values: added((st) => st.kernel.slabBytes) },
        ],
      },
    ],
  };
}

export function writeResult(r: RunResult, name: string): { json: string; svg: string } {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const base = join(RESULTS_DIR, name);
  writeFileSync(`${base}.json`, JSON.stringify(r, null, 1) + '\n');
  const s = r.series;
  const o = r.options;
  const head = `${r.scenario}: ${o.server === 'naive' ? 'naive baseline' : `pusher, ${o.driver}`}`
    + (o.scenario === 'connections' ? `, ${o.connections} idle joined connections`
      : `, path ${o.path}, ${o.connections} conns, group ${o.groupSize}` + (o.rate > 0 ? `, offered ${o.rate}/s` : ', as fast as possible'));
  const sub = `${r.startedAt} · ${r.machine.cpus} cpu ${r.machine.cpuModel} · node ${r.machine.node} · `
    + (o.scenario === 'connections'
      ? `RSS ${r.summary.rssPerConnBytes} B/conn (R² ${r.summary.rssFitR2}), kernel ${r.summary.kernelPerSocketBytes} B/socket`
      : Object.entries(r.summary).filter(([, v]) => typeof v === 'number').slice(0, 4).map(([k, v]) => `${k} ${v}`).join(', '));
  const steps = r.summary.steps as Step[] | undefined;
  writeFileSync(`${base}.svg`, renderSvg(r.scenario === 'chaos' ? chaosPlot(r) : steps !== undefined ? memoryPlot(head, sub, steps, r.summary.fits as StepFits) : {
    title: head,
    subtitle: sub,
    x: s.map((i) => i.t),
    xLabel: 'seconds since start',
    panels: [
      {
        title: 'throughput per second', log: false, series: [
          { label: 'pushes sent/s', color: '#1f77b4', values: s.map((i) => i.sent) },
          { label: 'frames received/s', color: '#2ca02c', values: s.map((i) => i.delivered) },
          { label: 'server delivered/s', color: '#ff7f0e', values: s.map((i) => i.serverDelivered) },
        ],
      },
      {
        title: 'push-to-delivery latency, ms (log scale)', log: true, series: [
          { label: 'p50', color: '#2ca02c', values: s.map((i) => i.p50) },
          { label: 'p99', color: '#ff7f0e', values: s.map((i) => i.p99) },
          { label: 'max', color: '#d62728', values: s.map((i) => i.max) },
        ],
      },
    ],
  }));
  return { json: `${base}.json`, svg: `${base}.svg` };
}
