// gRPC pushes as the bytes that arrived (they are the queue body, never
// encoded again), and what is checked on those bytes before they are trusted:
// proto3 strings must be valid UTF-8 (protobuf-go refuses others; protobufjs
// would decode them with U+FFFD, so a push for "victim\xff" would reach
// whoever joined "victim\ufffd"). Batches are only split here: their pushes
// are decoded later, a chunk at a time (push-service.ts), so that a huge
// batch never holds the main thread for long.

import { isUtf8 } from 'node:buffer';
import * as protobuf from 'protobufjs';
import { protoType, type PushRequest } from '../../shared/proto';

const PushRequestType = protoType('PushRequest');
/** PushBatchRequest.pushes: field 1, length-delimited. */
const PUSHES_TAG = (1 << 3) | 2;

/** A push as it arrived over gRPC: its bytes (the queue body) and their decoding. */
export interface EncodedPush {
  readonly bytes: Uint8Array;
  readonly req: PushRequest;
  /** The first string field that is not valid UTF-8, or '' when all are. */
  readonly badUtf8: string;
}

/**
 * The first string field of an encoded `type` message (nested messages
 * included) that is not valid UTF-8, or '' (also when the bytes are
 * malformed: decode() says so).
 */
export function badUtf8Field(type: protobuf.Type, bytes: Uint8Array): string {
  const reader = protobuf.Reader.create(bytes);
  try {
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      const field = type.fieldsById[tag >>> 3];
      if ((tag & 7) !== 2 || field === undefined || (field.type !== 'string' && !(field.resolvedType instanceof protobuf.Type))) {
        reader.skipType(tag & 7);
        continue;
      }
      const len = reader.uint32();
      const end = reader.pos + len;
      if (end > reader.len) return '';
      const value = bytes.subarray(reader.pos, end);
      const bad = field.type === 'string' ? (isUtf8(value) ? '' : field.name) : badUtf8Field(field.resolvedType as protobuf.Type, value);
      if (bad !== '') return bad;
      reader.pos = end;
    }
  } catch {
    return ''; // truncated: decode() throws the real error
  }
  return '';
}

export function decodePush(bytes: Uint8Array): EncodedPush {
  return { bytes, badUtf8: badUtf8Field(PushRequestType, bytes), req: PushRequestType.decode(bytes) as unknown as PushRequest };
}

/** A PushBatchRequest's pushes as views of `buf`, undecoded; `more` when it held over `max` (only `max + 1` are split off). */
export interface SplitBatch {
  readonly pushes: Uint8Array[];
  readonly more: boolean;
}

export function splitBatch(buf: Uint8Array, max: number): SplitBatch {
  const reader = protobuf.Reader.create(buf);
  const pushes: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === PUSHES_TAG) {
      if (pushes.length > max) return { pushes, more: true };
      const len = reader.uint32();
      if (reader.pos + len > reader.len) throw new RangeError('PushBatchRequest is truncated');
      pushes.push(buf.subarray(reader.pos, reader.pos + len));
      reader.skip(len);
    } else reader.skipType(tag & 7);
  }
  return { pushes, more: pushes.length > max };
}
