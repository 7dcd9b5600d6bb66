// The push content that carries its own send time: exactly 11 bytes (the size
// gopusher's 10k/s claim uses), the send time in microseconds since the epoch
// as zero-padded base36. Sender and receivers are different processes on one
// box, so wall-clock time with sub-millisecond precision is the shared clock.
// The chaos scenario appends the push's id (8 more base36 characters), so that
// receivers can say which push each frame was.

export const CONTENT_LENGTH = 11;
export const ID_LENGTH = 8;

/** Microseconds since the epoch, with the precision of performance.now(). */
export function nowUs(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

export function encodeStamp(us: number): string {
  return us.toString(36).padStart(CONTENT_LENGTH, '0');
}

export function encodeId(id: number): string {
  return id.toString(36).padStart(ID_LENGTH, '0');
}

/** What a push frame looks like on the wire: {"type":1,"data":"<content>"} */
const PREFIX = Buffer.from('{"type":1,"data":"');
export const FRAME_LENGTH = PREFIX.length + CONTENT_LENGTH + 2;
const ID_FRAME_LENGTH = FRAME_LENGTH + ID_LENGTH;

/** A frame of `length` bytes, or `length` and a "\n" (gopusher ends its frames with one). */
export function frameOf(frame: Buffer, length: number): boolean {
  return frame.length === length || (frame.length === length + 1 && frame[length] === 0x0a);
}

/** Base36 digits at frame[from, from + n), or -1 when one is not a digit. */
function base36(frame: Buffer, from: number, n: number): number {
  let v = 0;
  const end = from + n;
  for (let i = from; i < end; i++) {
    const c = frame[i]!;
    // '0'-'9' then 'a'-'z'
    const d = c <= 0x39 ? c - 0x30 : c - 0x57;
    if (d < 0 || d > 35) return -1;
    v = v * 36 + d;
  }
  return v;
}

/**
 * The send time carried by a push frame, or -1 when the frame is not a bench
 * push (a join's "ok", an error). Reads the bytes in place: no allocation.
 */
export function decodeStamp(frame: Buffer): number {
  if ((!frameOf(frame, FRAME_LENGTH) && !frameOf(frame, ID_FRAME_LENGTH)) || frame[PREFIX.length - 1] !== 0x22 || frame[5] !== 0x65) return -1;
  return base36(frame, PREFIX.length, CONTENT_LENGTH);
}

/** The push id after the stamp (chaos), or -1 when the frame carries none. */
export function decodeId(frame: Buffer): number {
  if (!frameOf(frame, ID_FRAME_LENGTH)) return -1;
  return base36(frame, PREFIX.length + CONTENT_LENGTH, ID_LENGTH);
}
