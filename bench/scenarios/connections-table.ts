// The connections scenario's measurements at each step, and the table the run
// prints: memory at each connection count, what each step added per
// connection, and the fitted slopes.

import type { LineFit } from '../fit';
import type { KernelMem } from '../kernel-mem';

export interface Step {
  /** Connections joined and held when this step was measured. */
  connections: number;
  connectPerS: number;
  /** Server RSS once still (median of the still window); null when the server's pid is unknown. */
  rssBytes: number | null;
  /** The same after a full GC in every isolate, and their used JS heap summed; null without the server's inspector. */
  rssAfterGcBytes: number | null;
  jsHeapBytes: number | null;
  kernel: KernelMem;
  /** False when RSS still moved after the longest wait: its numbers are less sure. */
  settled: boolean;
  waitedS: number;
}

export interface StepFits {
  rssAfterGc: LineFit | null;
  rssAsFound: LineFit | null;
  jsHeap: LineFit | null;
  kernelSlab: LineFit | null;
  /** Kernel slab against every TCP socket in use on the box (bytes per socket). */
  kernelSlabPerSocket: LineFit | null;
  tcpBuffers: LineFit;
}

const mb = (b: number | null): string => (b === null ? '-' : (b / 2 ** 20).toFixed(1));
const perConn = (a: number | null, b: number | null, dn: number): string => (a === null || b === null || dn <= 0 ? '-' : Math.round((b - a) / dn).toLocaleString('en'));
const slope = (name: string, f: LineFit | null, unit = 'B/conn'): string | null => (f === null ? null
  : `${name} ${f.slope.toLocaleString('en')} ${unit}${f.r2 === null ? '' : ` (R² ${f.r2.toFixed(4)})`}`);

export function formatSteps(steps: Step[], fits: StepFits): string {
  const gc = fits.rssAfterGc !== null;
  const head = ['connections', 'rss MB', ...(gc ? ['after GC MB', 'JS heap MB'] : []), 'Δrss B/conn', 'slab MB', 'Δslab B/conn', 'tcp buf KB', 'tcp sockets', 'settled'];
  const rows = steps.map((s, i) => {
    const p = steps[i - 1];
    const dn = p === undefined ? 0 : s.connections - p.connections;
    const rss = (st: Step | undefined): number | null => (st === undefined ? null : gc ? st.rssAfterGcBytes : st.rssBytes);
    return [
      s.connections.toLocaleString('en'), mb(s.rssBytes), ...(gc ? [mb(s.rssAfterGcBytes), mb(s.jsHeapBytes)] : []), perConn(rss(p), rss(s), dn),
      mb(s.kernel.slabBytes), perConn(p?.kernel.slabBytes ?? null, s.kernel.slabBytes, dn),
      (s.kernel.tcpBufBytes / 1024).toFixed(0), s.kernel.tcpInuse.toLocaleString('en'), `${s.settled ? 'yes' : 'NO'} ${s.waitedS}s`,
    ];
  });
  const width = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]): string => r.map((v, c) => v.padStart(width[c]!)).join('  ');
  const fit = [
    // With forced GCs the RSS found before each is the GC-free remainder of a step, not a curve to fit.
    slope('server RSS after full GC', fits.rssAfterGc), gc ? null : slope('server RSS', fits.rssAsFound), slope('JS heap', fits.jsHeap),
    fits.kernelSlab === null ? 'kernel slab: /proc/slabinfo not readable' : slope('kernel socket slab (both ends)', fits.kernelSlab),
    slope('per TCP socket in use', fits.kernelSlabPerSocket, 'B/socket'),
    slope('TCP buffers', fits.tcpBuffers),
  ].filter((v) => v !== null);
  return [line(head), ...rows.map(line), `fit: ${fit.join('; ')}`, ''].join('\n');
}
