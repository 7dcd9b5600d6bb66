// Start-up failures, graceful shutdown and shard crash recovery, on the real
// process: exit codes, the one-line errors, close codes clients see.

import t from 'tap';
import { Client, freePort, getJson, occupyPort, postJson, runToExit, startServer, stats, until } from './helpers/server';

t.test('SIGTERM: every client sees 1001, the process exits 0', async (t) => {
  const server = await startServer({ shards: 2 });
  const clients = await Promise.all(Array.from({ length: 12 }, () => Client.open(server.wsUrl)));
  await Promise.all(clients.map((c, i) => c.join(`bye-${i % 3}`)));
  const idle = await Client.open(server.wsUrl); // never joined
  const code = await server.stop('SIGTERM');
  t.equal(code, 0, 'exit code 0');
  for (const c of [...clients, idle]) {
    t.equal(await c.closed, 1001);
    t.equal(c.closeReason, 'PUSH_ERR_WS_SHUTDOWN');
  }
  t.notMatch(server.output(), /uv_loop_close|Abort|FATAL/i, 'no abort');
});

t.test('SIGINT shuts down the same way', async (t) => {
  const server = await startServer({ shards: 2 });
  const c = await Client.open(server.wsUrl);
  await c.join('sigint');
  t.equal(await server.stop('SIGINT'), 0);
  t.equal(await c.closed, 1001);
});

t.test('a port already in use stops start-up with one line and exit code 2', async (t) => {
  for (const which of ['server.ws_port', 'gateway.port', 'grpc.addr'] as const) {
    const taken = await freePort();
    const release = await occupyPort(taken);
    const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
    const ports: Record<string, string> = {
      'server.ws_port': String(p1), 'gateway.port': String(p2), 'grpc.addr': `127.0.0.1:${p3}`,
    };
    ports[which] = which === 'grpc.addr' ? `127.0.0.1:${taken}` : String(taken);
    const args = ['--set', 'server.host=127.0.0.1', ...Object.entries(ports).flatMap(([k, v]) => ['--set', `${k}=${v}`])];
    const { code, stderr } = await runToExit(args);
    t.equal(code, 2, `${which}: exit code 2`);
    t.equal(stderr.trim().split('\n').length, 1, `${which}: one line`);
    t.match(stderr, new RegExp(`PUSH_ERR_PORT_IN_USE.*port ${taken}`), `${which}: names the port`);
    await release();
  }
});

t.test('a second server on the same WebSocket port is refused (no silent SO_REUSEPORT sharing)', async (t) => {
  const first = await startServer({ shards: 2 });
  t.teardown(() => first.stop());
  const { code, stderr } = await runToExit([
    '--set', 'server.host=127.0.0.1', '--set', `server.ws_port=${first.wsPort}`,
    '--set', `gateway.port=${await freePort()}`, '--set', 'grpc.addr=off',
  ]);
  t.equal(code, 2);
  t.match(stderr, /PUSH_ERR_PORT_IN_USE/);
  t.equal((await getJson(`${first.http}/system`)).status, 200, 'the first server is unharmed');
});

t.test('bad configuration stops start-up with one line naming the key, exit code 2', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--set', 'queue.driver=kafka'], /queue\.driver/],
    [['--set', 'server.ws_port=70000'], /server\.ws_port/],
    [['--set', 'server.ws_port=0'], /server\.ws_port/],
    [['--set', 'log.level=loud'], /log\.level/],
    [['--set', 'server.nope=1'], /server\.nope/],
    [['--config', '/nonexistent/pusher.ini'], /\/nonexistent\/pusher\.ini.*ENOENT/],
    [['--bogus'], /--bogus/],
  ];
  for (const [args, re] of cases) {
    const { code, stderr } = await runToExit(args);
    t.equal(code, 2, `${args.join(' ')}: exit 2`);
    t.equal(stderr.trim().split('\n').length, 1, 'one line');
    t.match(stderr, /PUSH_ERR_CONFIG/);
    t.match(stderr, re);
  }
});

t.test('a crashed shard is restarted; the others keep serving', async (t) => {
  const server = await startServer({ shards: 2 });
  t.teardown(() => server.stop());
  const clients = await Promise.all(Array.from({ length: 24 }, () => Client.open(server.wsUrl)));
  await Promise.all(clients.map((c) => c.join('survivors')));
  const before = await stats(server);
  t.ok(before.shards.every((s) => s.clients > 0), 'both shards hold clients');

  const crash = await postJson(`${server.http}/debug/crash?shard=0`, {});
  t.same(crash.body, { crashed: true });
  // The crashed shard's clients are closed with 1011; wait for exactly them.
  const onShard0 = before.shards[0]!.clients;
  const codes = await Promise.race([
    Promise.all(clients.map((c) => c.closed.then((code) => code))),
    until(async () => clients.filter((c) => c.closeCode !== null).length === onShard0, 'shard 0 clients closed').then(() => null),
  ]);
  t.equal(codes, null, 'not every client was closed');
  const closed = clients.filter((c) => c.closeCode !== null);
  const alive = clients.filter((c) => c.closeCode === null);
  t.equal(closed.length, onShard0);
  for (const c of closed) t.equal(c.closeCode, 1011);

  await until(async () => (await stats(server)).restarts[0] === 1, 'shard 0 restarted');
  // Survivors on shard 1 still get pushes, and the group count is right again.
  await until(async () => (await getJson(`${server.http}/group?cardID=survivors`)).body.clientNum === alive.length, 'group counts only survivors');
  await postJson(`${server.http}/push`, { to: ['survivors'], content: 'after crash' });
  await Promise.all(alive.map((c) => c.waitFrames(2)));
  for (const c of alive) t.same(c.data(1), ['after crash']);

  // Reconnecting clients are served by both shards again.
  const again = await Promise.all(Array.from({ length: 24 }, () => Client.open(server.wsUrl)));
  await Promise.all(again.map((c) => c.join('survivors')));
  await postJson(`${server.http}/push`, { to: ['survivors'], content: 'all back' });
  await Promise.all([...alive, ...again].map((c) => c.waitFrames(alive.includes(c) ? 3 : 2)));
  t.ok((await stats(server)).shards.every((s) => s.clients > 0), 'the restarted shard accepts connections');
  t.notMatch(server.output(), /uv_loop_close|Abort/i, 'no abort');
  await Promise.all([...alive, ...again].map((c) => c.close()));
});
