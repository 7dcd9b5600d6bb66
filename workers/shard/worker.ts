// Shard thread: one uWS App listening on the shared WebSocket port
// (SO_REUSEPORT: the kernel spreads accepted connections over the shards).
// Holds its connections, the records of the groups it owns, and delivers
// frames from the processors and from other shards.
//
// uWS rule that shapes this file: the thread must never end while uWS holds
// handles (the whole process aborts). So no handler may throw out to uWS, and
// both shutdown and crash close every socket and the listen socket first, then
// let the thread end by itself.

import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as uWS from 'uWebSockets.js';
import { createLogger } from '../../shared/log';
import type { MainToShard, ShardAnswer, ShardInit, ShardQueryKind, ShardToMain } from '../../shared/frames';
import { WsErrors, type WsErrorCode } from '../../shared/errors';
import { ConnCounters } from '../../shared/conn-counters';
import { JoinVerifier } from '../../shared/join-token';
import { S_CLIENTS, S_GROUPS, S_HEARTBEAT, S_HISTORY_BYTES, S_HISTORY_CARDS, S_LOCAL_GROUPS, shardCounters, wsErrorSlot } from '../../shared/counters';
import { Registry, socketData, type Socket, type SocketData } from './registry';
import { Delivery } from './delivery';
import { History } from './history';
import { Inbox } from './inbox';
import { AppTopics } from './app-topics';
import { Admission } from './admission';
import { closeWith, confirmJoins, Protocol } from './protocol';

const init = workerData as ShardInit;
const log = createLogger(`shard-${init.index}`, init.logLevel, init.logFormat);
const main = parentPort!;
const counters = shardCounters(init.counters);
const history: History = new History(init.history, (card: string): boolean => registry.has(card));
const registry = new Registry(init.index, init.shards, confirmJoins, history);
// Broadcasts go through the uWS app made below (AppTopics).
const delivery = new Delivery(registry, counters, history, (payload, app) => apps.publish(payload, app));
const inbox = new Inbox(registry, delivery, init, () => gauges());
const { sequencer } = inbox;
const connCounters = new ConnCounters(init.connCounters, init.shards, init.index);
// This shard's predecessor (if it crashed) took its connections with it.
connCounters.reset();
const admission = new Admission(connCounters, init.limits, counters);
const verifier = init.joinAuth !== null ? new JoinVerifier(init.joinAuth) : null;

/** Every open connection, joined or not: shutdown and crash close them all. */
const sockets = new Set<Socket>();
/** Ports from processors: DeliverBatch and SkipFrame in, AckFrame out. */
const processorPorts = new Set<MessagePort>();
let listenSocket: uWS.us_listen_socket | null = null;
let stopping = false;

function post(msg: ShardToMain): void {
  main.postMessage(msg);
}

/** The gauges the main thread reads (shared/counters.ts), after anything that may change them. */
function gauges(): void {
  counters[S_CLIENTS] = sockets.size;
  counters[S_GROUPS] = registry.owned;
  counters[S_LOCAL_GROUPS] = registry.local.size;
  counters[S_HISTORY_CARDS] = history.size;
  counters[S_HISTORY_BYTES] = history.bytes;
}

// The heartbeat says this thread's event loop turns (/readyz).
counters[S_HEARTBEAT] = Date.now();
const heartbeat = setInterval(() => {
  counters[S_HEARTBEAT] = Date.now();
}, 1_000);
heartbeat.unref();

const WELCOME = JSON.stringify({ msg: 'welcome to socket server', server: 'pusher' });

// uWS reads the files itself; the main thread checked them first (src/secrets.ts).
const app = (init.tls !== null ? uWS.SSLApp({ cert_file_name: init.tls.cert, key_file_name: init.tls.key }) : uWS.App())
  .ws<SocketData>('/ws', {
    // uWS drops a connection over its limit without a close frame (clients
    // see 1006). Up to twice max_payload we check ourselves and close with
    // 1009 and a reason; only larger frames meet the silent drop.
    maxPayloadLength: init.maxPayload * 2,
    idleTimeout: init.idleTimeout,
    maxBackpressure: init.maxBackpressure,
    closeOnBackpressureLimit: 1,
    sendPingsAutomatically: true,
    compression: uWS.DISABLED,
    upgrade(res, req, context) {
      if (stopping) {
        res.writeStatus('503 Service Unavailable').end();
        return;
      }
      const addr = admission.check(res, req);
      if (addr === null) return;
      const data = socketData(addr, verifier !== null ? req.getQuery('token') ?? '' : '', init.limits.joinRate);
      res.upgrade(
        data,
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open(ws) {
      sockets.add(ws);
      connCounters.add(ws.getUserData().addr, 1);
      gauges();
    },
    message(ws, message, isBinary) {
      if (isBinary) {
        closeWith(ws, 'PUSH_ERR_WS_BINARY', counters);
        return;
      }
      if (message.byteLength > init.maxPayload) {
        closeWith(ws, 'PUSH_ERR_WS_TOO_LARGE', counters);
        return;
      }
      // uWS has checked that a text frame is valid UTF-8 (it drops the connection otherwise).
      protocol.frame(ws, Buffer.from(message).toString('utf8'));
      gauges();
    },
    close(ws) {
      const ud = ws.getUserData();
      ud.closed = true;
      sockets.delete(ws);
      connCounters.add(ud.addr, -1);
      if (ud.card !== '') {
        registry.leave(ws, ud.card);
        apps.leave(ud.app);
      }
      gauges();
    },
  })
  .get('/', (res) => {
    res.writeHeader('Content-Type', 'application/json').end(WELCOME);
  })
  .any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json')
      .end('{"code":5,"message":"no such route; WebSocket clients connect to /ws","error":"PUSH_ERR_NOT_FOUND"}');
  });

const apps = new AppTopics(app);
// Made after the app: joins subscribe connections to their app's topic.
const protocol = new Protocol(registry, apps, { maxIdLength: init.maxIdLength, joinRate: init.limits.joinRate, verifier }, counters, log);

app.listen(init.host, init.wsPort, (token) => {
  if (token === false) {
    log.error('cannot listen', { port: init.wsPort });
    post({ t: 'listen-failed' });
    closeAll(WsErrors.PUSH_ERR_WS_SHUTDOWN.close, 'PUSH_ERR_WS_SHUTDOWN');
    return;
  }
  listenSocket = token;
  log.debug('listening', { port: init.wsPort });
  post({ t: 'ready' });
});

function answer(msg: Extract<MainToShard, { t: 'query' }>): ShardAnswer<ShardQueryKind> {
  switch (msg.q) {
    case 'online':
      return registry.groupSize(msg.card) > 0;
    case 'group':
      return registry.groupSize(msg.card);
  }
}

main.on('message', (msg: MainToShard) => {
  switch (msg.t) {
    case 'attach': {
      const { port, peer } = msg;
      if (msg.kind === 'shard') inbox.attachPeer(peer, port);
      else {
        inbox.attachProcessor(peer, port);
        processorPorts.add(port);
        port.on('close', () => processorPorts.delete(port));
      }
      return;
    }
    case 'peer-reset':
      inbox.peerGone(msg.peer);
      return;
    case 'gap':
      for (const seq of msg.seqs) sequencer.gap(seq);
      return;
    case 'query':
      post({ t: 'reply', id: msg.id, value: answer(msg) });
      return;
    case 'shutdown':
      stop(WsErrors.PUSH_ERR_WS_SHUTDOWN.close, 'PUSH_ERR_WS_SHUTDOWN');
      return;
    case 'crash':
      // Debug hook (config debug.crash_route): a real uncaught exception.
      setImmediate(() => {
        throw new Error(`crash requested for shard ${init.index}`);
      });
      return;
  }
});

// Nothing is skipped on a timer (sequencer.ts), so a task that never comes
// would stall this shard: say so (every 10 s while it lasts) with the number it waits for.
let stalledOn = -1;
const stallCheck = setInterval(() => {
  const waiting = sequencer.waitingFor;
  if (waiting !== -1 && waiting === stalledOn) log.warn('delivery waits for a task that has not arrived', { seq: waiting, open: sequencer.open });
  stalledOn = waiting === stalledOn ? -2 : waiting;
}, 5_000);
stallCheck.unref();

// Cards idle for history.ttl with no member left forget their history.
const historySweep = setInterval(() => {
  history.sweep(Date.now());
  gauges();
}, 1_000);
historySweep.unref();

/** Closes every handle this thread holds, so it can end without aborting the process. */
function closeAll(code: number, reason: WsErrorCode): void {
  if (listenSocket !== null) {
    uWS.us_listen_socket_close(listenSocket);
    listenSocket = null;
  }
  // end() runs the close handler synchronously, which edits `sockets`: iterate a copy.
  for (const ws of [...sockets]) {
    if (ws.getUserData().closed) continue;
    counters[wsErrorSlot(reason)]!++;
    ws.end(code, reason);
  }
  // Forcefully closes what is left (HTTP keep-alive connections, closing sockets).
  app.close();
  clearInterval(stallCheck);
  clearInterval(historySweep);
  clearInterval(heartbeat);
  sequencer.close();
  for (const port of registry.peers) port?.close();
  for (const port of processorPorts) port.close();
  main.unref();
}

function stop(code: number, reason: WsErrorCode): void {
  if (stopping) return;
  stopping = true;
  inbox.stopped = true;
  const n = sockets.size;
  closeAll(code, reason);
  log.debug('stopped', { closed: n });
}

process.on('uncaughtException', (err) => {
  log.error('crashed; closing connections so the shard can restart', { error: err.message });
  if (!stopping) post({ t: 'fatal', message: err.message });
  stop(WsErrors.PUSH_ERR_WS_INTERNAL.close, 'PUSH_ERR_WS_INTERNAL');
});

