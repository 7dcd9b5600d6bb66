// A real Prometheus (Debian's package) scraping given targets every second,
// on a free port with a temporary data dir; and promtool. The test's teardown
// stops it and removes the dir.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, systemBinary, type Teardown } from './daemon';
import { freePort } from './server';

function binary(name: 'prometheus' | 'promtool'): string {
  try {
    return systemBinary(name);
  } catch {
    throw new Error(`${name} not found: run scripts/ops-deps.sh (installs Debian's prometheus, which has promtool)`);
  }
}

/** `promtool check metrics` on `text`: its exit code and what it printed (problems, one per line). */
export function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(binary('promtool'), ['check', 'metrics'], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, output: stdout + stderr });
    });
    child.stdin!.end(text);
  });
}

export class Prometheus {
  private constructor(private readonly daemon: Daemon, readonly url: string) {}

  /** Starts Prometheus scraping `targets` (host:port, path /metrics) every second. */
  static async start(t: Teardown, targets: string[]): Promise<Prometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'pusher-prometheus-'));
    const port = await freePort();
    const config = join(dir, 'prometheus.yml');
    writeFileSync(config, [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: pusher',
      '    static_configs:',
      `      - targets: [${targets.map((x) => `'${x}'`).join(', ')}]`,
      '',
    ].join('\n'));
    const url = `http://127.0.0.1:${port}`;
    const daemon = new Daemon('prometheus', () => binary('prometheus'), [
      `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
    ], async () => (await fetch(`${url}/-/ready`).catch(() => null))?.ok === true);
    t.teardown(async () => {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    await daemon.start();
    return new Prometheus(daemon, url);
  }

  output(): string {
    return this.daemon.output();
  }

  /** An instant PromQL query; throws with Prometheus's error when it is refused. */
  async query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error ?? res.status}`);
    return body.data!.result;
  }

  /** The scrape targets' health as Prometheus reports it. */
  async targets(): Promise<{ health: string; lastError: string; scrapeUrl: string }[]> {
    const res = await fetch(`${this.url}/api/v1/targets`);
    return ((await res.json()) as { data: { activeTargets: { health: string; lastError: string; scrapeUrl: string }[] } }).data.activeTargets;
  }
}
