// Every stable error code in src/errors.ts is documented in README.md with the
// same HTTP status / close code, and README documents no code that does not exist.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ApiErrors, StartupErrors, WsErrors } from '../src/errors';

const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');

function row(code: string): string[] | null {
  const line = readme.split('\n').find((l) => l.startsWith(`| \`${code}\``));
  return line === undefined ? null : line.split('|').map((c) => c.trim());
}

t.test('API errors: README row with the same HTTP status', async (t) => {
  for (const [code, spec] of Object.entries(ApiErrors)) {
    const r = row(code);
    t.ok(r, `${code} has a README row`);
    if (r !== null) t.equal(r[2], String(spec.http), `${code} HTTP status`);
  }
});

t.test('WebSocket errors: README row with the same close code', async (t) => {
  for (const [code, spec] of Object.entries(WsErrors)) {
    const r = row(code);
    t.ok(r, `${code} has a README row`);
    if (r !== null) t.equal(r[2], spec.close === 0 ? 'stays open' : String(spec.close), `${code} close code`);
  }
});

t.test('start-up errors are documented', async (t) => {
  for (const code of Object.keys(StartupErrors)) t.ok(row(code), `${code} has a README row`);
});

t.test('README names no code that the code does not define', async (t) => {
  const known = new Set([...Object.keys(ApiErrors), ...Object.keys(WsErrors), ...Object.keys(StartupErrors), 'PUSH_ERR_BAD_MESSAGE']);
  const named = new Set(readme.match(/PUSH_ERR_[A-Z_]*[A-Z]/g) ?? []);
  for (const code of named) t.ok(known.has(code), `${code} exists`);
});
