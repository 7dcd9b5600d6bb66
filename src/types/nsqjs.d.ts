// nsqjs 0.13 ships no typings. Only what workers/processor/nsq-consumer.ts uses, checked
// against node_modules/nsqjs/lib (reader.js, readerrdy.js, nsqdconnection.js,
// message.js, wire.js, config.js). The producer speaks the protocol itself
// (src/queue/nsq-writer.ts), so nsqjs's Writer is not declared.

declare module 'nsqjs' {
  import { EventEmitter } from 'node:events';
  import type { Writable } from 'node:stream';

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
    /** IDENTIFY output_buffer_timeout, ms (nsqd accepts --min-output-buffer-timeout and up; -1 = no timeout). */
    outputBufferTimeout?: number;
    /** IDENTIFY output_buffer_size, bytes (>= 64; -1 = unbuffered: nsqd writes every message at once). */
    outputBufferSize?: number;
  }

  export class Message extends EventEmitter {
    static readonly RESPOND: string;
    static readonly BACKOFF: string;
    static readonly FINISH: number;
    static readonly REQUEUE: number;
    static readonly TOUCH: number;
    constructor(rawMessage: Buffer, requeueDelay: number, msgTimeout: number, maxMsgTimeout: number);
    /** Arms a timer that sets a timedOut flag (replaced in workers/processor/nsqjs-tuning.ts). */
    trackTimeout(): void;
    readonly id: string;
    /** When nsqd took the message, ns since the epoch. */
    readonly timestamp: bigint;
    /** Deliveries so far, this one included (1 = first). */
    readonly attempts: number;
    /** A view into the frame buffer, recomputed on every access. */
    readonly body: Buffer;
    hasResponded: boolean;
    lastTouched: number;
    readonly requeueDelay: number;
    /** The whole message frame payload (timestamp, attempts, id, body). */
    readonly rawMessage: Buffer;
    /** Set by workers/processor/nsqjs-tuning.ts: the connection the message came on. */
    connection?: NSQDConnection;
    /** Writes the answer on the next tick (replaced in nsqjs-tuning.ts). */
    respond(responseType: number, wireData: Buffer): void;
    finish(): void;
    /** `backoff` defaults to true, which puts the whole Reader into backoff (RDY 0). */
    requeue(delayMs?: number, backoff?: boolean): void;
    touch(): void;
  }

  /** One nsqd connection (lib/nsqdconnection.js); only what nsqjs-tuning.ts replaces and calls. */
  export class NSQDConnection extends EventEmitter {
    static readonly FINISHED: string;
    static readonly REQUEUED: string;
    static readonly BACKOFF: string;
    constructor(host: string, port: number, topic: string, channel: string, options: ConnectionOptions);
    readonly config: { readonly requeueDelay: number };
    readonly msgTimeout: number;
    readonly maxMsgTimeout: number;
    write(data: Buffer): void;
    createMessage(payload: Buffer): Message;
    /** Handles bytes from nsqd: frames, each to the state machine (replaced in nsqjs-tuning.ts). */
    receiveData(data: Buffer): void;
    lastReceivedTimestamp: number;
    lastMessageTimestamp: number;
    /** Bytes of an incomplete frame (lib/framebuffer.js); undefined when none, null once compression took them. */
    readonly frameBuffer: { buffer?: Buffer | null };
    readonly statemachine: { readonly current_state_name: string; raise(event: string, ...args: unknown[]): void; goto(state: string, ...args: unknown[]): void };
  }

  export class Reader extends EventEmitter {
    constructor(topic: string, channel: string, options: ReaderOptions);
    readonly config: { readonly maxAttempts: number };
    /** Emits 'message' (or 'discard') on the next tick (replaced in nsqjs-tuning.ts). */
    handleMessage(message: Message): void;
    connect(): void;
    close(): void;
    pause(): void;
    unpause(): void;
    isPaused(): boolean;
    /**
     * Internal (lib/readerrdy.js): the connections that finished SUB, each
     * wrapping an NSQDConnection whose `conn` is its socket (deleted once
     * closed). Used only to cork FIN/REQ writes; pinned by the exact nsqjs version.
     */
    readonly readerRdy: { readonly connections: readonly { readonly conn: { readonly conn?: Writable } }[] };
    on(event: 'message', listener: (msg: Message) => void): this;
    on(event: 'error', listener: (err: Error) => void): this;
    on(event: 'nsqd_connected' | 'nsqd_closed', listener: (host: string, port: number) => void): this;
  }
}

declare module 'nsqjs/lib/wire' {
  export const FRAME_TYPE_RESPONSE: number;
  export const FRAME_TYPE_ERROR: number;
  export const FRAME_TYPE_MESSAGE: number;
  /** `REQ <id> <delay>\n` */
  export function requeue(id: string, delayMs?: number): Buffer;
}

declare module 'nsqjs/lib/readerrdy' {
  /** A connection's RDY state machine (node-state): BACKOFF, ONE, MAX, ... */
  export class ConnectionRdy {
    readonly statemachine: { readonly current_state_name: string };
    bump(): void;
  }
}
