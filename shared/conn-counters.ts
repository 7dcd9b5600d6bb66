// Connection counts that every shard sees: shards are threads, and a limit
// per shard would be per-thread, not per-process. One SharedArrayBuffer, made
// by the main thread; each shard writes only its own slice, so a restarted
// shard (whose connections all closed with its predecessor) just zeroes it.
//
// Per slice: the shard's connection count, then a count-min sketch of its
// connections per client address (two rows of hashed cells). A sketch never
// undercounts: an address is refused only when both of its cells, summed over
// the shards, reach the limit, so an innocent address is refused only if both
// its cells collide with heavy ones. No allocation and no lock per upgrade;
// shards read each other without waiting, so concurrent upgrades on several
// shards may pass a limit by at most one per shard.

/** Cells per sketch row (a power of two). */
const CELLS = 8192;
const SLICE = 1 + 2 * CELLS;

export class ConnCounters {
  private readonly cells: Int32Array;
  private readonly own: number;

  static create(shards: number): SharedArrayBuffer {
    return new SharedArrayBuffer(shards * SLICE * 4);
  }

  constructor(buffer: SharedArrayBuffer, private readonly shards: number, index: number) {
    this.cells = new Int32Array(buffer);
    this.own = index * SLICE;
  }

  /** This shard starts with no connections. */
  reset(): void {
    this.cells.fill(0, this.own, this.own + SLICE);
  }

  /** Connections of every shard. */
  total(): number {
    let n = 0;
    for (let s = 0; s < this.shards; s++) n += Atomics.load(this.cells, s * SLICE);
    return n;
  }

  /** At least the connections of every shard from the address with hash `h` (sketchHash). */
  fromAddress(h: number): number {
    const a = 1 + (h & (CELLS - 1));
    const b = 1 + CELLS + ((h >>> 16) & (CELLS - 1));
    let n = 0;
    for (let s = 0; s < this.shards; s++) {
      const base = s * SLICE;
      n += Math.min(Atomics.load(this.cells, base + a), Atomics.load(this.cells, base + b));
    }
    return n;
  }

  /** Counts a connection of this shard in (+1) or out (-1); h = -1: no address counted. */
  add(h: number, delta: 1 | -1): void {
    Atomics.add(this.cells, this.own, delta);
    if (h === -1) return;
    Atomics.add(this.cells, this.own + 1 + (h & (CELLS - 1)), delta);
    Atomics.add(this.cells, this.own + 1 + CELLS + ((h >>> 16) & (CELLS - 1)), delta);
  }
}

/** 32-bit hash of an address for the sketch (FNV-1a; its low and high 16 bits pick the two cells). */
export function sketchHash(address: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) {
    h ^= address.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
