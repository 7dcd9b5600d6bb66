// README's layout lists every source file: a new file, a moved one or a
// removed one without a README edit fails here.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';

const ROOT = join(__dirname, '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const block = readme.slice(readme.indexOf('- Layout ('), readme.indexOf('proto/rpc.proto  config.ini'));

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? files(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

t.test('every source file is in README\'s layout, under its folder', async (t) => {
  let folder = '';
  const listed = new Set<string>();
  for (const line of block.split('\n')) {
    const top = /^(src|workers\/shard|workers\/processor|shared)\/\s/.exec(line);
    if (top !== null) folder = top[1]!;
    const names = /^ {2}(\S[^ ]*(?:, \S+)*)\s{2,}/.exec(line)?.[1];
    if (names === undefined) continue;
    const [first, ...more] = names.split(', ');
    const dir = first!.includes('/') ? first!.slice(0, first!.lastIndexOf('/') + 1) : '';
    listed.add(`${folder}/${first}`);
    for (const m of more) listed.add(`${folder}/${dir}${m}`);
  }
  const actual = ['src', 'workers', 'shared'].flatMap(files).map((f) => relative(ROOT, join(ROOT, f)));
  for (const f of actual) t.ok(listed.has(f), `${f} is listed`);
  for (const f of listed) t.ok(actual.includes(f), `${f} exists`);
});
