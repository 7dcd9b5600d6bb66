// Counts tap's real results from the raw TAP that `tap` saved per test file
// under .tap/test-results/, and prints CI's closing line: "N passed, N failed".
// Leaf assertions are counted (a subtest's own summary point is not counted
// again, see count()); a file whose TAP stream did not end well (crash, missing plan,
// bail out) with no failing assertion of its own counts as one failure.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from 'tap-parser';

function files(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(files(p));
    else if (name.endsWith('.tap')) out.push(p);
  }
  return out;
}

function count(parser, totals) {
  let failedBeforeChild = 0;
  parser.on('child', (child) => {
    failedBeforeChild = totals.failed;
    count(child, totals);
  });
  parser.on('assert', (res) => {
    if (res.closingTestPoint) {
      // A subtest's own summary point: its leaves were counted already; count
      // it only when it failed without a failing leaf (a timeout, a throw).
      if (!res.ok && !res.skip && !res.todo && totals.failed === failedBeforeChild) totals.failed++;
      return;
    }
    if (res.skip || res.todo) totals.skipped++;
    else if (res.ok) totals.passed++;
    else totals.failed++;
  });
}

const dir = process.argv[2] ?? '.tap/test-results';
const exitCode = Number(process.argv[3] ?? '0');
const totals = { passed: 0, failed: 0, skipped: 0 };
let found;
try {
  found = files(dir);
} catch {
  found = [];
}
for (const file of found) {
  const before = totals.failed;
  const parser = new Parser();
  count(parser, totals);
  let ok = true;
  parser.on('complete', (r) => (ok = r.ok));
  parser.end(readFileSync(file));
  if (!ok && totals.failed === before) {
    totals.failed++;
    console.log(`${file}: did not complete cleanly`);
  }
}
if (exitCode !== 0 && totals.failed === 0) {
  totals.failed = 1;
  console.log(`the test command exited ${exitCode} with no failing assertion (build or runner failure)`);
}
console.log(`${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`);
process.exit(totals.failed > 0 ? 1 : 0);
