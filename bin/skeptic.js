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
const mod = require(cli);
const debug = process.argv.includes('--debug');
// Anything that escapes main (an error thrown in a callback): one line, the stack only with --debug.
const fail = (err) => { process.exitCode = mod.internalError ? mod.internalError(err, debug) : 3; process.exit(); };
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
mod.main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, fail);
