// The configuration schema is the one place keys are defined: config.ini and
// README's table are generated from it and must not drift; every default is
// valid; the loader reports every bad key at once.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { configIni, readmeTable, withTable } from '../src/config/docs';
import { loadConfig, parseCli } from '../src/config/load';
import { SCHEMA } from '../src/config/schema';

const ROOT = join(__dirname, '..');

t.test('config.ini and README\'s table are what the schema generates (npm run config-docs)', async (t) => {
  t.equal(readFileSync(join(ROOT, 'config.ini'), 'utf8'), configIni(), 'config.ini');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  t.equal(withTable(readme, readmeTable()), readme, 'README configuration table');
});

t.test('every default parses, and the shipped config.ini loads to the defaults', async (t) => {
  for (const [section, keys] of Object.entries(SCHEMA)) {
    for (const [key, spec] of Object.entries(keys)) {
      const v: unknown = spec.parse(spec.default);
      t.notOk(v !== null && typeof v === 'object' && 'error' in v, `${section}.${key} default "${spec.default}"`);
    }
  }
  t.same(loadConfig(parseCli(['--config', join(ROOT, 'config.ini')]), 4), loadConfig(parseCli([]), 4));
});

t.test('--set overrides; derived keys resolve; the result is frozen', async (t) => {
  const c = loadConfig(parseCli(['--set', 'server.ws_port=9000', '--set=queue.driver=nsq', '--set', 'grpc.addr=off']), 3);
  t.equal(c.server.ws_port, 9000);
  t.equal(c.queue.driver, 'nsq');
  t.equal(c.grpc.addr, null);
  t.equal(c.server.shards, 3, 'shards 0 = one per core');
  t.equal(c.processor.threads, 3, 'processor threads 0 = one per core, at most 4');
  t.match(c.queue.channel, /-9000$/, 'channel from host name and ws_port');
  t.ok(Object.isFrozen(c.server));
});

t.test('every problem is reported at once, naming the key', async (t) => {
  t.throws(() => loadConfig(parseCli(['--set', 'server.ws_port=0', '--set', 'queue.driver=kafka', '--set', 'log.nope=1']), 2), {
    code: 'PUSH_ERR_CONFIG',
    message: /unknown key log\.nope.*server\.ws_port must be an integer from 1 to 65535 \(got "0"\).*queue\.driver must be one of memory, nsq/s,
  });
  t.throws(() => parseCli(['--bogus']), { code: 'PUSH_ERR_CONFIG', message: /--bogus/ });
  t.throws(() => parseCli(['--config']), { code: 'PUSH_ERR_CONFIG' });
});

t.test('etcd: the advertised address is derived, and a wildcard one is refused when etcd is on', async (t) => {
  const c = loadConfig(parseCli(['--set', 'server.host=10.0.0.5', '--set', 'server.ws_port=9000', '--set', 'etcd.enable=true', '--set', 'etcd.endpoints=http://e1:2379, e2:2379']), 2);
  t.equal(c.etcd.advertise, '10.0.0.5:9000', 'server.host:server.ws_port');
  t.same(c.etcd.endpoints, ['e1:2379', 'e2:2379'], 'http:// accepted and dropped');
  t.throws(() => loadConfig(parseCli(['--set', 'etcd.enable=true']), 2), { code: 'PUSH_ERR_CONFIG', message: /etcd\.advertise = host:port \(it would be 0\.0\.0\.0:8080/ });
  t.throws(() => loadConfig(parseCli(['--set', 'etcd.enable=true', '--set', 'etcd.advertise=[::]:8080']), 2), { code: 'PUSH_ERR_CONFIG' });
  t.equal(loadConfig(parseCli(['--set', 'etcd.enable=true', '--set', 'etcd.advertise=pusher-1.internal:8080']), 2).etcd.advertise, 'pusher-1.internal:8080');
  t.equal(loadConfig(parseCli([]), 2).etcd.advertise, '0.0.0.0:8080', 'no check while etcd is off');
  t.throws(() => loadConfig(parseCli(['--set', 'etcd.endpoints=', '--set', 'etcd.listen_key=a b', '--set', 'etcd.ttl=1']), 2), {
    message: /etcd\.endpoints must name at least one.*etcd\.listen_key must be.*etcd\.ttl must be an integer from 2/s,
  });
});
