// The embedded queue is bounded: when full, a push gets 503
// PUSH_ERR_QUEUE_FULL (refused before its body is parsed; a batch that could
// never fit gets 400 PUSH_ERR_BATCH_TOO_LARGE instead), every push that
// got 200 is delivered, and pushes are accepted again once it drains.

import t from 'tap';
import { Client, postJson, startServer, until } from './helpers/server';

t.test('a full embedded queue answers 503 and loses nothing it accepted', async (t) => {
  const server = await startServer({ shards: 2, sets: ['queue.capacity=2'] });
  t.teardown(() => server.stop());
  const c = await Client.open(server.wsUrl);
  await c.join('burst');

  const batch = await postJson(`${server.http}/push/batch`, { pushes: [1, 2, 3].map((i) => ({ to: ['burst'], content: `b${i}` })) });
  t.equal(batch.status, 400, 'a batch larger than the queue is refused whole, and not as "retry later"');
  t.equal(batch.body.error, 'PUSH_ERR_BATCH_TOO_LARGE');
  t.equal(batch.body.code, 3, 'gRPC INVALID_ARGUMENT in "code"');

  // 100 pushes at once against room for 2: some must be refused.
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => postJson(`${server.http}/push`, { to: ['burst'], content: `p${i}` })));
  const accepted = results.flatMap((r, i) => (r.status === 200 ? [`p${i}`] : []));
  const refused = results.filter((r) => r.status === 503);
  t.ok(refused.length > 0, `some pushes were refused (${refused.length})`);
  t.ok(accepted.length > 0, `some pushes were accepted (${accepted.length})`);
  t.equal(accepted.length + refused.length, 100, 'every push got 200 or 503');
  for (const r of refused) t.equal(r.body.error, 'PUSH_ERR_QUEUE_FULL');

  await c.waitFrames(1 + accepted.length);
  t.same(new Set(c.data(1)), new Set(accepted), 'every accepted push was delivered');

  // The queue frees a slot when the shards acknowledged the batch, just after its frames went out.
  let after = { status: 0 };
  await until(async () => (after = await postJson(`${server.http}/push`, { to: ['burst'], content: 'after' })).status !== 503, 'a push is accepted again', 5_000)
    .catch(() => undefined);
  t.equal(after.status, 200, 'accepted again once drained');
  await c.waitFrames(2 + accepted.length);
  await c.close();
});
