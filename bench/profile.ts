// Summarises the .cpuprofile files node --cpu-prof wrote (one per thread):
// self time per function, top entries per thread. Also a CLI:
//   node dist/bench/profile.js <dir> [top]

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ThreadProfile {
  file: string;
  /** main, shard, processor or naive: guessed from the entry file the thread loaded. */
  thread: string;
  wallMs: number;
  /** CPU time sampled outside "(idle)". */
  busyMs: number;
  top: { fn: string; selfMs: number; pctOfBusy: number }[];
}

function where(cf: CallFrame): string {
  if (cf.url === '') return '';
  const url = cf.url.replace(/^file:\/\//, '');
  const short = url.includes('/node_modules/') ? url.slice(url.lastIndexOf('/node_modules/') + 14) : url.replace(/^.*\/dist\//, '');
  return ` ${short}:${cf.lineNumber + 1}`;
}

function threadOf(p: CpuProfile): string {
  const urls = p.nodes.map((n) => n.callFrame.url);
  if (urls.some((u) => u.endsWith('/workers/shard.js'))) return 'shard';
  if (urls.some((u) => u.endsWith('/workers/processor.js'))) return 'processor';
  if (urls.some((u) => u.endsWith('/baseline-naive.js'))) return 'naive';
  return 'main';
}

export function summariseProfile(path: string, top: number): ThreadProfile {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const cf = byId.get(p.samples[i]!)!;
    // timeDeltas[i + 1] is the time until the next sample: the time spent in sample i.
    const us = p.timeDeltas[i + 1] ?? 0;
    const key = `${cf.functionName === '' ? '(anonymous)' : cf.functionName}${where(cf)}`;
    self.set(key, (self.get(key) ?? 0) + us);
    if (cf.functionName !== '(idle)') busy += us;
  }
  const rows = [...self].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    file: path.slice(path.lastIndexOf('/') + 1),
    thread: threadOf(p),
    wallMs: Math.round((p.endTime - p.startTime) / 1000),
    busyMs: Math.round(busy / 1000),
    top: rows.map(([fn, us]) => ({ fn, selfMs: Math.round(us / 100) / 10, pctOfBusy: busy === 0 ? 0 : Math.round((1000 * us) / busy) / 10 })),
  };
}

export function summariseDir(dir: string, top = 15): ThreadProfile[] {
  return readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()
    .map((f) => summariseProfile(join(dir, f), top))
    .sort((a, b) => a.thread.localeCompare(b.thread));
}

export function formatProfiles(threads: ThreadProfile[]): string {
  return threads.map((t) => [
    `== ${t.thread} (${t.file}): busy ${t.busyMs} ms of ${t.wallMs} ms`,
    ...t.top.map((r) => `  ${r.pctOfBusy.toFixed(1).padStart(5)}%  ${r.selfMs.toFixed(1).padStart(8)} ms  ${r.fn}`),
  ].join('\n')).join('\n');
}

if (require.main === module) {
  const dir = process.argv[2];
  if (dir === undefined) {
    process.stderr.write('usage: node dist/bench/profile.js <dir-with-cpuprofiles> [top]\n');
    process.exit(2);
  }
  process.stdout.write(formatProfiles(summariseDir(dir, Number(process.argv[3] ?? 15))) + '\n');
}
