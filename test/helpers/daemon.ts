// One external process (etcd, nginx, confd) that a test starts, stops and
// starts again with the same arguments, keeping everything it printed.

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { until } from './server';

/** The part of a tap Test these helpers need. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** The absolute path of a system binary (Debian puts nginx in /usr/sbin, which a user's PATH may lack). */
export function systemBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), '/usr/sbin', '/usr/bin'];
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not in this directory: try the next
    }
  }
  throw new Error(`${name} not found on PATH or in /usr/sbin, /usr/bin: run scripts/cluster-deps.sh (installs Debian's etcd-server, etcd-client, nginx)`);
}

export class Daemon {
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private out = '';

  /** `ready` is polled after spawning until it answers true (the process exiting first is an error). */
  constructor(
    private readonly name: string,
    private readonly bin: () => string,
    private readonly args: readonly string[],
    private readonly ready: () => Promise<boolean>,
  ) {}

  get running(): boolean {
    return this.proc !== null;
  }

  /** The pid while the process is alive (not after it exited, even unasked). */
  get pid(): number | undefined {
    const proc = this.proc;
    return proc !== null && proc.exitCode === null && proc.signalCode === null ? proc.pid : undefined;
  }

  /** Everything printed since the first start (stdout and stderr, interleaved). */
  output(): string {
    return this.out;
  }

  async start(): Promise<void> {
    if (this.proc !== null) throw new Error(`${this.name} is already running`);
    const proc = spawn(this.bin(), this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    let gone = false;
    // 'exit', not 'close': nginx's workers inherit the pipes and may outlive a killed master.
    this.exited = new Promise((resolve) => {
      const done = (): void => {
        gone = true;
        resolve();
      };
      proc.once('exit', done);
      proc.once('error', (err) => {
        this.out += `${this.name}: ${err.message}\n`;
        done();
      });
    });
    this.proc = proc;
    await until(async () => {
      if (gone) {
        this.proc = null;
        throw new Error(`${this.name} exited during start-up`);
      }
      return this.ready();
    }, `${this.name} is ready`).catch((err: Error) => {
      throw new Error(`${err.message}; its output:\n${this.out.slice(-4000)}`);
    });
  }

  /** Sends `signal` and waits for the process to end; safe to call when stopped. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (proc === null) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await this.exited;
  }

  /** Sends `signal` without waiting (e.g. SIGHUP to reload). */
  signal(signal: NodeJS.Signals): void {
    if (this.proc === null) throw new Error(`${this.name} is not running`);
    this.proc.kill(signal);
  }
}
