// uWS listens with SO_REUSEPORT, so a second server on the same port would
// bind silently and steal half the connections. Before listening, bind each
// port once with Node's net (no SO_REUSEPORT): that fails with EADDRINUSE when
// any process holds it, whatever options that process used.

import { createServer } from 'node:net';
import { StartupError } from '../shared/errors';

export function assertPortFree(host: string, port: number, what: string): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'is already in use' : `can't be bound (${err.code ?? err.message})`;
      reject(new StartupError('PUSH_ERR_PORT_IN_USE', `${what} port ${port} on ${host} ${why}`));
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
