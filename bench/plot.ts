// Writes the run's plot as a self-contained SVG: panels sharing the x axis.
// Load runs: throughput per second on top, latency percentiles (log scale)
// below, over time; connections: memory against connections; chaos adds a
// connections panel and shades the faults.

export interface PlotSeries {
  label: string;
  color: string;
  values: (number | null)[];
  /** Dashed line (a fitted line beside the measured one). */
  dashed?: boolean;
}

export interface PlotPanel {
  title: string;
  series: PlotSeries[];
  log: boolean;
}

/** A span of the x axis to shade in every panel, labelled in the first (a fault, from its start to its end). */
export interface PlotMark {
  from: number;
  to: number;
  label: string;
}

export interface PlotSpec {
  title: string;
  subtitle: string;
  /** One per point: seconds since the start of the run, or connections. */
  x: number[];
  xLabel: string;
  panels: PlotPanel[];
  /** A dot on every point (a few measured steps, not a per-second series). */
  markers?: boolean;
  marks?: PlotMark[];
}

const W = 960;
const PANEL_H = 280;
const LEFT = 80;
const RIGHT = 170;
const TOP = 60;
const GAP = 60;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmt(v: number): string {
  if (v < 0) return `-${fmt(-v)}`;
  if (v >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(v < 1 ? 2 : 1)}`;
}

/** Round axis maximum: 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

interface Panel extends PlotPanel {
  y0: number;
  markers: boolean;
  marks: PlotMark[];
  /** Label the marks (the first panel). */
  markLabels: boolean;
}

function panel(out: string[], p: Panel, tMax: number, t: number[]): void {
  const plotW = W - LEFT - RIGHT;
  const x = (s: number): number => LEFT + (tMax === 0 ? 0 : (s / tMax) * plotW);
  for (const m of p.marks) {
    const x0 = x(m.from);
    out.push(`<rect x="${x0.toFixed(1)}" y="${p.y0}" width="${Math.max(2, x(m.to) - x0).toFixed(1)}" height="${PANEL_H}" fill="#d62728" fill-opacity="0.12"/>`);
    out.push(`<line x1="${x0.toFixed(1)}" x2="${x0.toFixed(1)}" y1="${p.y0}" y2="${p.y0 + PANEL_H}" stroke="#d62728" stroke-dasharray="4 3"/>`);
    if (p.markLabels) out.push(`<text x="${(x0 + 4).toFixed(1)}" y="${p.y0 + 14}" fill="#d62728">${esc(m.label)}</text>`);
  }
  const all = p.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  let y: (v: number) => number;
  const ticks: number[] = [];
  if (p.log) {
    const pos = all.filter((v) => v > 0);
    const lo = 10 ** Math.floor(Math.log10(Math.max(Math.min(...pos, 1), 0.01)));
    const hi = 10 ** Math.ceil(Math.log10(Math.max(...pos, lo * 10)));
    const span = Math.log10(hi) - Math.log10(lo);
    y = (v: number): number => p.y0 + PANEL_H - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span) * PANEL_H;
    for (let v = lo; v <= hi * 1.001; v *= 10) ticks.push(v);
  } else {
    const hi = niceMax(Math.max(...all, 0));
    // A step that freed memory plots below zero.
    const lo = Math.min(...all, 0) < 0 ? -niceMax(-Math.min(...all)) : 0;
    y = (v: number): number => p.y0 + PANEL_H - ((v - lo) / (hi - lo)) * PANEL_H;
    for (let i = 0; i <= 5; i++) ticks.push(lo + ((hi - lo) * i) / 5);
  }
  out.push(`<text x="${LEFT}" y="${p.y0 - 10}" font-weight="bold">${esc(p.title)}</text>`);
  out.push(`<rect x="${LEFT}" y="${p.y0}" width="${plotW}" height="${PANEL_H}" fill="none" stroke="#888"/>`);
  for (const v of ticks) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${LEFT}" x2="${LEFT + plotW}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`);
    out.push(`<text x="${LEFT - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${fmt(v)}</text>`);
  }
  const step = niceMax(tMax / 10);
  for (let s = 0; s <= tMax; s += step) {
    out.push(`<text x="${x(s).toFixed(1)}" y="${p.y0 + PANEL_H + 16}" text-anchor="middle">${fmt(s)}</text>`);
  }
  p.series.forEach((s, i) => {
    let d = '';
    let pen = false;
    s.values.forEach((v, k) => {
      if (v === null || !Number.isFinite(v) || (p.log && v <= 0)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(t[k]!).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (p.markers && s.dashed !== true) {
      s.values.forEach((v, k) => {
        if (v !== null && Number.isFinite(v) && !(p.log && v <= 0)) out.push(`<circle cx="${x(t[k]!).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"/>`);
      });
    }
    const ly = p.y0 + 14 + i * 20;
    out.push(`<line x1="${W - RIGHT + 12}" x2="${W - RIGHT + 36}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="3"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${W - RIGHT + 42}" y="${ly}" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
}

export function renderSvg(spec: PlotSpec): string {
  const tMax = Math.max(...spec.x, 1);
  const n = spec.panels.length;
  const h = TOP + n * PANEL_H + (n - 1) * GAP + 50;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${h}" fill="#fff"/>`,
    `<text x="${LEFT}" y="22" font-size="16" font-weight="bold">${esc(spec.title)}</text>`,
    `<text x="${LEFT}" y="40" fill="#555">${esc(spec.subtitle)}</text>`,
  ];
  const markers = spec.markers === true;
  const marks = spec.marks ?? [];
  spec.panels.forEach((p, i) => panel(out, { ...p, y0: TOP + 10 + i * (PANEL_H + GAP - 10), markers, marks, markLabels: i === 0 }, tMax, spec.x));
  out.push(`<text x="${LEFT + (W - LEFT - RIGHT) / 2}" y="${h - 8}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
