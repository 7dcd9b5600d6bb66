// Per-message costs of nsqjs 0.13.0's Reader that do nothing for us, removed
// at load time, and a batch FIN (finishAll). nsqjs keeps doing everything
// else (connections, nsqlookupd discovery, IDENTIFY/SUB, RDY distribution,
// reconnects, REQ, the accounting behind them). Receiving and finishing a
// prefilled channel (one Reader, 300k messages, alternating child processes:
// `node dist/bench/nsqjs-consume.js`), CPU per message on 2026-11-30: stock
// 7.1–9.7 µs; with 1–3 and finish() per message 4.3–4.5 µs, then with 4 and
// finishAll 2.7–3.0 µs, then with 5 and 6 1.3–1.7 µs (2.2 before them, same
// runs).
//
// Pinned: package.json pins nsqjs 0.13.0 exactly, and this refuses to load
// against another version (the methods it replaces may have changed).

import { Message, NSQDConnection, Reader } from 'nsqjs';
import { ConnectionRdy } from 'nsqjs/lib/readerrdy';
import * as wire from 'nsqjs/lib/wire';

const PINNED = '0.13.0';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const version = (require('nsqjs/package.json') as { version: string }).version;
if (version !== PINNED) throw new Error(`workers/processor/nsqjs-tuning.ts is written for nsqjs ${PINNED}, found ${version}`);

// 1. Every message "bumps" its connection's RDY state machine (an event
//    emitted through node-state); in the MAX state the handler only re-sends
//    RDY to nsqd older than 0.3.0, after comparing version strings per message.
const bump = ConnectionRdy.prototype.bump;
ConnectionRdy.prototype.bump = function (this: ConnectionRdy): void {
  if (this.statemachine.current_state_name !== 'MAX') bump.call(this);
};

// 2. Every message arms a timer to set its `timedOut` flag, which nothing here
//    reads: nsqd enforces the message timeout itself and redelivers.
Message.prototype.trackTimeout = function (): void {};

// 3. createMessage, without its debug() calls: they format the message id (hex
//    of 16 bytes) into a string twice per message even when debug is off. And
//    without two listeners per message (RESPOND, BACKOFF) through which every
//    answer went: the message keeps its connection and respond() (4) writes to it.
NSQDConnection.prototype.createMessage = function (this: NSQDConnection, payload: Buffer): Message {
  const msg = new Message(payload, this.config.requeueDelay, this.msgTimeout, this.maxMsgTimeout);
  msg.connection = this;
  return msg;
};

// 4. respond() and requeue() as nsqjs does them (the answer written on the
//    next tick, then FINISHED or REQUEUED on the connection for its RDY
//    accounting, BACKOFF when asked), without the per-message events.
Message.prototype.respond = function (this: Message, responseType: number, wireData: Buffer): void {
  if (this.hasResponded) return;
  process.nextTick(() => {
    if (responseType === Message.TOUCH) {
      this.lastTouched = Date.now();
    } else {
      this.hasResponded = true;
    }
    const conn = this.connection!;
    conn.write(wireData);
    if (responseType === Message.FINISH) conn.emit(NSQDConnection.FINISHED);
    else if (responseType === Message.REQUEUE) conn.emit(NSQDConnection.REQUEUED);
  });
};
Message.prototype.requeue = function (this: Message, delay = this.requeueDelay, backoff = true): void {
  this.respond(Message.REQUEUE, wire.requeue(this.id, delay));
  if (backoff) this.connection!.emit(NSQDConnection.BACKOFF);
};

// 5. receiveData, reading the frames of a chunk in place: nsqjs's FrameBuffer
//    concatenates through lodash per chunk and, per frame, slices the frame,
//    its payload and the rest of the buffer and builds an array; and a
//    message frame in the READY_RECV state (the only one that takes messages)
//    is emitted directly instead of through a node-state event. Only once
//    subscribed: before that a frame can change what the next bytes are
//    (IDENTIFY turning on deflate, snappy or TLS), which nsqjs's own parser
//    handles. The unread rest is saved before anything can throw, so a
//    throwing listener costs no frame.
const MESSAGE_EVENT = 'message';
const receiveData = NSQDConnection.prototype.receiveData;
NSQDConnection.prototype.receiveData = function (this: NSQDConnection, data: Buffer): void {
  if (this.statemachine.current_state_name !== 'READY_RECV') {
    receiveData.call(this, data);
    return;
  }
  this.lastReceivedTimestamp = Date.now();
  const rest = this.frameBuffer.buffer;
  // FrameBuffer empties to undefined, startCompression to null.
  const buf = rest == null ? data : Buffer.concat([rest, data]);
  let off = 0;
  try {
    // Frame: 4-byte size (of what follows), 4-byte frame type, data.
    while (buf.length - off >= 8) {
      const size = buf.readInt32BE(off);
      const end = off + 4 + size;
      if (end > buf.length) break;
      if (size < 4) {
        // Not even a frame type: the stream is corrupt, and the connection with it.
        off = buf.length;
        this.statemachine.goto('ERROR', new Error(`nsqd sent a frame of size ${size}`));
        return;
      }
      const frameId = buf.readInt32BE(off + 4);
      const payload = buf.subarray(off + 8, end);
      off = end;
      if (frameId === wire.FRAME_TYPE_MESSAGE) {
        this.lastMessageTimestamp = this.lastReceivedTimestamp;
        const msg = this.createMessage(payload);
        if (this.statemachine.current_state_name === 'READY_RECV') this.emit(MESSAGE_EVENT, msg);
        else this.statemachine.raise('consumeMessage', msg);
      } else if (frameId === wire.FRAME_TYPE_RESPONSE) {
        this.statemachine.raise('response', payload);
      } else if (frameId === wire.FRAME_TYPE_ERROR) {
        this.statemachine.goto('ERROR', new Error(payload.toString()));
      }
    }
  } finally {
    this.frameBuffer.buffer = off === buf.length ? undefined : buf.subarray(off);
  }
};

// 6. The Reader hands each message on in a tick of its own, so that nsqjs's
//    listeners see it before its users do. Handed on at once (with
//    maxAttempts 0 nothing else happens in that tick), the Reader's listener
//    runs first: the connection counts the message in flight just after.
//    Nothing may answer a message synchronously in its 'message' listener
//    then (its RDY accounting would dip below zero for a moment); the
//    consumer answers a batch turns later, once the shards acknowledged it.
const handleMessage = Reader.prototype.handleMessage;
Reader.prototype.handleMessage = function (this: Reader, message: Message): void {
  if (this.config.maxAttempts > 0) handleMessage.call(this, message);
  else this.emit(MESSAGE_EVENT, message);
};

/** `FIN <16-byte id>\n` */
const FIN_BYTES = 21;
const FIN = Buffer.from('FIN ');
/** Where the message id sits in a message frame's payload (nsqjs wire.unpackMessageId). */
const ID_START = 10;
const ID_END = 26;

/**
 * 7. FINs a batch: one buffer and one write per connection, where finish()
 * costs per message a command built from strings (wire.command), a tick, a
 * socket write and an event. nsqjs's accounting stays as finish() leaves it:
 * each message marked answered, one FINISHED per message on its connection
 * (RDY in flight, backoff success). Messages already answered are skipped.
 */
export function finishAll(msgs: readonly Message[]): void {
  let i = 0;
  while (i < msgs.length) {
    // A run of messages from one connection (several only with several nsqds).
    const conn = msgs[i]!.connection!;
    let end = i + 1;
    while (end < msgs.length && msgs[end]!.connection === conn) end++;
    const out = Buffer.allocUnsafe((end - i) * FIN_BYTES);
    let off = 0;
    for (let k = i; k < end; k++) {
      const m = msgs[k]!;
      if (m.hasResponded) continue;
      m.hasResponded = true;
      FIN.copy(out, off);
      m.rawMessage.copy(out, off + FIN.length, ID_START, ID_END);
      out[off + FIN_BYTES - 1] = 0x0a;
      off += FIN_BYTES;
    }
    if (off > 0) {
      conn.write(off === out.length ? out : out.subarray(0, off));
      for (let n = off / FIN_BYTES; n > 0; n--) conn.emit(NSQDConnection.FINISHED);
    }
    i = end;
  }
}
