// Reads a server's GET /metrics (Prometheus text format) for assertions.

export interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

export type Scrape = Map<string, Sample[]>;

export function parseMetrics(text: string): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    if (!out.has(m[1]!)) out.set(m[1]!, []);
    out.get(m[1]!)!.push({ labels, value: Number(m[3]) });
  }
  return out;
}

export async function scrape(http: string): Promise<{ text: string; metrics: Scrape; type: string }> {
  const res = await fetch(`${http}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const text = await res.text();
  return { text, metrics: parseMetrics(text), type: res.headers.get('content-type') ?? '' };
}

/** The sum of `name`'s samples whose labels include `labels`. */
export function sum(m: Scrape, name: string, labels: Record<string, string> = {}): number {
  return (m.get(name) ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

/** Per shard label: the value of `name`. */
export function perShard(m: Scrape, name: string): number[] {
  const out: number[] = [];
  for (const s of m.get(name) ?? []) out[Number(s.labels['shard'])] = s.value;
  return out;
}
