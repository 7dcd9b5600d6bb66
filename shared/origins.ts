// server.allowed_origins: which browser origins may open WebSockets and get
// CORS answers. Used by the shards (upgrade) and the gateway (CORS). An empty
// list allows any origin (drop-in: gopusher answers every origin).

/** scheme://host[:port], as browsers send it (lower case, no path). */
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/([^/:?#]+)(?::(\d+))?$/;

interface Pattern {
  /** null: any scheme. */
  readonly scheme: string | null;
  /** '.example.com' for *.example.com, 'app.example.com' for an exact host. */
  readonly host: string;
  readonly wildcard: boolean;
  /** null: any port. */
  readonly port: string | null;
}

export class OriginList {
  private readonly exact = new Set<string>();
  private readonly patterns: Pattern[] = [];

  /** Entries as config validated them: https://app.example.com, *.example.com, https://*.example.com:8443, app.example.com. */
  constructor(entries: readonly string[]) {
    for (const raw of entries) {
      const e = raw.toLowerCase().replace(/\/+$/, '');
      const m = /^(?:([a-z]+):\/\/)?(\*\.)?([^:]+)(?::(\d+))?$/.exec(e);
      if (m === null) continue;
      const [, scheme, star, host, port] = m;
      if (scheme !== undefined && star === undefined) this.exact.add(e);
      else this.patterns.push({ scheme: scheme ?? null, host: star !== undefined ? `.${host}` : host!, wildcard: star !== undefined, port: port ?? null });
    }
  }

  /** No list configured: every origin is allowed. */
  get any(): boolean {
    return this.exact.size === 0 && this.patterns.length === 0;
  }

  allows(origin: string): boolean {
    if (this.any) return true;
    const o = origin.toLowerCase();
    if (this.exact.has(o)) return true;
    const m = ORIGIN.exec(o);
    if (m === null) return false; // "null" (sandboxed pages, file:) and anything malformed
    const [, scheme, host, port] = m;
    for (const p of this.patterns) {
      if (p.scheme !== null && p.scheme !== scheme) continue;
      if (p.port !== null && p.port !== (port ?? '')) continue;
      if (p.wildcard ? host!.endsWith(p.host) && host!.length > p.host.length : host === p.host) return true;
    }
    return false;
  }
}
