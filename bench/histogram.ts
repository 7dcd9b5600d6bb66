// Log-linear latency histogram (HDR-like): values in microseconds, 64 linear
// buckets below 64 µs, then 32 buckets per power of two (≤ 3.2 % error), up
// to ~35 minutes. A fixed Float64Array: recording allocates nothing, and the
// counts cross process boundaries as a sparse [index, count] list.

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS; // buckets per power of two
const LINEAR = SUB * 2; // values below this get a bucket each
const GROUPS = 31 - SUB_BITS; // power-of-two groups above LINEAR, for 31-bit values
export const BUCKETS = LINEAR + GROUPS * SUB;
const MAX_VALUE = 2 ** 31 - 1;

function indexOf(v: number): number {
  if (v < LINEAR) return v < 0 ? 0 : v;
  if (v > MAX_VALUE) v = MAX_VALUE;
  const msb = 31 - Math.clz32(v);
  const shift = msb - SUB_BITS;
  return LINEAR + (shift - 1) * SUB + ((v >>> shift) - SUB);
}

/** The highest value that maps to bucket `i` (percentiles err upwards, as HDR does). */
function upperOf(i: number): number {
  if (i < LINEAR) return i;
  const shift = Math.floor((i - LINEAR) / SUB) + 1;
  const sub = ((i - LINEAR) % SUB) + SUB;
  return ((sub + 1) << shift) - 1;
}

export type SparseCounts = [number, number][];

export interface Percentiles {
  count: number;
  /** All latency figures in milliseconds. */
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  max = 0;

  record(us: number): void {
    const v = Math.round(us);
    this.counts[indexOf(v)]!++;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
    this.max = 0;
  }

  /** Only the non-empty buckets: what a holder sends its parent each second. */
  toSparse(): SparseCounts {
    const out: SparseCounts = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]! > 0) out.push([i, this.counts[i]!]);
    return out;
  }

  addSparse(sparse: SparseCounts, sum: number, max: number): void {
    for (const [i, n] of sparse) {
      this.counts[i]! += n;
      this.count += n;
    }
    this.sum += sum;
    if (max > this.max) this.max = max;
  }

  add(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
  }

  /** Value at quantile q (0..1), in µs; the exact max for q = 1. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    if (q >= 1) return this.max;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(upperOf(i), this.max);
    }
    return this.max;
  }

  percentiles(): Percentiles {
    const ms = (us: number): number => Math.round(us) / 1000;
    return {
      count: this.count,
      mean: this.count === 0 ? 0 : ms(this.sum / this.count),
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p99: ms(this.quantile(0.99)),
      p999: ms(this.quantile(0.999)),
      max: ms(this.max),
    };
  }
}
