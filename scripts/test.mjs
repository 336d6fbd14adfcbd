// Runs the default test suite with Node's built-in runner. TypeScript is loaded through tsx.
// Usage: node scripts/test.mjs [file-or-dir ...]   (default: test/unit)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function collect(p) {
  if (statSync(p).isDirectory()) {
    return readdirSync(p).sort().flatMap((f) => collect(join(p, f)));
  }
  return /\.test\.(ts|mjs|js)$/.test(p) ? [p] : [];
}

const args = process.argv.slice(2);
const files = (args.length ? args : ['test/unit']).flatMap(collect);
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  // ONNX Runtime telemetry off in tests that load it directly (the engine sets it for itself).
  { stdio: 'inherit', env: { ORT_DISABLE_TELEMETRY: '1', ...process.env } },
);
process.exit(r.status ?? 1);
