// A client that stops reading is disconnected once more than
// server.max_backpressure bytes wait for it, instead of being buffered without
// bound; the other members of its group keep receiving.

import t from 'tap';
import type { Socket } from 'node:net';
import { Client, postJson, startServer, stats, until } from './helpers/server';

t.test('a slow reader is closed at max_backpressure; the rest of the group is served', async (t) => {
  const server = await startServer({ shards: 2, sets: ['server.max_backpressure=65536', 'push.max_content=65536', 'gateway.max_body=1048576'] });
  t.teardown(() => server.stop());
  const slow = await Client.open(server.wsUrl);
  const fast = await Client.open(server.wsUrl);
  await slow.join('slow-group');
  await fast.join('slow-group');
  (slow.ws as unknown as { _socket: Socket })._socket.pause(); // stops reading: the kernel buffers fill, then uWS's

  const content = 'x'.repeat(60_000);
  let pushed = 0;
  // Bounded: kernel socket buffers on loopback hold a few MB before uWS must buffer.
  while (slow.closeCode === null && pushed < 2000) {
    const res = await postJson(`${server.http}/push`, { to: ['slow-group'], content });
    t.equal(res.status, 200);
    pushed++;
    if (pushed % 20 === 0) await fast.waitFrames(1 + pushed);
    if ((await stats(server)).shards.some((s) => s.dropped > 0)) break;
  }
  await until(async () => (await stats(server)).shards.reduce((n, s) => n + s.dropped, 0) > 0, 'a frame was dropped for the slow client');
  await fast.waitFrames(1 + pushed);
  t.equal(fast.frames.length, 1 + pushed, 'the reading client got every push');
  (slow.ws as unknown as { _socket: Socket })._socket.resume();
  await slow.closed;
  // uWS closes the socket without a close frame (none fits behind the full
  // buffer): the client sees an abnormal closure.
  t.equal(slow.closeCode, 1006, 'the slow client was disconnected');
  await fast.close();
});

t.test('broadcasts: a slow reader is closed at max_backpressure too, not skipped while it stays', async (t) => {
  const server = await startServer({ shards: 2, sets: ['server.max_backpressure=65536', 'push.max_content=65536', 'gateway.max_body=1048576'] });
  t.teardown(() => server.stop());
  const slow = await Client.open(server.wsUrl);
  const fast = await Client.open(server.wsUrl);
  await slow.join('s', 'app');
  await fast.join('f', 'app');
  (slow.ws as unknown as { _socket: Socket })._socket.pause();
  const content = 'x'.repeat(60_000);
  let sent = 0;
  const start = Date.now();
  // The server closes the slow one; the client only sees it once it reads again.
  const closedByServer = async (): Promise<boolean> => (await stats(server)).shards.reduce((n, s) => n + s.clients, 0) === 1;
  while (sent < 2000 && Date.now() - start < 30_000) {
    t.equal((await postJson(`${server.http}/broadcast`, { appID: 'app', content })).status, 200);
    sent++;
    if (sent % 20 === 0) {
      await fast.waitFrames(1 + sent);
      if (await closedByServer()) break;
    }
  }
  await until(closedByServer, 'the server closed the slow client');
  await fast.waitFrames(1 + sent);
  t.equal(fast.frames.length, 1 + sent, 'the reading client got every broadcast');
  (slow.ws as unknown as { _socket: Socket })._socket.resume();
  await slow.closed;
  t.equal(slow.closeCode, 1006, 'the slow client was disconnected');
  await fast.close();
});
