// proto.Rpc as @grpc/grpc-js serves it, built from the one parse of
// proto/rpc.proto (shared/proto.ts, protobufjs) rather than a second parser.
// Push, PushBatch and PushStream hand the handlers the bytes of each
// PushRequest as they arrived beside their decoding: those bytes are the
// queue body (src/api/push-service.ts), never encoded again.

import type * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { FileDescriptorProto } from 'protobufjs/ext/descriptor';
import { protoRoot, type PushRequest } from '../../shared/proto';
import type { EncodedPush } from './push-service';

const root = protoRoot();
const PushRequestType = root.lookupType('proto.PushRequest');
/** PushBatchRequest.pushes: field 1, length-delimited. */
const PUSHES_TAG = (1 << 3) | 2;

// int64 counts as numbers (they never come near 2^53); proto3 defaults filled in.
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, defaults: true, arrays: true };

function encodedPush(bytes: Buffer): EncodedPush {
  return { bytes, req: PushRequestType.decode(bytes) as unknown as PushRequest };
}

/** A PushBatchRequest as its pushes' own bytes (views of `buf`), each decoded. */
function encodedBatch(buf: Buffer): { pushes: EncodedPush[] } {
  const reader = protobuf.Reader.create(buf);
  const pushes: EncodedPush[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === PUSHES_TAG) {
      const len = reader.uint32();
      pushes.push(encodedPush(buf.subarray(reader.pos, reader.pos + len)));
      reader.skip(len);
    } else reader.skipType(tag & 7);
  }
  return { pushes };
}

const DESERIALIZE: Record<string, (buf: Buffer) => unknown> = {
  Push: encodedPush,
  PushBatch: encodedBatch,
  PushStream: encodedBatch,
};

function serviceDefinition(): grpc.ServiceDefinition {
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
      requestDeserialize: DESERIALIZE[method.name] ?? ((buf) => req.toObject(req.decode(buf), TO_OBJECT)),
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

export const RPC_SERVICE = serviceDefinition();
export const REFLECTION_PACKAGE = reflectionPackage();
