// What a push sender needs from a way of delivering pushes to the server
// (HTTP, HTTP batch, gRPC unary, gRPC batch, gRPC stream).

export interface Push {
  card: string;
  content: string;
}

/**
 * `tag` is what the sender passed with the request to send() (chaos: the
 * sender's index of the request's first push), or -1 where the transport
 * answers pushes of several requests together (a gRPC stream).
 */
export interface TransportEvents {
  /** The server accepted `pushes` pushes that should produce `expected` frames. */
  ack(pushes: number, expected: number, tag: number): void;
  fail(pushes: number, reason: string, tag: number): void;
  /** Room opened up in the window: the sender may send again. */
  wake(): void;
}

export interface Transport {
  /** Requests (or stream messages) that may be started now without passing the window. */
  room(): number;
  /** Starts one request (or stream message) carrying `pushes`; `expected` frames if accepted. */
  send(pushes: Push[], expected: number, tag: number): void;
  /** Writes out what send() buffered in this turn of the loop. */
  flush(): void;
  /** Stops sending; resolves once everything sent is answered, or after `timeoutMs`. */
  close(timeoutMs: number): Promise<void>;
}
