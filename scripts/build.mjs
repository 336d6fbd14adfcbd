// Bundles every entry point with esbuild: the CLI, the analysis daemon, the VS Code client and
// the webviews. An entry whose source does not exist yet is skipped, so the build works while
// parts are being added. Native modules (onnxruntime-node, sharp) stay external and load from
// node_modules at run time; `vscode` is provided by the editor.
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { nodeBundle } from './esbuild-node.mjs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

const node = nodeBundle({ production });

const targets = [
  { ...node, entryPoints: { cli: 'server/cli.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { server: 'server/server.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { worker: 'server/worker.ts' }, outdir: 'dist' },
  // the worker threads that make the corruption views' CPU part (server/engine/views/workers.ts)
  { ...node, entryPoints: { 'views-worker': 'server/engine/views/cpu-worker.ts' }, outdir: 'dist' },
  // an audit's lanes on many cores (server/engine/shard/lanes.ts)
  { ...node, entryPoints: { 'lane-worker': 'server/engine/shard/lane-worker.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { extension: 'client/extension.ts' }, outdir: 'dist' },
  {
    entryPoints: { report: 'webviews/report.ts' },
    outdir: 'dist/webviews',
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: !production,
    minify: production,
    loader: { '.css': 'css' },
    logLevel: 'warning',
  },
];

const present = targets.filter((t) => Object.values(t.entryPoints).every((f) => existsSync(f)));
if (watch) {
  const { context } = await import('esbuild');
  for (const t of present) await (await context(t)).watch();
} else {
  await Promise.all(present.map((t) => build(t)));
}
