// Memory per card of the recovery history (workers/shard/history.ts), with
// many cards, in one process: the shard's own History fed DeliverBatches
// built by the processor's own OwnerBatch, as a shard sees them. Heap used
// after full GCs, before and after each phase, divided by the card count:
//   1. `keep`: every card gets a record (a recovering join), no push yet;
//   2. `fill`: `--pushes` pushes to every card, `--per-batch` single-recipient
//      pushes per batch (each push's text is then its own string).
// Prints one JSON line. Run it with --expose-gc:
//   npm run build && node --expose-gc dist/bench/history-mem.js --cards 200000 --size 32 --pushes 32

import { History } from '../workers/shard/history';
import { OwnerBatch } from '../workers/processor/owner-batch';
import { renderPush } from '../shared/payload';
import { encodeStamp, nowUs } from './content';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function heap(): number {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage().heapUsed;
}

const cards = arg('cards', 200_000);
const size = arg('size', 32);
const pushes = arg('pushes', size);
const perBatch = arg('per-batch', 1000);
const names = Array.from({ length: cards }, (_, i) => `card-${i}`);

const history = new History({ size, ttlMs: 3_600_000, maxBytes: 1 << 30 }, () => true);
const h0 = heap();
const now = Date.now();
for (const card of names) history.keep(card, now);
const h1 = heap();

// Pushes in task order, card after card, each an 11-byte content (as bench/ pushes are).
let k = 0;
for (let round = 0; round < pushes; round++) {
  for (let start = 0; start < cards; start += perBatch) {
    const batch = new OwnerBatch();
    for (let i = start; i < Math.min(cards, start + perBatch); i++) {
      batch.nextMessage();
      batch.add(names[i]!, renderPush(encodeStamp(nowUs())), '');
    }
    history.record(batch.build(k++), now);
  }
}
const h2 = heap();

const perCard = (bytes: number): number => Math.round(bytes / cards);
const textPerCard = history.bytes / cards;
console.log(JSON.stringify({
  cards, size, pushes, perBatch,
  recordBytesPerCard: perCard(h1 - h0),
  filledBytesPerCard: perCard(h2 - h0),
  keptCharsPerCard: Math.round(textPerCard),
  frameChars: renderPush(encodeStamp(nowUs())).length,
  historyCards: history.size,
  heapMB: Math.round(h2 / 1e6),
}));
