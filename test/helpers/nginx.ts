// A real nginx (Debian's 1.22; scripts/cluster-deps.sh installs it) on a free
// port, in the foreground (`daemon off;`), with its own config file in a temp
// prefix dir and its error log on stderr, so nothing outside the prefix is
// touched. It reloads on SIGHUP like a deployed one, can be stopped and started
// again on the same port and prefix; teardown kills it (workers included) and
// removes the prefix.

import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, systemBinary, type Teardown } from './daemon';
import { freePort, until } from './server';

export interface NginxOptions {
  /** Directives inside `http {}`, e.g. `include upstream.conf;` (relative paths are in the prefix). */
  http?: string;
  /** Directives inside the one `server {}`, which listens on 127.0.0.1:`port`. */
  server: string;
  /** Start at once (default true). Pass false to write files into the prefix first. */
  start?: boolean;
}

/** A location that proxies WebSocket upgrades on `path` to `upstream`, as a pusher deployment behind nginx needs. */
export function websocketLocation(upstream: string, path = '/ws'): string {
  return `location ${path} {
      proxy_pass http://${upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
    }`;
}

function config(port: number, opts: NginxOptions): string {
  // Temp paths are compiled in as absolute /var/lib/nginx/... on Debian: keep them in the prefix.
  return `daemon off;
master_process on;
worker_processes 1;
pid nginx.pid;
error_log stderr notice;
# No worker_shutdown_timeout, as in deploy/cluster/nginx.conf: after a reload
# (a node joined or left) old workers keep proxying the WebSocket connections
# they hold, so the clients of the other nodes stay connected.
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path client_body_temp;
  proxy_temp_path proxy_temp;
  fastcgi_temp_path fastcgi_temp;
  uwsgi_temp_path uwsgi_temp;
  scgi_temp_path scgi_temp;
  ${opts.http ?? ''}
  server {
    listen 127.0.0.1:${port};
    ${opts.server}
  }
}
`;
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

export class Nginx {
  private readonly daemon: Daemon;
  readonly conf: string;
  /** Where the current run's log starts: counts below are per run. */
  private logFrom = 0;

  private constructor(readonly port: number, readonly prefix: string, opts: NginxOptions) {
    this.conf = join(prefix, 'nginx.conf');
    writeFileSync(this.conf, config(port, opts));
    this.daemon = new Daemon('nginx', () => systemBinary('nginx'), ['-p', prefix, '-c', this.conf, '-e', 'stderr'],
      () => fetch(this.url).then(() => true, () => false));
  }

  static async create(t: Teardown, opts: NginxOptions): Promise<Nginx> {
    const prefix = mkdtempSync(join(tmpdir(), 'pusher-nginx-'));
    // Running as root, nginx's workers are `nobody`: they must be able to enter the prefix.
    chmodSync(prefix, 0o755);
    const n = new Nginx(await freePort(), prefix, opts);
    t.teardown(async () => {
      await n.stop('SIGKILL');
      rmSync(n.prefix, { recursive: true, force: true });
    });
    if (opts.start !== false) await n.start();
    return n;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The absolute path of `name` in the prefix (where relative paths in the config point). */
  path(name: string): string {
    return join(this.prefix, name);
  }

  get running(): boolean {
    return this.daemon.running;
  }

  /** nginx's error log (notice level) so far. */
  output(): string {
    return this.daemon.output();
  }

  /** How many times this run of nginx loaded its config and started workers: 1 after start, +1 per reload it accepted. */
  generations(): number {
    return count(this.output().slice(this.logFrom), 'start worker processes');
  }

  /**
   * Reloads that have taken effect: the new workers run and the old ones stopped accepting.
   * The master retires the old workers ~100 ms after starting the new ones; until then
   * a new connection may still reach an old worker, with the old upstreams.
   */
  reloads(): number {
    // One worker per generation: each retired generation logs this line once.
    return Math.min(this.generations() - 1, count(this.output().slice(this.logFrom), 'gracefully shutting down'));
  }

  /** A shell command that reloads this nginx, for confd's reload_cmd (nginx -s reload, as deployments do). */
  reloadCommand(): string {
    return `${systemBinary('nginx')} -p ${this.prefix} -c ${this.conf} -e stderr -s reload`;
  }

  /** Starts nginx (same port and prefix as before) and waits until it accepts connections. */
  start(): Promise<void> {
    this.logFrom = this.output().length;
    return this.daemon.start();
  }

  /** SIGHUP, then waits until the reload took effect; rejects if nginx refused the new config (it keeps the old one). */
  async reload(): Promise<void> {
    const reloads = this.reloads();
    const refused = count(this.output(), '[emerg]');
    this.daemon.signal('SIGHUP');
    await until(async () => {
      if (count(this.output(), '[emerg]') > refused) throw new Error(`nginx refused the new config:\n${this.output()}`);
      return this.reloads() > reloads;
    }, 'nginx reloaded');
  }

  /**
   * SIGTERM: nginx stops its workers and exits. SIGKILL kills the workers too, which a
   * killed master can't (they would keep the port and the test's pipes open).
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const master = this.daemon.pid;
    if (signal === 'SIGKILL' && master !== undefined) {
      // Frozen first, so that the master does not replace the workers killed below.
      process.kill(master, 'SIGSTOP');
      for (const pid of this.workers(master)) process.kill(pid, 'SIGKILL');
    }
    await this.daemon.stop(signal);
  }

  /** The master's children, found among the workers it logged (only those whose parent it still is). */
  private workers(master: number): number[] {
    const pids: number[] = [];
    for (const m of this.output().matchAll(/start worker process (\d+)/g)) {
      const pid = Number(m[1]);
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        continue; // exited already
      }
      // Fields after "(comm)": state, ppid, ...
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === master) pids.push(pid);
    }
    return pids;
  }
}
