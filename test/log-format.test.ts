// log.format = json: every line on stdout is one JSON object with time, level,
// thread, msg, and code and fields when the event has them, from every thread.

import t from 'tap';
import { freePort, postJson, startServer, until } from './helpers/server';

t.test('log.format=json: one object per line, from the main and the shard threads', async (t) => {
  // nsqd is not there: the main thread logs a line with a code.
  const server = await startServer({ shards: 2, sets: ['log.format=json', 'queue.driver=nsq', `queue.nsqd_tcp=127.0.0.1:${await freePort()}`] });
  t.teardown(() => server.stop());
  t.equal((await postJson(`${server.http}/debug/crash?shard=1`, {})).body.crashed, true);
  await until(async () => server.output().includes('"thread":"shard-1"'), 'the crashed shard logged');
  await server.stop();

  const lines = server.output().trimEnd().split('\n');
  const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const e of events) {
    t.match(e, { time: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, level: /^(debug|info|warn|error)$/, thread: /^(main|shard-\d|processor)$/, msg: String });
    t.same(Object.keys(e).filter((k) => !['time', 'level', 'thread', 'msg', 'code', 'fields'].includes(k)), [], 'no other keys');
    if ('fields' in e) t.notOk('code' in (e['fields'] as object), 'code is not repeated in fields');
  }
  const ready = events.find((e) => e['msg'] === 'pusher ready')!;
  t.match(ready, { level: 'info', thread: 'main', fields: { shards: 2, queue: 'nsq' } });
  t.notOk('code' in ready, 'no code when the event has none');
  t.match(events.find((e) => e['code'] === 'PUSH_ERR_QUEUE_UNAVAILABLE'), { level: 'warn', thread: 'main', msg: /nsqd is unreachable/ });
  t.match(events.find((e) => e['thread'] === 'shard-1'), { level: 'error', msg: /crashed/, fields: { error: 'crash requested for shard 1' } });
});
