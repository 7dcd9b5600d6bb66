// Push API keys (auth.api_keys, auth.api_keys_file): with any configured,
// pushes, queries and /stats need `Authorization: Bearer <key>` (gRPC: the
// same metadata). Keys are kept as SHA-256 digests and a presented key is
// compared with every one of them in constant time (equal-length digests,
// crypto.timingSafeEqual, no early exit), so timing tells nothing about how
// much of a key was right. The file is re-read on SIGHUP (main.ts).

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** Keys of a file: one a line; blank lines and lines starting with # are skipped. */
function readKeys(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

export class ApiKeys {
  private digests: Buffer[] = [];
  /** The first key in force: what this node sends when it asks the other nodes of its cluster (they share the keys). */
  private own = '';
  /** Changes on every reload: what a caller cached as accepted is checked again. */
  generation = 0;

  /** Throws (ENOENT, EACCES, ...) when the file can't be read. */
  constructor(private readonly list: readonly string[], private readonly file: string) {
    this.reload();
  }

  /** Keys are required. */
  get on(): boolean {
    return this.list.length > 0 || this.file !== '';
  }

  /** Re-reads auth.api_keys_file; on failure throws and keeps the keys in force. */
  reload(): number {
    const keys = [...this.list, ...(this.file !== '' ? readKeys(this.file) : [])];
    this.digests = keys.map(digest);
    this.own = keys[0] ?? '';
    this.generation++;
    return keys.length;
  }

  /** The Authorization header value for a request to another node ('' when keys are off). */
  get outgoing(): string {
    return this.own === '' ? '' : `Bearer ${this.own}`;
  }

  /** The index of the key an Authorization header value carries, or -1 (also when it is missing or malformed). */
  match(authorization: string): number {
    const m = BEARER.exec(authorization);
    if (m === null) return -1;
    const d = digest(m[1]!);
    let found = -1;
    for (let i = 0; i < this.digests.length; i++) if (timingSafeEqual(this.digests[i]!, d)) found = i;
    return found;
  }
}
