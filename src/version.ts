// The package version, for GET /metrics (pusher_info) and `pusher --version`.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const VERSION = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
