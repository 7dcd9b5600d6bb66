// Three per-message costs of nsqjs 0.13.0's Reader that do nothing for us,
// removed at load time. nsqjs keeps doing everything else (connections,
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
//    of 16 bytes) into a string twice per message even when debug is off.
NSQDConnection.prototype.createMessage = function (this: NSQDConnection, payload: Buffer): Message {
  const msg = new Message(payload, this.config.requeueDelay, this.msgTimeout, this.maxMsgTimeout);
  msg.on(Message.RESPOND, (responseType: number, wireData: Buffer) => {
    this.write(wireData);
    if (responseType === Message.FINISH) this.emit(NSQDConnection.FINISHED);
    else if (responseType === Message.REQUEUE) this.emit(NSQDConnection.REQUEUED);
  });
  msg.on(Message.BACKOFF, () => this.emit(NSQDConnection.BACKOFF));
  return msg;
};
