// What a push sender needs from a way of delivering pushes to the server
// (HTTP, HTTP batch, gRPC unary, gRPC batch, gRPC stream).

export interface Push {
  card: string;
  content: string;
}

export interface TransportEvents {
  /** The server accepted `pushes` pushes that should produce `expected` frames. */
  ack(pushes: number, expected: number): void;
  fail(pushes: number, reason: string): void;
  /** Room opened up in the window: the sender may send again. */
  wake(): void;
}

export interface Transport {
  /** Requests (or stream messages) that may be started now without passing the window. */
  room(): number;
  /** Starts one request (or stream message) carrying `pushes`; `expected` frames if accepted. */
  send(pushes: Push[], expected: number): void;
  /** Writes out what send() buffered in this turn of the loop. */
  flush(): void;
  /** Stops sending; resolves once everything sent is answered, or after `timeoutMs`. */
  close(timeoutMs: number): Promise<void>;
}
