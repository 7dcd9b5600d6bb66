// SeqState: task numbers shared by every thread, and the ring that tells the
// main thread which numbers a dead processor thread handled.

import t from 'tap';
import { SeqState } from '../shared/seq-state';

t.test('numbers are taken in order; release returns exactly what a slot handled, once', async (t) => {
  const seqs = new SeqState(SeqState.create());
  t.equal(seqs.peek(), 0);
  const mine = [seqs.takeFor(3), seqs.take(), seqs.takeFor(3), seqs.takeFor(1)];
  t.same(mine, [0, 1, 2, 3]);
  seqs.own(1, 2);
  t.equal(seqs.peek(), 4);
  t.same(seqs.release(3), [0, 2], 'slot 3 handled 0 and 2');
  t.same(seqs.release(3), [], 'forgotten once released');
  t.same(seqs.release(1), [3]);
  t.same(seqs.release(2), [1], 'a number the main thread took and a processor then owned');
});

t.test('the counter and ring are shared through the buffer', async (t) => {
  const buffer = SeqState.create();
  const a = new SeqState(buffer);
  const b = new SeqState(buffer);
  a.takeFor(0);
  t.equal(b.takeFor(1), 1, 'the second view continues the count');
  t.same(b.release(0), [0]);
});

t.test('only the last 65536 numbers are remembered', async (t) => {
  const seqs = new SeqState(SeqState.create());
  for (let i = 0; i < 70_000; i++) seqs.takeFor(i < 10 ? 5 : 6);
  t.same(seqs.release(5), [], 'numbers older than the ring were overwritten');
  t.equal(seqs.release(6).length, 65_536);
});
