// Per-message costs of nsqjs 0.13.0's Reader that do nothing for us, removed
// at load time, and a batch FIN (finishAll). nsqjs keeps doing everything else (connections,
// nsqlookupd discovery, IDENTIFY/SUB, RDY distribution, reconnects, FIN/REQ).
// Receiving and finishing a prefilled channel (one Reader, 300k messages, 3
// alternating runs of `node dist/bench/nsqjs-consume.js`) took 5.7 / 7.4 /
// 9.7 µs of CPU per message stock and 3.5 / 4.9 / 4.6 µs with these (a busy
// box; an earlier quieter session: 5.6–6.4 against 2.9–3.5).
//
// Pinned: package.json pins nsqjs 0.13.0 exactly, and this refuses to load
// against another version (the methods it replaces may have changed).

import { Message, NSQDConnection } from 'nsqjs';
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

/** `FIN <16-byte id>\n` */
const FIN_BYTES = 21;
const FIN = Buffer.from('FIN ');
/** Where the message id sits in a message frame's payload (nsqjs wire.unpackMessageId). */
const ID_START = 10;
const ID_END = 26;

/**
 * 5. FINs a batch: one buffer and one write per connection, where finish()
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
