// A real single-member etcd (Debian's etcd-server 3.4; scripts/cluster-deps.sh
// installs it) on free ports with a temp data dir. It can be stopped and started
// again on the same ports and dir. Keys and leases go through etcd's own
// JSON gateway (/v3/kv/*, /v3/lease/*: base64 keys and values, int64 as
// strings), so tests need no etcd client library. Teardown kills it and
// removes the dir.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, systemBinary, type Teardown } from './daemon';
import { freePort } from './server';

export interface KeyValue {
  key: string;
  value: string;
  /** Lease id (int64 as a decimal string), or null for a key without one. */
  lease: string | null;
}

interface RangeReply {
  kvs?: { key: string; value?: string; lease?: string }[];
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The range_end that selects every key starting with `prefix` (its last byte plus one). */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = bytes.subarray(0, i + 1);
      end[i]++;
      return end.toString('base64');
    }
  }
  return b64('\0'); // empty or all-0xff prefix: every key
}

export class Etcd {
  private readonly daemon: Daemon;

  private constructor(readonly clientPort: number, readonly peerPort: number, readonly dataDir: string) {
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    this.daemon = new Daemon('etcd', () => systemBinary('etcd'), [
      '--name', 'test', `--data-dir=${dataDir}`,
      `--listen-client-urls=${client}`, `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=test=${peer}`,
    ], () => fetch(`${client}/health`).then(async (r) => r.ok && (await r.json() as { health: string }).health === 'true', () => false));
  }

  /** Allocates ports and a data dir; starts etcd (about 0.5 s) unless `start` is false. */
  static async create(t: Teardown, opts: { start?: boolean } = {}): Promise<Etcd> {
    const e = new Etcd(await freePort(), await freePort(), mkdtempSync(join(tmpdir(), 'pusher-etcd-')));
    t.teardown(async () => {
      await e.stop('SIGKILL');
      rmSync(e.dataDir, { recursive: true, force: true });
    });
    if (opts.start !== false) await e.start();
    return e;
  }

  /** The client URL, as confd's -node and etcd clients take it. */
  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.daemon.running;
  }

  output(): string {
    return this.daemon.output();
  }

  /** Starts etcd (on the same ports and data dir as before) and waits until /health says true. */
  start(): Promise<void> {
    return this.daemon.start();
  }

  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return this.daemon.stop(signal);
  }

  async put(key: string, value: string, lease?: string): Promise<void> {
    await this.call('/v3/kv/put', { key: b64(key), value: b64(value), ...(lease === undefined ? {} : { lease }) });
  }

  async get(key: string): Promise<string | null> {
    const reply = await this.call<RangeReply>('/v3/kv/range', { key: b64(key) });
    return reply.kvs === undefined ? null : unb64(reply.kvs[0]!.value);
  }

  /** Every key under `prefix`, in key order. */
  async list(prefix: string): Promise<KeyValue[]> {
    const reply = await this.call<RangeReply>('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix) });
    return (reply.kvs ?? []).map((kv) => ({ key: unb64(kv.key), value: unb64(kv.value), lease: kv.lease ?? null }));
  }

  /** Deletes one key; resolves with how many were deleted (0 or 1). */
  async del(key: string): Promise<number> {
    return Number((await this.call<{ deleted?: string }>('/v3/kv/deleterange', { key: b64(key) })).deleted ?? 0);
  }

  async delPrefix(prefix: string): Promise<number> {
    return Number((await this.call<{ deleted?: string }>('/v3/kv/deleterange', { key: b64(prefix), range_end: prefixEnd(prefix) })).deleted ?? 0);
  }

  /** Grants a lease of `ttl` seconds; resolves with its id. */
  async grantLease(ttl: number): Promise<string> {
    return (await this.call<{ ID: string }>('/v3/lease/grant', { TTL: ttl })).ID;
  }

  /** Revokes a lease: etcd deletes every key attached to it. */
  async revokeLease(id: string): Promise<void> {
    await this.call('/v3/lease/revoke', { ID: id });
  }

  /** Seconds the lease has left, or -1 once it expired or was revoked. */
  async leaseTtl(id: string): Promise<number> {
    return Number((await this.call<{ TTL: string }>('/v3/lease/timetolive', { ID: id })).TTL);
  }

  private async call<T = unknown>(path: string, body: object): Promise<T> {
    const res = await fetch(`${this.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }
}
