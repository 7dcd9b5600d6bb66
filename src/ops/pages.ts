// The browser pages the gateway serves from web/: /dashboard and /demo, and
// their scripts and style under /web/. Plain files, no build step; read once
// at start-up. The pages learn the WebSocket port from a meta tag filled in
// here (the gateway and the shards listen on different ports).

import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';

const WEB_DIR = join(__dirname, '..', '..', '..', 'web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The pages' own paths; every other file is served as /web/<name>. */
const PAGES: Record<string, string> = { 'dashboard.html': '/dashboard', 'demo.html': '/demo' };

export interface StaticFile {
  readonly path: string;
  readonly type: string;
  readonly body: string;
}

export function loadPages(wsPort: number): StaticFile[] {
  return readdirSync(WEB_DIR).filter((name) => TYPES[extname(name)] !== undefined).map((name) => {
    const body = readFileSync(join(WEB_DIR, name), 'utf8').replaceAll('{{WS_PORT}}', String(wsPort));
    return { path: PAGES[name] ?? `/web/${name}`, type: TYPES[extname(name)]!, body };
  });
}
