// Stands in for a uWS WebSocket in the shard unit tests (registry, delivery):
// exactly what that code calls (getUserData, send, cork, subscribe), recording
// what was sent. The integration tests use the real server.

import { socketData, type Socket, type SocketData } from '../../workers/shard/registry';

export class FakeSocket {
  readonly data: SocketData;
  /** Text of every frame sent, in order. */
  readonly sent: string[] = [];
  /** The frames sent inside each cork() call. */
  readonly corks: string[][] = [];
  binary = 0;
  /** uWS topics subscribed to (broadcasts: workers/shard/app-topics.ts). */
  readonly topics = new Set<string>();
  /** What send() returns: 1 sent, 0 buffered, 2 dropped over max_backpressure. */
  result = 1;
  private corked: string[] | null = null;

  constructor(app = '') {
    this.data = socketData();
    this.data.app = app;
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

  subscribe(topic: string): boolean {
    this.topics.add(topic);
    return true;
  }

  unsubscribe(topic: string): boolean {
    return this.topics.delete(topic);
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
