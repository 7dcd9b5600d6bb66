// Makes sure this node's channel exists in the nsqd it publishes to, before
// it publishes. nsqd creates a channel when a consumer first subscribes to
// it, and copies each message only to the channels that exist when the
// message arrives. This node's consumers subscribe after queue.warmup: on a
// channel nsqd has never seen (a new host's default <hostname>-<ws_port>), a
// push accepted during the warm-up would reach no channel of this node, and a
// member that had joined would never get it. A SUB on a short connection that
// never sends RDY (so nsqd sends it no message) creates the channel, which
// outlives the connection.

import { connect } from 'node:net';
import { FRAME_RESPONSE, HEADER, MAGIC } from './nsq-writer';

const TIMEOUT_MS = 5_000;

/** Resolves once nsqd answered the SUB with OK; rejects with nsqd's error or the connection's. */
export function ensureChannel(host: string, port: number, topic: string, channel: string): Promise<void> {
  // An ephemeral channel goes with its last client: creating it ahead would not last.
  if (channel.endsWith('#ephemeral')) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err === null) resolve();
      else reject(err);
    };
    socket.setTimeout(TIMEOUT_MS, () => done(new Error(`no answer to SUB within ${TIMEOUT_MS} ms`)));
    socket.on('connect', () => socket.write(Buffer.concat([MAGIC, Buffer.from(`SUB ${topic} ${channel}\n`)])));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < HEADER || buf.length < 4 + buf.readUInt32BE(0)) return;
      const data = buf.toString('latin1', HEADER, 4 + buf.readUInt32BE(0));
      done(buf.readUInt32BE(4) === FRAME_RESPONSE && data === 'OK' ? null : new Error(data));
    });
    socket.on('error', (err) => done(err));
    socket.on('close', () => done(new Error('connection closed')));
  });
}
