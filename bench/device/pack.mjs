// Packs what bench/device/run.sh needs on the `device` machine (bench/README.md, "On a GPU and on
// many cores") into .device/, which git ignores and the device tool's `carry` takes along:
//  - skeptic-device.tar.xz: bench/audit.ts bundled (esbuild, as scripts/build.mjs bundles the CLI)
//    with the views worker beside it, this machine's node binary, the packages it loads at run
//    time (onnxruntime-node for linux/x64 only, onnxruntime-common, sharp and its linux-x64
//    libvips) and the fixtures the benchmark reads (the two target models, the ImageNet samples,
//    MNIST, the labels; ResNet-2B and its CIFAR-10 images, a float model for the GPU), taken from
//    ../shared/fixtures;
//  - gl/*.deb: the Vulkan loader and the GL vendor-neutral libraries from Debian's archive (apt-get
//    download): ONNX Runtime's WebGPU provider (Dawn) needs the loader, and NVIDIA's Vulkan driver
//    (libGLX_nvidia) needs libGLdispatch from libglvnd0; the device image may lack them (the device
//    tool's README names this list); run.sh unpacks there the ones it lacks.
// The machine reaches nothing outside it, so everything goes with the call (64 MiB at most with
// the repository's own files: .device/ is about 57 MiB here, 61 with them). Usage: node bench/device/pack.mjs [--fixtures DIR] [--no-gl]
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { nodeBundle } from '../../scripts/esbuild-node.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { values } = parseArgs({ options: { fixtures: { type: 'string' }, 'no-gl': { type: 'boolean' } } });
const FIXTURES = resolve(values.fixtures ?? process.env.SKEPTIC_FIXTURES ?? join(ROOT, '../shared/fixtures'));
if (!existsSync(FIXTURES)) throw new Error(`no fixtures at ${FIXTURES} (--fixtures DIR)`);
const OUT = join(ROOT, '.device');
const STAGE = join(OUT, 'skeptic-device');
rmSync(OUT, { recursive: true, force: true });
mkdirSync(STAGE, { recursive: true });

// as scripts/build.mjs bundles the CLI, without the source maps (megabytes the device run never reads)
const node = { ...nodeBundle(), sourcemap: false };
await build({ ...node, entryPoints: { 'bench-audit': join(ROOT, 'bench/audit.ts'), 'bench-audit-lanes': join(ROOT, 'bench/audit-lanes.ts') }, outdir: STAGE });
// the engine's worker script, beside the bundle that starts it (views/workers.ts workerScript)
await build({ ...node, entryPoints: { 'views-worker': join(ROOT, 'server/engine/views/cpu-worker.ts'), 'lane-worker': join(ROOT, 'server/engine/shard/lane-worker.ts') }, outdir: STAGE });

// the CLI as a user runs it (bin/skeptic.js over dist/cli.js), its worker scripts beside it
await build({ ...node, entryPoints: { cli: join(ROOT, 'server/cli.ts'), 'views-worker': join(ROOT, 'server/engine/views/cpu-worker.ts'), 'lane-worker': join(ROOT, 'server/engine/shard/lane-worker.ts') }, outdir: join(STAGE, 'dist') });
cpSync(join(ROOT, 'bin/skeptic.js'), join(STAGE, 'bin/skeptic.js'));
cpSync(process.execPath, join(STAGE, 'node'));
const modules = ['onnxruntime-node', 'onnxruntime-common', 'sharp', '@img/colour', '@img/sharp-linux-x64', '@img/sharp-libvips-linux-x64', 'detect-libc', 'semver'];
for (const m of modules) {
  cpSync(join(ROOT, 'node_modules', m), join(STAGE, 'node_modules', m), {
    recursive: true,
    // onnxruntime-node's binaries for other systems stay behind
    filter: (src) => !/onnxruntime-node\/bin\/napi-v\d+\/(darwin|win32|linux\/arm64)/.test(src),
  });
}
for (const f of ['models/mnist-8_onnxzoo_cntk.onnx', 'models/imagenet_mobilenetv2-12-int8.onnx', 'models/cifar10_resnet2b_advtrained.onnx', 'imagenet_samples', 'mnist', 'cifar10_test_first100', 'labels', 'PROVENANCE.md']) {
  cpSync(join(FIXTURES, f), join(STAGE, 'fixtures', f), { recursive: true });
}
execFileSync('tar', ['-cJf', join(OUT, 'skeptic-device.tar.xz'), '-C', OUT, 'skeptic-device'], { stdio: 'inherit', env: { ...process.env, XZ_OPT: '-6 -T0' } });
rmSync(STAGE, { recursive: true, force: true });

if (!values['no-gl']) {
  mkdirSync(join(OUT, 'gl'), { recursive: true });
  try {
    execFileSync('apt-get', ['download', 'libvulkan1', 'libglvnd0', 'libegl1', 'libgl1', 'libglx0', 'libopengl0', 'libgles2'], { cwd: join(OUT, 'gl'), stdio: 'inherit' });
  } catch (e) {
    console.error(`could not download the Vulkan loader and GL libraries (${e.message.split('\n')[0]}): run.sh will use the device's own, if any`);
  }
}
const size = (p) => (statSync(p).isDirectory() ? readdirSync(p).reduce((a, f) => a + size(join(p, f)), 0) : statSync(p).size);
console.log(`.device/: ${(size(OUT) / 2 ** 20).toFixed(1)} MiB (the device tool carries at most 64 MiB)`);
