#!/usr/bin/env node
// The `pusher` command (package.json "bin"): runs the compiled CLI,
// dist/src/cli.js (src/cli.ts). `npm run build` makes it.
'use strict';

const { existsSync } = require('node:fs');
const { join } = require('node:path');

const cli = join(__dirname, '..', 'dist', 'src', 'cli.js');
if (!existsSync(cli)) {
  process.stderr.write(`pusher: ${cli} is missing; run "npm run build" in ${join(__dirname, '..')} first\n`);
  process.exit(2);
}
require(cli);
