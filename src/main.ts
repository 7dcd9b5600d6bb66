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

/** Runs the server until SIGINT or SIGTERM (then exits the process). */
async function start(argv: readonly string[]): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(parseCli(argv), availableParallelism());
  } catch (err) {
    exitStartup(err);
  }
  const log = createLogger('main', config.log.level, config.log.format);
  const server = new Server(config, log);

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

  try {
    await server.start();
  } catch (err) {
    await server.close().catch(() => undefined);
    exitStartup(err);
  }
  const { server: s, grpc, queue } = config;
  const local = s.host === '0.0.0.0' || s.host === '::' ? '127.0.0.1' : s.host;
  log.info('pusher ready', {
    ws: `${s.host}:${s.ws_port}/ws`, gateway: `${s.host}:${server.gateway.port}`, grpc: grpc.addr === null || server.grpc === null ? 'off' : `${grpc.addr.host}:${server.grpc.port}`,
    shards: s.shards, processors: config.processor.threads, queue: queue.driver, channel: queue.driver === 'nsq' ? queue.channel : undefined,
    demo: `http://${local}:${server.gateway.port}/demo`,
  });
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
