// Bundles the CLI (and, as they arrive, the daemon, the client and the webviews) with esbuild.
// Native modules stay external: they are loaded from node_modules at run time.
import { build } from 'esbuild';

const external = ['onnxruntime-node', 'sharp'];

await build({
  entryPoints: { cli: 'server/cli.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external,
  logLevel: 'warning',
});
