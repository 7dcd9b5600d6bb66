// The `pusher` command (package.json bin → bin/pusher.js → here):
//   pusher start [--config FILE] [--set section.key=value ...]
//   pusher push --to a,b [--app X] [--from F] "content"
//   pusher stats [--json]
//   pusher token --card C [--app A] [--ttl 1h] (src/cli-token.ts)
// push and stats talk to a running server's HTTP gateway (--url, $PUSHER_URL).
// Results go to stdout, errors to stderr as one line `pusher: <what>`.
// Exit codes: 0 done; 1 the server refused or could not be reached; 2 bad
// usage, or (start) the server could not start.

import { parseArgs } from 'node:util';
import { EXIT_STARTUP } from '../shared/errors';
import { runStart } from './main';
import { mintToken, TOKEN_USAGE } from './cli-token';
import { VERSION } from './version';

const EXIT_FAILED = 1;
const EXIT_USAGE = EXIT_STARTUP;
const DEFAULT_URL = 'http://127.0.0.1:8081';
const TIMEOUT_MS = 10_000;

const USAGE = `usage: pusher <command> [options]

commands:
  start [--config FILE] [--set section.key=value ...]
        run the server (what npm start runs); stops on Ctrl-C or SIGTERM
  push --to CARD[,CARD...] [--app APP] [--from FROM] CONTENT
        send a push through the HTTP API (CONTENT "-": read it from stdin)
  stats [--json]
        the server's numbers (GET /stats): connections, groups, deliveries, queue
${TOKEN_USAGE}

options of push and stats:
  --url URL   the server's HTTP gateway (default: $PUSHER_URL, else ${DEFAULT_URL})
  --key KEY   API key, sent as "Authorization: Bearer KEY" (default: $PUSHER_API_KEY)

pusher --help, pusher <command> --help: this text; pusher --version: the version.
exit codes: 0 done; 1 the server refused or could not be reached; 2 bad usage,
or the server could not start (its configuration, a port in use).`;

class UsageError extends Error {}

const CLIENT_OPTIONS = {
  url: { type: 'string' },
  key: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse<O extends Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>(args: readonly string[], options: O, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: positionals > 0 });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (parsed.positionals.length > positionals) throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`);
  return parsed;
}

interface Client {
  readonly url: string;
  readonly key: string;
}

function client(values: { url?: string; key?: string }): Client {
  const url = (values.url ?? process.env['PUSHER_URL'] ?? DEFAULT_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(url)) throw new UsageError(`--url must be an http:// or https:// URL, got "${url}"`);
  return { url, key: values.key ?? process.env['PUSHER_API_KEY'] ?? '' };
}

class RequestFailed extends Error {}

/** One request to the gateway; resolves with the JSON answer of a 2xx, else throws RequestFailed saying why. */
async function call(c: Client, method: string, path: string, body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (c.key !== '') headers['Authorization'] = `Bearer ${c.key}`;
  let res: Response;
  try {
    res = await fetch(`${c.url}${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new RequestFailed(`cannot reach ${c.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.ok && json !== undefined) return json;
  const e = json as { error?: string; message?: string } | undefined;
  if (e?.error !== undefined) throw new RequestFailed(`${e.error}: ${e.message ?? ''} (HTTP ${res.status})`);
  throw new RequestFailed(`${method} ${path} answered HTTP ${res.status}${text === '' ? '' : `: ${text.slice(0, 200)}`}`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
}

async function push(args: readonly string[]): Promise<void> {
  const { values, positionals } = parse(args, { ...CLIENT_OPTIONS, to: { type: 'string' }, app: { type: 'string' }, from: { type: 'string' } }, 1);
  if (values.help === true) return help();
  if (values.to === undefined) throw new UsageError('push needs --to CARD[,CARD...]');
  if (positionals.length === 0) throw new UsageError('push needs the CONTENT to send (or "-" to read it from stdin)');
  const to = values.to.split(',').map((s) => s.trim());
  const content = positionals[0] === '-' ? await readStdin() : positionals[0]!;
  const c = client(values);
  await call(c, 'POST', '/push', { from: values.from ?? 'pusher-cli', to, appID: values.app ?? '', content });
  process.stdout.write(`ok: pushed to ${to.join(', ')}\n`);
}

interface Stats {
  shards: { clients: number; groups: number; delivered: number; undelivered: number; dropped: number; slowClosed?: number }[];
  restarts: number[];
  queue: { driver: string; depth: number; inFlight: number; connected: boolean; accepted?: number };
  processors: { batches: number; messages: number; requeued: number; undecodable: number };
}

function table(rows: (string | number)[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((v, i) => (i === 0 ? String(v).padEnd(widths[i]!) : String(v).padStart(widths[i]!))).join('  ')).join('\n');
}

async function stats(args: readonly string[]): Promise<void> {
  const { values } = parse(args, { ...CLIENT_OPTIONS, json: { type: 'boolean' } }, 0);
  if (values.help === true) return help();
  const s = (await call(client(values), 'GET', '/stats')) as Stats;
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
    return;
  }
  const sum = (k: 'clients' | 'groups' | 'delivered' | 'undelivered' | 'dropped'): number => s.shards.reduce((n, x) => n + x[k], 0);
  const q = s.queue;
  const p = s.processors;
  process.stdout.write([
    `connections ${sum('clients')}   groups ${sum('groups')}   delivered ${sum('delivered')}   undelivered ${sum('undelivered')}   dropped ${sum('dropped')}`,
    '',
    table([['shard', 'connections', 'groups', 'delivered', 'undelivered', 'dropped', 'restarts'],
      ...s.shards.map((x, i) => [i, x.clients, x.groups, x.delivered, x.undelivered, x.dropped, s.restarts[i] ?? 0])]),
    '',
    `queue ${q.driver}: ${q.connected ? 'connected' : 'NOT CONNECTED'}, accepted ${q.accepted ?? '?'}, ${q.depth >= 0 ? `depth ${q.depth}, ` : ''}in flight ${q.inFlight}`,
    `processors: batches ${p.batches}, messages ${p.messages}, requeued ${p.requeued}, undecodable ${p.undecodable}`,
  ].join('\n') + '\n');
}

async function token(args: readonly string[]): Promise<void> {
  const { values } = parse(args, {
    card: { type: 'string' }, app: { type: 'string' }, ttl: { type: 'string' }, secret: { type: 'string' }, 'private-key': { type: 'string' },
    config: { type: 'string' }, set: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' },
  }, 0);
  if (values.help === true) return help();
  let jwt: string;
  try {
    jwt = await mintToken({
      card: values.card ?? '', app: values.app, ttl: values.ttl ?? '1h', secret: values.secret, privateKey: values['private-key'],
      config: values.config, sets: values.set ?? [],
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  process.stdout.write(`${jwt}\n`);
}

function help(): void {
  process.stdout.write(`${USAGE}\n`);
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      if (rest.includes('--help') || rest.includes('-h')) return help();
      runStart(rest);
      return;
    case 'push':
      return push(rest);
    case 'stats':
      return stats(rest);
    case 'token':
      return token(rest);
    case 'help':
    case '--help':
    case '-h':
      return help();
    case '--version':
    case '-v':
      process.stdout.write(`${VERSION}\n`);
      return;
    case undefined:
      throw new UsageError('a command is needed');
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  if (err instanceof UsageError) {
    process.stderr.write(`pusher: ${err.message}\nrun "pusher --help" for the commands and options\n`);
    process.exit(EXIT_USAGE);
  }
  if (err instanceof RequestFailed) {
    process.stderr.write(`pusher: ${err.message}\n`);
    process.exit(EXIT_FAILED);
  }
  process.stderr.write(`pusher: fatal: ${err.stack ?? err.message}\n`);
  process.exit(EXIT_FAILED);
});
