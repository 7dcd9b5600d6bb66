// Every stable error code in shared/errors.ts is documented in README.md with the
// same HTTP status, gRPC code and close code; README documents no code that
// does not exist; the code logs no code that is not in the tables.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ApiErrors, GrpcStatus, LogErrors, StartupErrors, WsErrors } from '../shared/errors';

const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');

function row(code: string): string[] | null {
  const line = readme.split('\n').find((l) => l.startsWith(`| \`${code}\``));
  return line === undefined ? null : line.split('|').map((c) => c.trim());
}

const GRPC_NAME = new Map<number, string>(Object.entries(GrpcStatus).map(([name, n]) => [n, name]));

t.test('API errors: README row with the same HTTP status and gRPC code', async (t) => {
  for (const [code, spec] of Object.entries(ApiErrors)) {
    const r = row(code);
    t.ok(r, `${code} has a README row`);
    if (r === null) continue;
    t.equal(r[2], String(spec.http), `${code} HTTP status`);
    t.equal(r[3], GRPC_NAME.get(spec.grpc), `${code} gRPC code`);
  }
});

t.test('WebSocket errors: README row with the same close code', async (t) => {
  for (const [code, spec] of Object.entries(WsErrors)) {
    const r = row(code);
    t.ok(r, `${code} has a README row`);
    if (r !== null) t.equal(r[2], spec.close === 0 ? 'stays open' : String(spec.close), `${code} close code`);
  }
});

t.test('start-up and log-only codes are documented', async (t) => {
  for (const code of [...Object.keys(StartupErrors), ...Object.keys(LogErrors)]) t.ok(row(code), `${code} has a README row`);
});

const known = new Set([...Object.keys(ApiErrors), ...Object.keys(WsErrors), ...Object.keys(StartupErrors), ...Object.keys(LogErrors)]);

t.test('README names no code that the code does not define', async (t) => {
  const named = new Set(readme.match(/PUSH_ERR_[A-Z_]*[A-Z]/g) ?? []);
  for (const code of named) t.ok(known.has(code), `${code} exists`);
});

t.test('every code the sources use is in a table', async (t) => {
  const used = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) for (const code of readFileSync(p, 'utf8').match(/PUSH_ERR_[A-Z_]*[A-Z]/g) ?? []) used.add(code);
    }
  };
  for (const dir of ['src', 'shared', 'workers']) walk(join(__dirname, '..', dir));
  t.ok(used.size > 20, `${used.size} codes found`);
  for (const code of used) t.ok(known.has(code), `${code} is defined`);
});
