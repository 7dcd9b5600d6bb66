// Loads proto/rpc.proto (the one source of truth for the wire contract) with
// protobufjs. Used by the main thread (encode the queue body, gRPC) and by the
// processors (decode the queue body).

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as protobuf from 'protobufjs';

/** The decoded/encoded shape of proto.PushRequest (proto3: absent = default). */
export interface PushRequest {
  from: string;
  to: string[];
  appID: string;
  content: string;
  /** New (field 5): a broadcast to every connection of appID ('' = all); `to` is not used. */
  broadcast: boolean;
}

/** Absolute path of proto/rpc.proto, found from this file whether it runs from src/ or dist/. */
export function protoPath(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'proto', 'rpc.proto');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error(`proto/rpc.proto not found above ${__dirname}`);
  }
}

let root: protobuf.Root | null = null;

/** The one parse of proto/rpc.proto for this thread: queue bodies, gRPC messages and reflection all come from it. */
export function protoRoot(): protobuf.Root {
  if (root === null) root = protobuf.loadSync(protoPath());
  return root;
}

export function protoType(name: string): protobuf.Type {
  return protoRoot().lookupType(`proto.${name}`);
}
