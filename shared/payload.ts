// The one place that renders what a client receives for a push:
// {"type":1,"data":"<content>"} (gopusher's ServerMsg), and, for connections
// that joined with recovery, the same frame with "offset" and "epoch" after
// "data".

export function renderPush(content: string): string {
  return '{"type":1,"data":' + JSON.stringify(content) + '}';
}

/** Reply to join and ping. */
export const OK_FRAME = '{"type":1,"data":"ok"}';

// Epochs are made by the shards (workers/shard/history.ts) of characters that
// need no JSON escaping, and offsets are integers: both are written as they are.
function position(offset: number, epoch: string): string {
  return ',"offset":' + offset + ',"epoch":"' + epoch + '"}';
}

/** A rendered push frame (bytes) with its position: the closing brace becomes `,"offset":n,"epoch":"e"}`. */
export function positioned(payload: Uint8Array, offset: number, epoch: string): Buffer {
  const tail = position(offset, epoch);
  const head = payload.length - 1;
  const out = Buffer.allocUnsafe(head + tail.length);
  out.set(payload.subarray(0, head));
  out.write(tail, head, 'latin1');
  return out;
}

/** The same for a frame kept as text (a missed push replayed on join). */
export function positionedText(payload: string, offset: number, epoch: string): string {
  return payload.slice(0, -1) + position(offset, epoch);
}

/** Reply to a join with recovery: where the connection stands (offset -1: not known, then offset and epoch are left out). */
export function recoveryReply(recovered: boolean, offset: number, epoch: string): string {
  const head = '{"type":1,"data":"ok","recovered":' + recovered;
  return offset < 0 ? head + '}' : head + position(offset, epoch);
}
