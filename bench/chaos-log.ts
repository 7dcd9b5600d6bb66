// What the chaos scenario's children record (pushes sent, connections held,
// frames received) and how it reaches the orchestrator: growable Float64
// columns, written at the end as one binary file per child (a JSON header
// line, then the columns' bytes), since a run's ~10^6 records are too many
// for JSON over IPC.

import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';

/** A recorded push's outcome (the `status` column). */
export const PushStatus = {
  /** Sent, never answered (the sender gave up at the end). */
  unanswered: 0,
  acked: 1,
  /** The server answered with an error (503 while nsqd is away or while shutting down). */
  refused: 2,
  /** The connection closed or was refused before an answer: outcome unknown to the caller, not acknowledged. */
  connectionError: 3,
  /** Due at the offered rate but not sent: no connection had room for 0.1 s (all down, or the window full). */
  notSent: 4,
} as const;

/** An append-only column of numbers; recording allocates only when it doubles. */
export class Column {
  private data = new Float64Array(4096);
  length = 0;

  push(v: number): number {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length] = v;
    return this.length++;
  }

  set(i: number, v: number): void {
    this.data[i] = v;
  }

  get(i: number): number {
    return this.data[i]!;
  }

  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

export type Columns = Record<string, Float64Array>;

/** Header: {"name": length, ...} and a newline, padded with spaces to a multiple of 8 bytes; then each column's doubles. */
export function writeColumns(path: string, cols: Record<string, Column>): void {
  const names = Object.keys(cols);
  let head = JSON.stringify(Object.fromEntries(names.map((n) => [n, cols[n]!.length])));
  head = head.padEnd(Math.ceil((head.length + 1) / 8) * 8 - 1, ' ') + '\n';
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, head);
    for (const n of names) {
      const v = cols[n]!.view();
      writeSync(fd, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
  } finally {
    closeSync(fd);
  }
}

export function readColumns(path: string): Columns {
  const buf = readFileSync(path);
  const nl = buf.indexOf(0x0a);
  const lengths = JSON.parse(buf.toString('latin1', 0, nl)) as Record<string, number>;
  const out: Columns = {};
  let at = nl + 1;
  for (const [name, n] of Object.entries(lengths)) {
    // A copy: readFileSync's buffer may sit at an offset that is not a multiple of 8 in its pool.
    out[name] = new Float64Array(buf.buffer.slice(buf.byteOffset + at, buf.byteOffset + at + n * 8));
    at += n * 8;
  }
  return out;
}
