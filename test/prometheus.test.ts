// A real Prometheus (Debian's package) scrapes the server; every query of the
// Grafana dashboard (deploy/grafana/pusher.json) and of the alert rules
// (deploy/prometheus/) runs against it, and names only metrics the server has.

import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, postJson, ROOT, startServer, until } from './helpers/server';
import { Prometheus } from './helpers/prometheus';
import { scrape } from './helpers/metrics';
import { systemBinary } from './helpers/daemon';

const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'pusher.json');
const RULES = join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
/** Metrics that only one queue driver has. */
const DRIVER_ONLY = new Set(['pusher_queue_depth', 'pusher_nsq_consumers_connected']);

interface Panel {
  title: string;
  targets?: { expr: string }[];
}

function dashboardQueries(): { title: string; expr: string }[] {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  return d.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ title: p.title, expr: x.expr })));
}

function ruleQueries(): string[] {
  return [...readFileSync(RULES, 'utf8').matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
}

/** Grafana's variables as Prometheus can take them: every instance, a rate window that holds several 1 s scrapes. */
function concrete(expr: string): string {
  return expr.replaceAll('$__rate_interval', '10s').replaceAll('$instance', '.*');
}

function promtool(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(systemBinary('promtool'), args, (err, stdout, stderr) => resolve({ code: err === null ? 0 : 1, output: stdout + stderr }));
  });
}

t.test('Prometheus scrapes /metrics; the dashboard\'s and the alerts\' queries run on what it scraped', async (t) => {
  const server = await startServer({ shards: 2, sets: ['metrics.latency_sample=1'] });
  t.teardown(() => server.stop());
  const client = await Client.open(server.wsUrl);
  t.teardown(() => client.close());
  await client.join('scraped');
  const prom = await Prometheus.start(t, [`127.0.0.1:${server.httpPort}`]);

  await until(async () => (await prom.targets()).some((x) => x.health === 'up'), 'the target is up', 20_000)
    .catch((err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(prom.targets())}\n${prom.output()}`); });
  // Pushes over several scrapes, so that rate() has two points with an increase between them.
  let sent = 0;
  await until(async () => {
    await postJson(`${server.http}/push`, { to: ['scraped'], content: `p${sent++}` });
    const r = await prom.query('sum(rate(pusher_pushes_delivered_total[10s]))');
    return r.length === 1 && Number(r[0]!.value[1]) > 0;
  }, 'Prometheus sees deliveries', 30_000);
  const connections = await prom.query('sum(pusher_connections)');
  t.equal(connections[0]?.value[1], '1', 'the connection, as Prometheus scraped it');
  t.equal((await prom.query('pusher_info'))[0]?.metric['driver'], 'memory');

  const queries = dashboardQueries();
  t.ok(queries.length >= 20, `${queries.length} dashboard queries`);
  for (const { title, expr } of queries) {
    await prom.query(concrete(expr)).then(() => t.pass(`${title}: ${expr}`), (err: Error) => t.fail(`${title}: ${err.message}`));
  }
  for (const expr of ruleQueries()) {
    await prom.query(expr).then(() => t.pass(`rule: ${expr}`), (err: Error) => t.fail(`rule: ${err.message}`));
  }
  const latency = await prom.query(concrete(queries.find((q) => q.title === 'Latency p99')!.expr));
  t.ok(Number(latency[0]?.value[1]) > 0, 'the p99 panel has a value');

  // Every metric a query names is one the server exposes (with or without samples yet).
  const exposed = new Set([...(await scrape(server.http)).text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
  const named = new Set([...queries.map((q) => q.expr), ...ruleQueries()].flatMap((e) => [...e.matchAll(/\b((?:pusher|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''))));
  for (const name of named) if (!DRIVER_ONLY.has(name)) t.ok(exposed.has(name), `${name} is exposed`);
});

t.test('the example Prometheus configuration and alert rules pass promtool', async (t) => {
  t.same(await promtool(['check', 'rules', RULES]), { code: 0, output: `Checking ${RULES}\n  SUCCESS: 8 rules found\n\n` });
  const config = await promtool(['check', 'config', join(ROOT, 'deploy', 'prometheus', 'prometheus.yml')]);
  t.equal(config.code, 0, config.output);
});
