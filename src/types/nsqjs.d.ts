// nsqjs 0.13 ships no typings. Only what src/queue/nsq-*.ts uses, checked
// against node_modules/nsqjs/lib (reader.js, writer.js, message.js, config.js).

declare module 'nsqjs' {
  import { EventEmitter } from 'node:events';

  /** Options shared by Reader and Writer connections (lib/config.js ConnectionConfig). */
  export interface ConnectionOptions {
    clientId?: string;
    /** Seconds; nsqd sends a heartbeat this often. */
    heartbeatInterval?: number;
    /** Milliseconds nsqd waits for FIN/REQ/TOUCH before redelivering. */
    messageTimeout?: number;
    /** Seconds without any data before the socket is closed; 0 = never. */
    idleTimeout?: number;
  }

  export interface ReaderOptions extends ConnectionOptions {
    nsqdTCPAddresses?: string[];
    lookupdHTTPAddresses?: string[];
    /** Seconds between lookupd queries and between reconnect attempts to nsqdTCPAddresses (>= 1). */
    lookupdPollInterval?: number;
    maxInFlight?: number;
    /** 0 = never discard. */
    maxAttempts?: number;
  }

  export class Message extends EventEmitter {
    readonly id: string;
    /** Deliveries so far, this one included (1 = first). */
    readonly attempts: number;
    /** A view into the frame buffer, recomputed on every access. */
    readonly body: Buffer;
    readonly hasResponded: boolean;
    finish(): void;
    /** `backoff` defaults to true, which puts the whole Reader into backoff (RDY 0). */
    requeue(delayMs?: number, backoff?: boolean): void;
    touch(): void;
  }

  export class Reader extends EventEmitter {
    constructor(topic: string, channel: string, options: ReaderOptions);
    connect(): void;
    close(): void;
    pause(): void;
    unpause(): void;
    isPaused(): boolean;
    on(event: 'message', listener: (msg: Message) => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: 'nsqd_connected' | 'nsqd_closed', listener: (host: string, port: number) => void): this;
  }

  export class Writer extends EventEmitter {
    constructor(host: string, port: number, options?: ConnectionOptions);
    readonly ready: boolean;
    connect(): void;
    close(): void;
    /** An array is sent as MPUB (one element: PUB); the callback gets nsqd's answer. */
    publish(topic: string, msgs: Buffer[], callback: (err?: Error | null) => void): void;
    on(event: 'ready' | 'closed', listener: () => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
  }
}
