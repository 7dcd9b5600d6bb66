// A real confd (v0.16.0, built by scripts/confd.sh on first use: ~2 min once
// with cold Go caches, instant after) in watch mode on an etcd (etcdv3 backend).
// Each template resource is written as conf.d/<name>.toml + templates/<name>.tmpl
// into a temp confdir; confd renders `dest` whenever a watched key changes and
// then runs `reloadCmd`. Teardown kills it and removes the confdir.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, type Teardown } from './daemon';
import { ROOT } from './server';

export interface ConfdTemplate {
  /** Names conf.d/<name>.toml and templates/<name>.tmpl. */
  name: string;
  /** Go text/template with confd's functions (gets, getv, getvs, ls, ...). */
  template: string;
  /** Absolute path confd writes the rendered file to. */
  dest: string;
  /** Key prefixes the template reads; confd watches them. */
  keys: string[];
  /** Shell command run after `dest` changed (e.g. Nginx.reloadCommand()). */
  reloadCmd?: string;
}

let binaryPath: string | undefined;

function binary(): string {
  binaryPath ??= execFileSync(join(ROOT, 'scripts', 'confd.sh'), ['path'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  return binaryPath;
}

// TOML basic strings take JSON's escapes.
const tomlString = (s: string): string => JSON.stringify(s);

function resource(t: ConfdTemplate): string {
  const lines = [
    '[template]',
    `src = ${tomlString(`${t.name}.tmpl`)}`,
    `dest = ${tomlString(t.dest)}`,
    `keys = [${t.keys.map(tomlString).join(', ')}]`,
  ];
  if (t.reloadCmd !== undefined) lines.push(`reload_cmd = ${tomlString(t.reloadCmd)}`);
  return `${lines.join('\n')}\n`;
}

export class Confd {
  private readonly daemon: Daemon;
  /** Where this run's log starts, so a restart waits for its own first pass. */
  private logFrom = 0;

  private constructor(readonly confDir: string, etcdUrl: string, private readonly templates: readonly ConfdTemplate[]) {
    mkdirSync(join(confDir, 'conf.d'));
    mkdirSync(join(confDir, 'templates'));
    for (const t of templates) {
      writeFileSync(join(confDir, 'conf.d', `${t.name}.toml`), resource(t));
      writeFileSync(join(confDir, 'templates', `${t.name}.tmpl`), t.template);
    }
    // Debug level logs each comparison ("... in sync" / "... has been updated") and each command's output.
    this.daemon = new Daemon('confd', binary, ['-backend', 'etcdv3', '-node', etcdUrl, '-watch', '-confdir', confDir, '-log-level', 'debug'],
      async () => this.firstPassDone());
  }

  /** Writes the confdir; starts confd unless `start` is false. `etcd` is a client URL (Etcd.url). */
  static async create(t: Teardown, opts: { etcd: string; templates: ConfdTemplate[]; start?: boolean }): Promise<Confd> {
    const c = new Confd(mkdtempSync(join(tmpdir(), 'pusher-confd-')), opts.etcd, opts.templates);
    t.teardown(async () => {
      await c.stop('SIGKILL');
      rmSync(c.confDir, { recursive: true, force: true });
    });
    if (opts.start !== false) await c.start();
    return c;
  }

  get running(): boolean {
    return this.daemon.running;
  }

  output(): string {
    return this.daemon.output();
  }

  /** How many times confd rewrote `dest` and its reload command succeeded. */
  updates(dest: string): number {
    return this.output().split(`Target config ${dest} has been updated`).length - 1;
  }

  /** Starts confd and waits until it has rendered every template once from etcd (a failed reload command included). */
  start(): Promise<void> {
    this.logFrom = this.output().length;
    return this.daemon.start();
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return this.daemon.stop(signal);
  }

  /** Each dest is final for now: in sync, or rewritten (confd renames it into place before running the reload command). */
  private firstPassDone(): boolean {
    const log = this.output().slice(this.logFrom);
    return this.templates.every((t) => log.includes(`Target config ${t.dest} in sync`) || log.includes(`Target config ${t.dest} has been updated`)
      || (t.reloadCmd !== undefined && log.includes(`Running ${t.reloadCmd}`)));
  }
}
