// esbuild's options for a Node.js bundle of Skeptic's code, shared by scripts/build.mjs (the CLI,
// the daemon, the workers, the extension) and bench/device/pack.mjs (the benchmark for the device
// machine). Native modules (onnxruntime-node, sharp) stay external and load from node_modules at
// run time; `vscode` is provided by the editor.
export function nodeBundle({ production = false } = {}) {
  return {
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: !production,
    minify: production,
    external: ['onnxruntime-node', 'sharp', 'vscode'],
    // jsonc-parser's UMD build hides its requires from bundlers; its ESM build bundles cleanly.
    mainFields: ['module', 'main'],
    logLevel: 'warning',
    // ONNX Runtime's telemetry off before anything loads it (see server/engine/fs/ort-env.ts).
    // "use strict" first: a directive only counts at the top, and esbuild's own one follows the banner.
    banner: { js: "'use strict';\nprocess.env.ORT_DISABLE_TELEMETRY ??= '1';" },
  };
}
