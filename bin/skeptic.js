#!/usr/bin/env node
// Entry point for `skeptic` / `npx skeptic`: runs the bundled CLI (built by `npm run build`,
// which `npm ci` runs through the prepare script).
const path = require('node:path');
const fs = require('node:fs');
const cli = path.join(__dirname, '..', 'dist', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('skeptic: the CLI is not built yet; run `npm run build` in ' + path.dirname(__dirname));
  process.exit(2);
}
require(cli).main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err && err.stack ? err.stack : String(err)); process.exitCode = 2; },
);
