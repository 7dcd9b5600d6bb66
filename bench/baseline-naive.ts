// The comparison baseline from issue 5: a naive single-threaded push server.
// One uWS App on one port serves /ws (join/ping as pusher does) and POST /push
// (parse the JSON, send the frame to every member of each group right away:
// no queue, no threads). GET /stats answers in pusher's shape so the bench
// reads both the same way.
//
//   node dist/bench/baseline-naive.js --port 9100 [--host 127.0.0.1]

import * as uWS from 'uWebSockets.js';

interface Member {
  card: string;
  app: string;
}
type Sock = uWS.WebSocket<Member>;

const OK_FRAME = '{"type":1,"data":"ok"}';
const OK_BODY = '{"code":0,"message":"ok"}';
const MAX_BODY = 1 << 20;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port', '9100'));
const groups = new Map<string, Set<Sock>>();
const counters = { clients: 0, delivered: 0, undelivered: 0, dropped: 0 };

function leave(ws: Sock, card: string): void {
  const set = groups.get(card);
  if (set === undefined) return;
  set.delete(ws);
  if (set.size === 0) groups.delete(card);
}

interface PushBody {
  to?: string[];
  appID?: string;
  content?: string;
}

function deliver(p: PushBody): void {
  const frame = '{"type":1,"data":' + JSON.stringify(p.content ?? '') + '}';
  const app = p.appID ?? '';
  for (const card of p.to ?? []) {
    const set = groups.get(card);
    if (set === undefined) {
      counters.undelivered++;
      continue;
    }
    for (const ws of set) {
      if (app !== '' && ws.getUserData().app !== app) continue;
      if (ws.send(frame, false, false) === 2) counters.dropped++;
      else counters.delivered++;
    }
  }
}

/** Reads the body, then hands the parsed JSON to `handle`; answers 400 on bad JSON. */
function withJson(res: uWS.HttpResponse, handle: (json: unknown) => void): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const chunks: Buffer[] = [];
  let size = 0;
  res.onData((chunk, isLast) => {
    size += chunk.byteLength;
    if (size <= MAX_BODY) chunks.push(Buffer.from(chunk.slice(0)));
    if (!isLast || aborted) return;
    let status = '200 OK';
    let body = OK_BODY;
    try {
      if (size > MAX_BODY) throw new Error('body too large');
      handle(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch (err) {
      status = '400 Bad Request';
      body = JSON.stringify({ code: 3, message: (err as Error).message });
    }
    res.cork(() => res.writeStatus(status).writeHeader('Content-Type', 'application/json').end(body));
  });
}

const app = uWS.App()
  .ws<Member>('/ws', {
    compression: uWS.DISABLED,
    maxPayloadLength: 16 * 1024,
    idleTimeout: 120,
    maxBackpressure: 256 * 1024,
    closeOnBackpressureLimit: 1,
    upgrade(res, req, context) {
      res.upgrade<Member>({ card: '', app: '' }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'), context);
    },
    open() {
      counters.clients++;
    },
    message(ws, message) {
      let msg: { event?: string; data?: { card_id?: string; app_id?: string } };
      try {
        msg = JSON.parse(Buffer.from(message).toString('utf8'));
      } catch {
        ws.end(1003, 'bad json');
        return;
      }
      if (msg.event === 'join' && typeof msg.data?.card_id === 'string') {
        const ud = ws.getUserData();
        if (ud.card !== '') leave(ws, ud.card);
        ud.card = msg.data.card_id;
        ud.app = msg.data.app_id ?? '';
        let set = groups.get(ud.card);
        if (set === undefined) groups.set(ud.card, (set = new Set()));
        set.add(ws);
      } else if (msg.event !== 'ping') {
        ws.end(1003, 'unknown event');
        return;
      }
      ws.send(OK_FRAME, false, false);
    },
    close(ws) {
      counters.clients--;
      const ud = ws.getUserData();
      if (ud.card !== '') leave(ws, ud.card);
    },
  })
  .post('/push', (res) => withJson(res, (json) => deliver(json as PushBody)))
  .post('/push/batch', (res) => withJson(res, (json) => {
    for (const p of (json as { pushes?: PushBody[] }).pushes ?? []) deliver(p);
  }))
  .get('/stats', (res) => {
    res.writeHeader('Content-Type', 'application/json').end(JSON.stringify({ shards: [{ ...counters, groups: groups.size }] }));
  });

let listenSocket: uWS.us_listen_socket | null = null;
app.listen(host, port, (token) => {
  if (token === false) {
    process.stderr.write(`naive: cannot listen on ${host}:${port}\n`);
    process.exit(2);
  }
  listenSocket = token;
  process.stdout.write(`naive ready on ${host}:${port}\n`);
});

function stop(): void {
  if (listenSocket !== null) uWS.us_listen_socket_close(listenSocket);
  app.close();
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
