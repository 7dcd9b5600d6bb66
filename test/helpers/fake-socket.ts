// Stands in for a uWS WebSocket in the shard unit tests (registry, delivery):
// exactly what that code calls (getUserData, send, cork), recording what was
// sent. The integration tests use the real server.

import type { Socket, SocketData } from '../../workers/shard/registry';

export class FakeSocket {
  readonly data: SocketData;
  /** Text of every frame sent, in order. */
  readonly sent: string[] = [];
  /** The frames sent inside each cork() call. */
  readonly corks: string[][] = [];
  binary = 0;
  /** What send() returns: 1 sent, 0 buffered, 2 dropped over max_backpressure. */
  result = 1;
  private corked: string[] | null = null;

  constructor(app = '') {
    this.data = { card: '', app, closed: false, slow: false, unconfirmed: 0, owed: 0 };
  }

  get ws(): Socket {
    return this as unknown as Socket;
  }

  getUserData(): SocketData {
    return this.data;
  }

  send(message: string | ArrayBufferView, isBinary?: boolean, _compress?: boolean): number {
    const text = typeof message === 'string'
      ? message
      : Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString('utf8');
    this.sent.push(text);
    this.corked?.push(text);
    if (isBinary === true) this.binary++;
    return this.result;
  }

  cork(fn: () => void): this {
    const outer = this.corked;
    const mine: string[] = [];
    this.corked = mine;
    try {
      fn();
    } finally {
      this.corked = outer;
    }
    this.corks.push(mine);
    return this;
  }
}
