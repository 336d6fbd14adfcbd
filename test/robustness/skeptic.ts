/**
 * `skeptic` from the TypeScript sources, as bin/skeptic.js runs the built CLI: for tests that need
 * a real process (signals, strace) without depending on a fresh `npm run build`.
 * Usage: node --import tsx test/robustness/skeptic.ts ARGS...
 */
import { internalError, main } from '../../server/cli';

const debug = process.argv.includes('--debug');
const fail = (err: unknown) => {
  process.exitCode = internalError(err, debug);
  process.exit();
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, fail);
