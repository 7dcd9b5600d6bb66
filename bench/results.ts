// One result per run: bench/results/<scenario>-<timestamp>.json (or
// <name>.json with --name) and the SVG plot next to it.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Interval } from './fleet';
import type { Percentiles } from './histogram';
import type { Options } from './options';
import { renderSvg } from './plot';
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

export function writeResult(r: RunResult, name: string): { json: string; svg: string } {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const base = join(RESULTS_DIR, name);
  writeFileSync(`${base}.json`, JSON.stringify(r, null, 1) + '\n');
  const s = r.series;
  const o = r.options;
  const head = `${r.scenario}: ${o.server === 'naive' ? 'naive baseline' : `pusher, ${o.driver}`}, path ${o.path}`
    + `, ${o.connections} conns, group ${o.groupSize}` + (o.rate > 0 ? `, offered ${o.rate}/s` : ', as fast as possible');
  const sub = `${r.startedAt} · ${r.machine.cpus} cpu ${r.machine.cpuModel} · node ${r.machine.node} · `
    + Object.entries(r.summary).filter(([, v]) => typeof v === 'number').slice(0, 4).map(([k, v]) => `${k} ${v}`).join(', ');
  writeFileSync(`${base}.svg`, renderSvg({
    title: head,
    subtitle: sub,
    t: s.map((i) => i.t),
    throughput: [
      { label: 'pushes sent/s', color: '#1f77b4', values: s.map((i) => i.sent) },
      { label: 'frames received/s', color: '#2ca02c', values: s.map((i) => i.delivered) },
      { label: 'server delivered/s', color: '#ff7f0e', values: s.map((i) => i.serverDelivered) },
    ],
    latency: [
      { label: 'p50', color: '#2ca02c', values: s.map((i) => i.p50) },
      { label: 'p99', color: '#ff7f0e', values: s.map((i) => i.p99) },
      { label: 'max', color: '#d62728', values: s.map((i) => i.max) },
    ],
  }));
  return { json: `${base}.json`, svg: `${base}.svg` };
}
