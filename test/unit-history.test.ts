// History (workers/shard/history.ts) in-process: offsets, the ring of kept
// pushes as it grows and wraps, app_ids, ttl, the per-shard byte cap, and what
// a rejoin at a given offset is told. Batches are built by the processor's own
// OwnerBatch, as a shard receives them.

import t from 'tap';
import { History } from '../workers/shard/history';
import { OwnerBatch } from '../workers/processor/owner-batch';
import { renderPush } from '../shared/payload';
import type { HistoryLimits, Positions, SeamReply } from '../shared/frames';

const LIMITS: HistoryLimits = { size: 10, ttlMs: 60_000, maxBytes: 1 << 20 };

/** One batch: pushes [card, content, app] in order. */
function record(h: History, pushes: [string, string, string][], now = 0): Positions | null {
  const b = new OwnerBatch();
  for (const [card, content, app] of pushes) {
    b.nextMessage();
    b.add(card, renderPush(content), app);
  }
  return h.record(b.build(1), now);
}

function seam(h: History, card: string, since: number, epoch: string, app = '', now = 0): SeamReply {
  return h.seam({ card, app, since, epoch }, now);
}

const data = (r: SeamReply): string[] => r.payloads.map((p) => (JSON.parse(p) as { data: string }).data);

t.test('offsets count every push; the ring grows, then keeps the last history.size', async (t) => {
  const h = new History(LIMITS, () => true);
  t.equal(record(h, [['c', 'before', '']]), null, 'a card without a record keeps nothing');
  h.keep('c', 0);
  const { epoch } = seam(h, 'c', -1, '');
  for (let i = 1; i <= 25; i++) {
    const pos = record(h, [['c', `m${i}`, i % 5 === 0 ? 'ios' : '']])!;
    t.equal(pos.first[0], i);
    t.equal(pos.epochs[0], epoch);
  }
  const r = seam(h, 'c', 18, epoch, 'ios');
  t.same([r.recovered, r.offset], [true, 25]);
  t.same(data(r), ['m19', 'm20', 'm21', 'm22', 'm23', 'm24', 'm25']);
  t.same(r.offsets, [19, 20, 21, 22, 23, 24, 25]);
  t.same(data(seam(h, 'c', 15, epoch, 'ios')), ['m16', 'm17', 'm18', 'm19', 'm20', 'm21', 'm22', 'm23', 'm24', 'm25'], 'exactly history.size back');
  t.equal(seam(h, 'c', 14, epoch).recovered, false, 'one more than kept');
  for (const app of ['web', '']) {
    t.same(data(seam(h, 'c', 18, epoch, app)), ['m19', 'm21', 'm22', 'm23', 'm24'], `app '${app}': ios pushes left out`);
    t.same(seam(h, 'c', 18, epoch, app).offsets, [19, 21, 22, 23, 24]);
  }
  t.same([seam(h, 'c', 25, epoch).recovered, seam(h, 'c', 25, epoch).payloads.length], [true, 0], 'nothing missed');
  t.equal(seam(h, 'c', 26, epoch).recovered, false, 'ahead of the newest');
  t.equal(seam(h, 'c', 20, 'other').recovered, false, 'another epoch');
});

t.test('a card pushed to a few times keeps them through the ring\'s growth', async (t) => {
  const h = new History(LIMITS, () => true);
  h.keep('c', 0);
  const { epoch } = seam(h, 'c', -1, '');
  for (let i = 1; i <= 7; i++) record(h, [['c', `m${i}`, '']]);
  t.same(data(seam(h, 'c', 0, epoch)), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
  t.equal(h.bytes, 7 * renderPush('m1').length);
});

t.test('ttl: old pushes expire; a card without members is forgotten (new epoch)', async (t) => {
  let members = true;
  const h = new History({ ...LIMITS, ttlMs: 1_000 }, () => members);
  h.keep('c', 0);
  const { epoch } = seam(h, 'c', -1, '');
  record(h, [['c', 'old', '']], 0);
  record(h, [['c', 'new', '']], 900);
  t.same(data(seam(h, 'c', 1, epoch, '', 1_500)), ['new']);
  t.equal(seam(h, 'c', 0, epoch, '', 1_500).recovered, false, 'the older one expired');
  h.sweep(10_000);
  t.equal(h.size, 1, 'kept while it has members');
  members = false;
  h.sweep(20_000);
  t.equal(h.size, 0);
  t.equal(h.bytes, 0);
  const again = seam(h, 'c', 2, epoch);
  t.not(again.epoch, epoch);
  t.same([again.recovered, again.offset], [false, 0]);
});

t.test('max_bytes: the least recently active cards lose their kept pushes, offsets go on', async (t) => {
  const frame = renderPush('x'.repeat(10)).length;
  const h = new History({ ...LIMITS, maxBytes: frame * 12 }, () => true);
  for (const c of ['a', 'b']) h.keep(c, 0);
  const ea = seam(h, 'a', -1, '').epoch;
  const eb = seam(h, 'b', -1, '', '', 5_000).epoch;
  for (let i = 0; i < 6; i++) record(h, [['a', 'x'.repeat(10), '']], 0);
  for (let i = 0; i < 7; i++) record(h, [['b', 'x'.repeat(10), '']], 5_000);
  t.ok(h.bytes <= frame * 12, 'under the cap');
  t.equal(seam(h, 'a', 0, ea, '', 5_000).recovered, false, 'a, less recently active, lost its pushes');
  t.equal(seam(h, 'a', 6, ea, '', 5_000).recovered, true, 'but not its offsets');
  t.equal(seam(h, 'b', 0, eb, '', 5_000).recovered, true, 'b kept them');
});

t.test('the ring grows after expired pushes moved its head', async (t) => {
  const h = new History({ ...LIMITS, ttlMs: 1_000 }, () => true);
  h.keep('c', 0);
  const { epoch } = seam(h, 'c', -1, '');
  for (let i = 1; i <= 5; i++) record(h, [['c', `m${i}`, '']], i <= 3 ? 0 : 900);
  t.same(data(seam(h, 'c', 3, epoch, '', 1_500)), ['m4', 'm5'], 'm1..m3 expired');
  for (let i = 6; i <= 12; i++) record(h, [['c', `m${i}`, '']], 1_500);
  t.same(data(seam(h, 'c', 3, epoch, '', 1_500)), ['m4', 'm5', 'm6', 'm7', 'm8', 'm9', 'm10', 'm11', 'm12']);
});
