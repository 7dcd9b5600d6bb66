// Input hardening: ids that are not well-formed Unicode are refused where they
// enter (a join; an HTTP push; a gRPC push whose strings are not valid UTF-8),
// so no push meant for one id can land on another; what uWS 20.30 does with
// invalid UTF-8 and unmasked frames (it drops or misreads them: see README),
// and that it harms no one else. (Two Content-Length headers and over 100
// headers are in bad-input.test.ts.)

import t from 'tap';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Client, getJson, postJson, startServer } from './helpers/server';

function frame(payload: Buffer, masked: boolean): Buffer {
  const head = Buffer.from([0x81, (masked ? 0x80 : 0) | payload.length]);
  if (!masked) return Buffer.concat([head, payload]);
  const mask = randomBytes(4);
  return Buffer.concat([head, mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
}

/** Upgrades a raw socket, writes `frames`, and resolves with whatever the server sent back by the time it closed the connection. */
function rawWebSocket(port: number, frames: Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(`GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    let buf = Buffer.alloc(0);
    let upgraded = false;
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (!upgraded && end >= 0) {
        upgraded = true;
        buf = buf.subarray(end + 4);
        for (const f of frames) s.write(f);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(buf));
  });
}

/** An encoded PushRequest with raw bytes as `to` (field 2) and `content` (field 4). */
function rawPush(to: Buffer, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x12, to.length]), to, Buffer.from([0x22, content.length]), content]);
}

t.test('ids must be well-formed Unicode; invalid UTF-8 is refused; bad frames harm no one else', async (t) => {
  const s = await startServer();
  const raw = new grpc.Client(`127.0.0.1:${s.grpcPort}`, grpc.credentials.createInsecure());
  t.teardown(async () => {
    raw.close();
    await s.stop();
  });
  // The attack: join "victim\ufffd" (well-formed), hope pushes for "victim\ud800" are re-encoded onto it.
  const thief = await Client.open(s.wsUrl);
  await thief.join('victim\ufffd');
  const bystander = await Client.open(s.wsUrl);
  await bystander.join('bystander');

  const c = await Client.open(s.wsUrl);
  c.send({ event: 'join', data: { card_id: 'victim\ud800' } });
  await c.waitFrames(1);
  t.match(JSON.parse(c.frames[0]!), { type: 2, code: 'PUSH_ERR_WS_JOIN_INVALID' }, 'a join with a lone surrogate is refused');
  c.send({ event: 'join', data: { card_id: 'ok', app_id: '\udc00' } });
  await c.waitFrames(2);
  t.match(JSON.parse(c.frames[1]!), { type: 2, code: 'PUSH_ERR_WS_JOIN_INVALID' }, 'so is an app_id with one');
  t.equal((await getJson(`${s.http}/isOnline?cardID=${encodeURIComponent('victim\ufffd')}`)).body.result, 'yes');

  for (const body of [{ to: ['victim\ud800'], content: 'secret' }, { to: ['ok'], appID: 'a\udfff', content: 'secret' }]) {
    const r = await postJson(`${s.http}/push`, JSON.stringify(body));
    t.same([r.status, r.body.error], [400, 'PUSH_ERR_BAD_ID'], `HTTP push ${JSON.stringify(body)}`);
  }
  const grpcPush = (bytes: Buffer): Promise<grpc.ServiceError | null> =>
    new Promise((resolve) => raw.makeUnaryRequest('/proto.Rpc/Push', (b: Buffer) => b, (b: Buffer) => b, bytes, (err) => resolve(err)));
  const victim = Buffer.from('victim', 'utf8');
  for (const [what, bytes, code] of [
    ['a lone surrogate encoded (CESU)', rawPush(Buffer.concat([victim, Buffer.from([0xed, 0xa0, 0x80])]), Buffer.from('secret')), 'PUSH_ERR_BAD_ID'],
    ['an invalid byte', rawPush(Buffer.concat([victim, Buffer.from([0xff])]), Buffer.from('secret')), 'PUSH_ERR_BAD_ID'],
    ['invalid content', rawPush(Buffer.from('bystander'), Buffer.from([0x68, 0xc3])), 'PUSH_ERR_BAD_ENCODING'],
  ] as const) {
    const err = await grpcPush(bytes);
    t.same([err?.code, err?.metadata.get('pusher-error-code')], [grpc.status.INVALID_ARGUMENT, [code]], `gRPC push with ${what}`);
  }

  // Every other call's strings are checked too (protobufjs would make U+FFFD of them).
  const field = (tag: number, v: Buffer): Buffer => Buffer.concat([Buffer.from([tag, v.length]), v]);
  for (const [method, bytes] of [
    ['Broadcast', field(0x1a, Buffer.from([0x68, 0xc3]))],
    ['BroadcastBatch', field(0x0a, field(0x1a, Buffer.from([0xff])))],
    ['IsOnline', field(0x0a, Buffer.concat([victim, Buffer.from([0xff])]))],
  ] as const) {
    const err = await new Promise<grpc.ServiceError | null>((resolve) => raw.makeUnaryRequest(`/proto.Rpc/${method}`, (b: Buffer) => b, (b: Buffer) => b, bytes, (e) => resolve(e)));
    t.same([err?.code, err?.metadata.get('pusher-error-code')], [grpc.status.INVALID_ARGUMENT, ['PUSH_ERR_BAD_ENCODING']], `gRPC ${method} with invalid UTF-8`);
  }

  // uWS checks text frames itself and drops the connection on invalid UTF-8,
  // without a close frame (so no 1007 either).
  const invalid = await rawWebSocket(s.wsPort, [frame(Buffer.from('{"event":"join","data":{"card_id":"x\xff"}}', 'latin1'), true)]);
  t.equal(invalid.length, 0, 'invalid UTF-8: the connection is dropped, nothing is answered');
  // An unmasked frame is read as if masked (its first 4 bytes as the key): garbage, never a join.
  const join = Buffer.from('{"event":"join","data":{"card_id":"unmasked"}}');
  const unmasked = await rawWebSocket(s.wsPort, [frame(join, false), frame(join, false), frame(join, false)]);
  t.equal(unmasked.length, 0, 'unmasked frames: the connection is dropped, nothing is answered');
  t.equal((await getJson(`${s.http}/isOnline?cardID=unmasked`)).body.result, 'no', 'nothing was joined');

  t.equal((await postJson(`${s.http}/push`, { to: ['bystander'], content: 'still here' })).status, 200);
  await bystander.waitFrames(2);
  t.same(bystander.data(1), ['still here'], 'other connections are unaffected');
  t.same(thief.data(1), [], 'the thief got nothing');
  for (const x of [thief, bystander, c]) await x.close();
});
