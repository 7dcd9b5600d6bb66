// Signed joins (auth.join_secret / auth.join_key_file): a join is applied only
// with a valid token whose sub is the card_id (and app_id claim the app_id),
// given in the join frame or as ?token= on the upgrade; every refusal closes
// with its documented code and joins nothing. Also the join rate limit.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { Client, getJson, postJson, startServer, type Running } from './helpers/server';
import { SECRET, selfSigned, token } from './helpers/security';

async function online(s: Running, card: string): Promise<string> {
  return (await getJson(`${s.http}/isOnline?cardID=${encodeURIComponent(card)}`)).body.result;
}

/** Sends a join and waits for the connection to close; returns the close code and reason. */
async function refused(s: Running, data: Record<string, string>, query = ''): Promise<[number, string]> {
  const c = await Client.open(`${s.wsUrl}${query}`);
  c.send({ event: 'join', data });
  await c.closed;
  return [c.closeCode!, c.closeReason];
}

t.test('HS256: valid tokens join (frame or ?token=); every bad token closes and joins nothing', async (t) => {
  const s = await startServer({ sets: [`auth.join_secret=${SECRET}`] });
  t.teardown(() => s.stop());
  t.match(s.output(), /pusher ready .*auth=joins/, 'the ready line says signed joins are on');

  const a = await Client.open(s.wsUrl);
  a.send({ event: 'join', data: { card_id: 'alice', token: await token({ sub: 'alice' }) } });
  await a.waitFrames(1);
  t.same(a.data(), ['ok'], 'a token in the join frame');
  const b = await Client.open(`${s.wsUrl}?token=${await token({ sub: 'bob', app_id: 'web' })}`);
  b.send({ event: 'join', data: { card_id: 'bob', app_id: 'web' } });
  await b.waitFrames(1);
  t.same(b.data(), ['ok'], 'a token on the upgrade, with a matching app_id claim');
  const late = await Client.open(s.wsUrl);
  late.send({ event: 'join', data: { card_id: 'carol', token: await token({ sub: 'carol', expiresIn: -10 }) } });
  await late.waitFrames(1);
  t.same(late.data(), ['ok'], 'expired 10 s ago: within auth.join_clock_skew (30 s)');

  t.equal((await postJson(`${s.http}/push`, { to: ['alice', 'bob'], content: 'hi' })).status, 200);
  await a.waitFrames(2);
  await b.waitFrames(2);
  t.same([a.data(1), b.data(1)], [['hi'], ['hi']], 'joined connections get their pushes');

  const other = new TextEncoder().encode('another-secret-that-is-long-enough-too');
  const cases: [string, Record<string, string>, number, string][] = [
    ['no token', { card_id: 'mallory' }, 4401, 'PUSH_ERR_WS_TOKEN_MISSING'],
    ['expired beyond the skew', { card_id: 'mallory', token: await token({ sub: 'mallory', expiresIn: -120 }) }, 4401, 'PUSH_ERR_WS_TOKEN_EXPIRED'],
    ['signed with another secret', { card_id: 'mallory', token: await token({ sub: 'mallory' }, other) }, 4401, 'PUSH_ERR_WS_TOKEN_INVALID'],
    ['not a JWT', { card_id: 'mallory', token: 'not.a.jwt' }, 4401, 'PUSH_ERR_WS_TOKEN_INVALID'],
    ['alg none', { card_id: 'mallory', token: unsigned({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 60 }) }, 4401, 'PUSH_ERR_WS_TOKEN_INVALID'],
    ['without sub', { card_id: 'mallory', token: await token({}) }, 4401, 'PUSH_ERR_WS_TOKEN_INVALID'],
    ['for another card_id', { card_id: 'mallory', token: await token({ sub: 'alice' }) }, 4403, 'PUSH_ERR_WS_TOKEN_MISMATCH'],
    ['for another app_id', { card_id: 'mallory', app_id: 'admin', token: await token({ sub: 'mallory', app_id: 'web' }) }, 4403, 'PUSH_ERR_WS_TOKEN_MISMATCH'],
    ['app_id claim, join without app_id', { card_id: 'mallory', token: await token({ sub: 'mallory', app_id: 'web' }) }, 4403, 'PUSH_ERR_WS_TOKEN_MISMATCH'],
  ];
  for (const [what, data, code, reason] of cases) t.same(await refused(s, data), [code, reason], what);
  t.same(await refused(s, { card_id: 'mallory' }, `?token=${await token({ sub: 'alice' })}`), [4403, 'PUSH_ERR_WS_TOKEN_MISMATCH'], '?token= for another card_id');
  t.equal(await online(s, 'mallory'), 'no', 'no refused join was applied');
  t.equal(await online(s, 'alice'), 'yes', 'alice is still joined');

  // Frames sent while a join is verified wait for it and keep their order.
  const c = await Client.open(s.wsUrl);
  c.send({ event: 'join', data: { card_id: 'dave', token: await token({ sub: 'dave' }) } });
  c.send({ event: 'ping' });
  c.send({ event: 'join', data: { card_id: 'erin', token: await token({ sub: 'erin' }) } });
  c.send({ event: 'ping' });
  await c.waitFrames(4);
  t.same(c.data(), ['ok', 'ok', 'ok', 'ok'], 'join, ping, join, ping: four answers');
  t.same([await online(s, 'dave'), await online(s, 'erin')], ['no', 'yes'], 'the second join moved the connection');
  // A bad join after queued frames: the connection closes and what was queued after it is dropped.
  const d = await Client.open(s.wsUrl);
  d.send({ event: 'join', data: { card_id: 'frank', token: await token({ sub: 'zed' }) } });
  d.send({ event: 'join', data: { card_id: 'frank', token: await token({ sub: 'frank' }) } });
  await d.closed;
  t.same([d.closeCode, d.frames.length, await online(s, 'frank')], [4403, 0, 'no'], 'nothing after a refused join runs');
  for (const x of [a, b, late, c]) await x.close();
});

t.test('ES256 public key file and JWKS file', async (t) => {
  const { dir } = selfSigned();
  const es = await generateKeyPair('ES256');
  const rs = await generateKeyPair('RS256');
  const pem = join(dir, 'join.pem');
  writeFileSync(pem, await exportSPKI(es.publicKey));
  const jwks = join(dir, 'jwks.json');
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(rs.publicKey)), kid: 'k1', alg: 'RS256' }] }));
  for (const [what, file, good, bad, alg] of [
    ['ES256 PEM', pem, es.privateKey, rs.privateKey, 'ES256'],
    ['RS256 JWKS', jwks, rs.privateKey, es.privateKey, 'RS256'],
  ] as const) {
    const s = await startServer({ shards: 1, grpc: false, sets: [`auth.join_key_file=${file}`] });
    const c = await Client.open(s.wsUrl);
    c.send({ event: 'join', data: { card_id: 'alice', token: await token({ sub: 'alice' }, good, alg) } });
    await c.waitFrames(1);
    t.same(c.data(), ['ok'], `${what}: a token signed with the key`);
    const other = alg === 'ES256' ? 'RS256' : 'ES256';
    t.same(await refused(s, { card_id: 'bob', token: await token({ sub: 'bob' }, bad, other) }), [4401, 'PUSH_ERR_WS_TOKEN_INVALID'], `${what}: another key`);
    await c.close();
    await s.stop();
  }
});

t.test('joins per connection per second: over the limit closes with 4429; other connections are unaffected', async (t) => {
  const s = await startServer({ shards: 1, grpc: false, sets: ['server.max_joins_per_second=3'] });
  t.teardown(() => s.stop());
  const c = await Client.open(s.wsUrl);
  for (let i = 0; i < 5; i++) c.send({ event: 'join', data: { card_id: `c${i}` } });
  await c.closed;
  t.same([c.closeCode, c.closeReason, c.frames.length], [4429, 'PUSH_ERR_WS_RATE_LIMITED', 3], 'a burst of 3 is answered, the 4th closes');
  const d = await Client.open(s.wsUrl);
  for (let i = 0; i < 3; i++) await d.join(`d${i}`);
  await new Promise((r) => setTimeout(r, 700));
  await d.join('d3');
  await d.join('d4');
  t.pass('the budget refills over time (3 a second)');
  await d.close();
});

/** A JWT with alg "none" (no signature): must never be accepted. */
function unsigned(claims: object): string {
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none' })}.${b64(claims)}.`;
}
