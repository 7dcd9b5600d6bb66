// proto.Rpc as @grpc/grpc-js serves it, built from the one parse of
// proto/rpc.proto (shared/proto.ts, protobufjs) rather than a second parser.
// Push, PushBatch and PushStream hand the handlers the bytes of each
// PushRequest as they arrived (src/api/encoded-push.ts): those bytes are the
// queue body (src/api/push-service.ts), never encoded again.

import type * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { FileDescriptorProto } from 'protobufjs/ext/descriptor';
import { protoRoot } from '../../shared/proto';
import { badUtf8Field, decodePush, splitBatch } from './encoded-push';

const root = protoRoot();

// int64 counts as numbers (they never come near 2^53); proto3 defaults filled in.
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, defaults: true, arrays: true };

/** On a decoded request whose string field (this one) was not valid UTF-8: the handler refuses it (PUSH_ERR_BAD_ENCODING). */
export const BAD_UTF8 = Symbol('badUtf8');

/** Decodes any other request; protobufjs would turn invalid UTF-8 into U+FFFD, so it is marked instead. */
function decodeChecked(type: protobuf.Type, buf: Buffer): unknown {
  const obj = type.toObject(type.decode(buf), TO_OBJECT);
  const bad = badUtf8Field(type, buf);
  return bad === '' ? obj : Object.assign(obj, { [BAD_UTF8]: bad });
}

/** proto.Rpc for grpc-js; batches are split into at most `maxBatch` + 1 undecoded pushes (push.max_batch). */
export function rpcService(maxBatch: number): grpc.ServiceDefinition {
  const DESERIALIZE: Record<string, (buf: Buffer) => unknown> = {
    Push: decodePush,
    PushBatch: (buf) => splitBatch(buf, maxBatch),
    PushStream: (buf) => splitBatch(buf, maxBatch),
  };
  const service = root.lookupService('proto.Rpc');
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const req = method.resolvedRequestType!;
    const res = method.resolvedResponseType!;
    def[method.name] = {
      path: `/${service.fullName.slice(1)}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: (m) => Buffer.from(req.encode(req.fromObject(m as object)).finish()),
      requestDeserialize: DESERIALIZE[method.name] ?? ((buf) => decodeChecked(req, buf)),
      responseSerialize: (m) => Buffer.from(res.encode(res.fromObject(m as object)).finish()),
      responseDeserialize: (buf) => res.toObject(res.decode(buf), TO_OBJECT),
      originalName: method.name,
    };
  }
  return def;
}

/**
 * What @grpc/reflection reads from a proto-loader PackageDefinition: the
 * encoded FileDescriptorProto of the file, here made by protobufjs.
 */
function reflectionPackage(): PackageDefinition {
  const file = root.toDescriptor('proto3').file[0]!;
  file.name = 'rpc.proto';
  const fileDescriptorProtos = [Buffer.from(FileDescriptorProto.encode(file).finish())];
  return { 'proto.Rpc': { fileDescriptorProtos } } as unknown as PackageDefinition;
}

export const REFLECTION_PACKAGE = reflectionPackage();
