// Full garbage collection, on demand, in every V8 isolate of a Node server the
// bench started with --inspect=127.0.0.1:<port>: the main thread through the
// inspector protocol, each worker thread (shards, processors) through its
// NodeWorker domain. Without it the server's RSS moves by 5-10 MB whenever
// some isolate's GC or memory reducer happens to run, which no wait for
// "still" RSS can foresee; after a full GC everywhere it is live memory plus
// what the allocators keep, step after step.

import WebSocket from 'ws';

const CALL_TIMEOUT_MS = 30_000;
/** NodeWorker.enable reports the workers already running as events right after it answers. */
const ATTACH_SETTLE_MS = 500;

interface Reply {
  id?: number;
  method?: string;
  params?: { sessionId?: string; message?: string; workerInfo?: { title?: string } };
  result?: Record<string, unknown>;
  error?: { message: string };
}

export class InspectorGc {
  private readonly pending = new Map<string, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private readonly workers = new Map<string, string>();
  private nextId = 0;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.onMessage(JSON.parse(data.toString()) as Reply));
    ws.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('inspector closed'));
      this.pending.clear();
    });
  }

  /** `url`: the ws:// address Node printed ("Debugger listening on ..."). */
  static async connect(url: string): Promise<InspectorGc> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const gc = new InspectorGc(ws);
    await gc.call(null, 'NodeWorker.enable', { waitForDebuggerOnStart: false });
    await new Promise((r) => setTimeout(r, ATTACH_SETTLE_MS));
    return gc;
  }

  /** Isolates reached: the main thread and each worker thread. */
  get isolates(): number {
    return 1 + this.workers.size;
  }

  /** Collects all garbage in every isolate, one after another; resolves with their used heap bytes summed, after the GC. */
  async collect(): Promise<number> {
    let used = 0;
    for (const session of [null, ...this.workers.keys()]) {
      await this.call(session, 'HeapProfiler.collectGarbage', {});
      const r = await this.call(session, 'Runtime.getHeapUsage', {});
      used += Number(r.result?.usedSize ?? 0);
    }
    return used;
  }

  close(): void {
    // A debugger still attached would hold the server's exit ("Waiting for the debugger to disconnect").
    this.ws.close();
  }

  /** A protocol call on the main thread (session null) or in a worker's session. */
  private call(session: string | null, method: string, params: Record<string, unknown>): Promise<Reply> {
    const id = ++this.nextId;
    const key = session === null ? `${id}` : `${session}:${id}`;
    const msg = JSON.stringify({ id, method, params });
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new Error(`inspector: ${method} not answered in ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.pending.set(key, {
        resolve: (r) => {
          clearTimeout(timer);
          if (r.error !== undefined) reject(new Error(`inspector: ${method}: ${r.error.message}`));
          else resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      if (session === null) this.ws.send(msg);
      else this.ws.send(JSON.stringify({ id: ++this.nextId, method: 'NodeWorker.sendMessageToWorker', params: { sessionId: session, message: msg } }));
    });
  }

  private onMessage(m: Reply): void {
    if (m.id !== undefined) {
      const p = this.pending.get(`${m.id}`);
      this.pending.delete(`${m.id}`);
      p?.resolve(m);
      return;
    }
    const session = m.params?.sessionId;
    if (session === undefined) return;
    if (m.method === 'NodeWorker.attachedToWorker') this.workers.set(session, m.params?.workerInfo?.title ?? '');
    else if (m.method === 'NodeWorker.detachedFromWorker') this.workers.delete(session);
    else if (m.method === 'NodeWorker.receivedMessageFromWorker') {
      const w = JSON.parse(m.params?.message ?? '{}') as Reply;
      const key = `${session}:${w.id}`;
      const p = this.pending.get(key);
      this.pending.delete(key);
      p?.resolve(w);
    }
  }
}
