// `pusher start` (src/cli.ts), also run directly:
//   node dist/src/main.js [--config config.ini] [--set section.key=value ...]
// Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 2 when start-up fails
// (bad configuration, a port in use), 1 on an unexpected fatal error.

import { availableParallelism } from 'node:os';
import type { Config } from './config/schema';
import { loadConfig, parseCli } from './config/load';
import { createLogger } from '../shared/log';
import { EXIT_STARTUP, StartupError } from '../shared/errors';
import { Server } from './server';
import { loadSecrets, type Secrets } from './secrets';

/** Runs the server until SIGINT or SIGTERM (then exits the process). */
async function start(argv: readonly string[]): Promise<void> {
  let config: Config;
  let secrets: Secrets;
  try {
    config = loadConfig(parseCli(argv), availableParallelism());
    secrets = loadSecrets(config);
  } catch (err) {
    exitStartup(err);
  }
  const log = createLogger('main', config.log.level, config.log.format);
  const server = new Server(config, log, secrets);

  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = true;
    log.info('shutting down', { signal });
    server.close().then(
      () => process.exit(0),
      (err: Error) => {
        log.error('shutdown failed', { error: err.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Key rotation without a restart: the new file replaces every key at once.
  process.on('SIGHUP', () => {
    if (config.auth.api_keys_file === '') {
      log.info('SIGHUP: no auth.api_keys_file to re-read');
      return;
    }
    try {
      log.info('API keys re-read', { file: config.auth.api_keys_file, keys: secrets.apiKeys.reload() });
    } catch (err) {
      log.error('API keys not re-read; the keys in force stay', { code: 'PUSH_ERR_API_KEYS_RELOAD', file: config.auth.api_keys_file, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
    }
  });

  try {
    await server.start();
  } catch (err) {
    await server.close().catch(() => undefined);
    exitStartup(err);
  }
  const { server: s, grpc, queue } = config;
  const joins = secrets.joinAuth !== null;
  const keys = secrets.apiKeys.on;
  const local = s.host === '0.0.0.0' || s.host === '::' ? '127.0.0.1' : s.host;
  log.info('pusher ready', {
    ws: `${s.host}:${s.ws_port}/ws`, gateway: `${s.host}:${server.gateway.port}`, grpc: grpc.addr === null || server.grpc === null ? 'off' : `${grpc.addr.host}:${server.grpc.port}`,
    shards: s.shards, processors: config.processor.threads, queue: queue.driver, channel: queue.driver === 'nsq' ? queue.channel : undefined,
    auth: joins && keys ? 'on' : joins ? 'joins' : keys ? 'api_keys' : 'off', tls: secrets.tls !== null ? 'on' : 'off', maxConnections: s.max_connections,
    demo: `${secrets.tls !== null ? 'https' : 'http'}://${local}:${server.gateway.port}/demo`,
  });
  const exposed = [...new Set([s.host, grpc.addr?.host])].filter((h): h is string => h !== undefined && !isLoopback(h));
  if (exposed.length > 0 && !(joins && keys)) {
    const without = [joins ? '' : 'signed joins (anyone may join any card_id and read its pushes)', keys ? '' : 'API keys (anyone may push and query)'].filter((k) => k !== '');
    const missing = [joins ? '' : 'auth.join_secret (or auth.join_key_file)', keys ? '' : 'auth.api_keys (or auth.api_keys_file)'].filter((k) => k !== '');
    log.warn(`listening on ${exposed.join(', ')} without ${without.join(' or ')}; set ${missing.join(' and ')}`, { code: 'PUSH_ERR_AUTH_OFF' });
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function exitStartup(err: unknown): never {
  const code = err instanceof StartupError ? err.code : 'PUSH_ERR_START';
  process.stderr.write(`pusher: ${code}: ${(err as Error).message}\n`);
  process.exit(EXIT_STARTUP);
}

/** Starts the server; an unexpected error ends the process with exit code 1. */
export function runStart(argv: readonly string[]): void {
  start(argv).catch((err: Error) => {
    process.stderr.write(`pusher: fatal: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}

if (require.main === module) runStart(process.argv.slice(2));
