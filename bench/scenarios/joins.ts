// joins: how many joins a second the server answers, and its CPU per join,
// with or without signed joins (--join-secret). N connections from this
// process each keep --inflight joins outstanding, alternating between two
// card_ids (every join moves the connection: a leave and a join at the
// owners), for --duration seconds. Tokens are minted once per card_id, as a
// backend would hand them out; the server verifies every join.

import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { sampleProc } from '../proc-stats';
import type { Ctx } from './common';

const OK = '{"type":1,"data":"ok"}';

async function joinFrame(card: string, secret: string): Promise<string> {
  if (secret === '') return JSON.stringify({ event: 'join', data: { card_id: card } });
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(card).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
  return JSON.stringify({ event: 'join', data: { card_id: card, token } });
}

export async function joins(ctx: Ctx): Promise<Record<string, unknown>> {
  const { o, server } = ctx;
  let answered = 0;
  let refused = 0;
  let running = true;
  const sockets: WebSocket[] = [];
  const starts: (() => void)[] = [];
  for (let i = 0; i < o.connections; i++) {
    const frames = [await joinFrame(`j${i}a`, o.joinSecret), await joinFrame(`j${i}b`, o.joinSecret)];
    const ws = new WebSocket(server.wsUrl);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    let next = 0;
    ws.on('message', (data: Buffer) => {
      if (data.toString() === OK) answered++;
      else refused++;
      if (running) ws.send(frames[next++ & 1]!);
    });
    ws.on('close', () => {
      if (running) refused++;
    });
    sockets.push(ws);
    starts.push(() => {
      for (let k = 0; k < o.inflight; k++) ws.send(frames[next++ & 1]!);
    });
  }
  process.stderr.write(`joins: ${o.connections} connections open, ${o.inflight} joins in flight each, signed: ${o.joinSecret !== ''}\n`);
  for (const start of starts) start();
  // The first second is ramp-up: measured from there to the end.
  await new Promise((r) => setTimeout(r, 1000));
  const a = server.pid !== null ? sampleProc(server.pid) : null;
  const from = answered;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, (o.duration - 1) * 1000));
  const n = answered - from;
  const seconds = (performance.now() - t0) / 1000;
  const b = server.pid !== null ? sampleProc(server.pid) : null;
  running = false;
  for (const ws of sockets) ws.close();
  const summary = {
    signed: o.joinSecret !== '',
    joinsPerS: Math.round(n / seconds),
    serverCpuUsPerJoin: a !== null && b !== null ? +(((b.cpuS - a.cpuS) * 1e6) / n).toFixed(1) : null,
    serverCpuPct: a !== null && b !== null ? Math.round(((b.cpuS - a.cpuS) * 100) / seconds) : null,
    refused,
  };
  process.stderr.write(`joins: ${JSON.stringify(summary)}\n`);
  return summary;
}
