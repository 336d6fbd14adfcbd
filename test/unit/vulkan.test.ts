/**
 * What a WebGPU fallback says on Linux when ONNX Runtime found no adapter (model/vulkan.ts): the
 * Vulkan loader, the driver's ICD file and NVIDIA's libGLdispatch, looked up in a fake root the way
 * the Vulkan loader and the dynamic linker look them up; and that a real fallback line carries it.
 * And `auto` passing over WebGPU where Vulkan finds only software drivers (lavapipe, SwiftShader),
 * or where no device node is a GPU's (a VM's virtual display, a server's BMC chip).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { loadModel } from '../../server/engine/model';
import { findVulkan, linuxGpus, noAdapterHint, noGpuReason, softwareOnlyDrivers, softwareOnlyReason } from '../../server/engine/model/vulkan';
import { tinyClassifier, writeModel } from './helpers/onnx-builder';

/** A fake root holding `files` (paths relative to it), and an env whose home is inside it. */
function fakeRoot(t: { after: (fn: () => void) => void }, files: string[]): { root: string; env: Record<string, string> } {
  const root = mkdtempSync(join(tmpdir(), 'skeptic-vulkan-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const f of files) {
    mkdirSync(dirname(join(root, f)), { recursive: true });
    writeFileSync(join(root, f), f.endsWith('.conf') ? '' : '{}');
  }
  return { root, env: { HOME: join(root, 'home/me') } };
}

test('no loader: the hint names libvulkan1', (t) => {
  const { root, env } = fakeRoot(t, ['usr/share/vulkan/icd.d/nvidia_icd.json']);
  const s = findVulkan(env, root, 'x64');
  assert.equal(s.loader, undefined);
  assert.deepEqual(s.icds, [join(root, 'usr/share/vulkan/icd.d/nvidia_icd.json')]);
  assert.match(noAdapterHint(s), /the Vulkan loader \(libvulkan\.so\.1\) is not installed \(Debian\/Ubuntu: apt-get install libvulkan1; README "GPU"\)/);
});

test('a loader and no ICD file: the hint lists where the loader looked and says what NVIDIA ships', (t) => {
  const { root, env } = fakeRoot(t, ['usr/lib/x86_64-linux-gnu/libvulkan.so.1']);
  const s = findVulkan(env, root, 'x64');
  assert.equal(s.loader, join(root, 'usr/lib/x86_64-linux-gnu/libvulkan.so.1'));
  assert.deepEqual(s.icds, []);
  // the loader's order: XDG config home, config dirs, /etc, data home, data dirs
  assert.deepEqual(s.icdPlaces, [
    join(root, 'home/me/.config/vulkan/icd.d'), join(root, 'etc/xdg/vulkan/icd.d'), join(root, 'etc/vulkan/icd.d'),
    join(root, 'home/me/.local/share/vulkan/icd.d'), join(root, 'usr/local/share/vulkan/icd.d'), join(root, 'usr/share/vulkan/icd.d'),
  ]);
  const hint = noAdapterHint(s);
  assert.match(hint, /^no Vulkan driver file \(ICD, a \.json naming the GPU driver's library\): none in /);
  assert.ok(hint.includes(join(root, 'usr/share/vulkan/icd.d')), hint);
  assert.match(hint, /NVIDIA's driver ships nvidia_icd\.json \(in a container, mount it and set VK_DRIVER_FILES to it/);
  // the loader under the other architecture's folder is not this machine's
  assert.equal(findVulkan(env, root, 'arm64').loader, undefined);
});

test("an NVIDIA ICD file without libGLdispatch: the hint names libglvnd0; found through ld.so.conf.d, it does not", (t) => {
  const { root, env } = fakeRoot(t, ['lib64/libvulkan.so.1', 'etc/vulkan/icd.d/nvidia_icd.json', 'etc/vulkan/icd.d/notes.txt']);
  let s = findVulkan(env, root, 'x64');
  assert.deepEqual(s.icds, [join(root, 'etc/vulkan/icd.d/nvidia_icd.json')]);
  assert.equal(s.glDispatch, undefined);
  assert.equal(noAdapterHint(s), `Vulkan driver files nvidia_icd.json gave no adapter; NVIDIA's Vulkan driver also needs libGLdispatch.so.0, which is not installed (Debian/Ubuntu: apt-get install libglvnd0) (README "GPU")`);
  // NVIDIA's container images list the driver's folder in ld.so.conf.d
  mkdirSync(join(root, 'opt/nvidia/lib'), { recursive: true });
  writeFileSync(join(root, 'opt/nvidia/lib/libGLdispatch.so.0'), '');
  mkdirSync(join(root, 'etc/ld.so.conf.d'), { recursive: true });
  writeFileSync(join(root, 'etc/ld.so.conf.d/nvidia.conf'), '# the driver\n/opt/nvidia/lib\n');
  s = findVulkan(env, root, 'x64');
  assert.equal(s.glDispatch, join(root, 'opt/nvidia/lib/libGLdispatch.so.0'));
  assert.equal(noAdapterHint(s), 'Vulkan driver files nvidia_icd.json gave no adapter (README "GPU")');
  // LD_LIBRARY_PATH is searched first
  mkdirSync(join(root, 'mine'));
  writeFileSync(join(root, 'mine/libvulkan.so.1'), '');
  assert.equal(findVulkan({ ...env, LD_LIBRARY_PATH: join(root, 'mine') }, root, 'x64').loader, join(root, 'mine/libvulkan.so.1'));
});

test('VK_DRIVER_FILES replaces the search (files and folders); VK_ADD_DRIVER_FILES adds to it', (t) => {
  const { root, env } = fakeRoot(t, ['usr/lib/libvulkan.so.1', 'usr/share/vulkan/icd.d/lvp_icd.x86_64.json', 'drivers/nvidia_icd.json', 'more/a.json', 'more/b.json']);
  const missing = join(root, 'nowhere/nvidia_icd.json');
  let s = findVulkan({ ...env, VK_DRIVER_FILES: missing }, root, 'x64');
  assert.equal(s.fromEnv, true);
  assert.deepEqual(s.icds, []);
  assert.match(noAdapterHint(s), new RegExp(`VK_DRIVER_FILES names none that exists \\(${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));
  s = findVulkan({ ...env, VK_DRIVER_FILES: `${join(root, 'drivers/nvidia_icd.json')}:${join(root, 'more')}` }, root, 'x64');
  assert.deepEqual(s.icds.map((f) => f.slice(root.length)), ['/drivers/nvidia_icd.json', '/more/a.json', '/more/b.json']);
  // the older name works the same
  assert.deepEqual(findVulkan({ ...env, VK_ICD_FILENAMES: join(root, 'drivers/nvidia_icd.json') }, root, 'x64').icds, [join(root, 'drivers/nvidia_icd.json')]);
  s = findVulkan({ ...env, VK_ADD_DRIVER_FILES: join(root, 'drivers') }, root, 'x64');
  assert.deepEqual(s.icds.map((f) => f.slice(root.length)), ['/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/drivers/nvidia_icd.json']);
  assert.equal(noAdapterHint(s), 'Vulkan driver files lvp_icd.x86_64.json, nvidia_icd.json gave no adapter; NVIDIA\'s Vulkan driver also needs libGLdispatch.so.0, which is not installed (Debian/Ubuntu: apt-get install libglvnd0) (README "GPU")');
});

test('on Linux, a WebGPU that finds no adapter falls back with what the Vulkan setup lacks', async (t) => {
  if (process.platform !== 'linux') return t.skip('Linux only');
  const m = await loadModel(writeModel(tinyClassifier().spec), { device: 'webgpu' });
  try {
    if (m.device.used === 'webgpu') return t.skip('WebGPU found an adapter on this machine');
    const line = m.device.fallbacks.find((f) => f.startsWith('webgpu: '))!;
    if (!/adapter/i.test(line.split(';')[0])) return t.skip(`WebGPU failed otherwise: ${line}`);
    assert.ok(line.endsWith(`; ${noAdapterHint(findVulkan())}`), line);
  } finally {
    await m.dispose();
  }
});

/** An ICD file naming `library`. */
function icd(root: string, path: string, library: string): string {
  const f = join(root, path);
  mkdirSync(dirname(f), { recursive: true });
  writeFileSync(f, JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: library, api_version: '1.3.0' } }));
  return f;
}

test("software Vulkan drivers are told from hardware ones by the ICD's name or its library", (t) => {
  const { root, env } = fakeRoot(t, ['usr/lib/x86_64-linux-gnu/libvulkan.so.1']);
  const at = (e: Record<string, string>) => softwareOnlyDrivers(findVulkan({ ...env, ...e }, root, 'x64'));
  assert.equal(softwareOnlyDrivers(findVulkan(env, root, 'x64')), undefined, 'no driver at all: nothing to pass over (the attempt says what is missing)');
  icd(root, 'usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so');
  assert.deepEqual(softwareOnlyDrivers(findVulkan(env, root, 'x64')), ['lvp_icd.x86_64.json']);
  // SwiftShader under a name that does not say so: its library does
  const sw = icd(root, 'chromium/icd.json', './libvk_swiftshader.so');
  assert.deepEqual(at({ VK_DRIVER_FILES: sw }), ['icd.json']);
  // a hardware driver beside them: WebGPU is worth trying (Dawn asks for the high-performance adapter)
  const nv = icd(root, 'nvidia/nvidia_icd.json', 'libGLX_nvidia.so.0');
  assert.equal(at({ VK_ADD_DRIVER_FILES: nv }), undefined);
  assert.equal(at({ VK_DRIVER_FILES: `${sw}:${nv}` }), undefined);
  // an unreadable ICD file is not taken for a software one
  const broken = join(root, 'broken/radeon_icd.json');
  mkdirSync(dirname(broken));
  writeFileSync(broken, '{');
  assert.equal(at({ VK_DRIVER_FILES: `${sw}:${broken}` }), undefined);
});

test("device 'auto' passes over WebGPU where Vulkan finds only software drivers, saying why; asked for by name, WebGPU is tried", (t) => {
  if (process.platform !== 'linux') return t.skip('Linux only');
  const { root } = fakeRoot(t, []);
  const sw = icd(root, 'vk_swiftshader_icd.json', join(root, 'libvk_swiftshader.so'));
  const model = writeModel(tinyClassifier().spec);
  // a fresh process each: the providers a process found unavailable are remembered
  const load = (device: string) => {
    const code = `import('${join(__dirname, '../../server/engine/model/index.ts').replace(/\\/g, '/')}').then(async (mod) => { const { loadModel } = mod.loadModel ? mod : mod.default; const m = await loadModel(${JSON.stringify(model)}, { device: '${device}' }); console.log(JSON.stringify(m.device)); await m.dispose(); })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { encoding: 'utf8', env: { ...process.env, VK_DRIVER_FILES: sw, VK_ICD_FILENAMES: '' }, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { used: string; fallbacks: string[] };
  };
  const auto = load('auto');
  assert.equal(auto.used, 'cpu');
  const line = auto.fallbacks.find((f) => f.startsWith('webgpu: '));
  assert.equal(line, `webgpu: the only Vulkan drivers here are software renderers (vk_swiftshader_icd.json), far slower than the CPU provider; if this machine has a GPU, point VK_DRIVER_FILES at its driver's ICD file (README "GPU"), or ask for --device webgpu to try anyway`);
  // by name it is tried: the fake driver's library does not exist, so Dawn finds no adapter
  const asked = load('webgpu');
  assert.equal(asked.used, 'cpu');
  const tried = asked.fallbacks.find((f) => f.startsWith('webgpu: '))!;
  assert.doesNotMatch(tried, /software renderers/);
  assert.match(tried, /adapter/i);
});

test("an ICD file the loader does not look for, where NVIDIA's container mounts leave it: the hints name it and the export that uses it", (t) => {
  const { root, env } = fakeRoot(t, ['usr/lib/x86_64-linux-gnu/libvulkan.so.1', 'usr/lib/x86_64-linux-gnu/libGLdispatch.so.0']);
  const nv = icd(root, 'usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json', 'libGLX_nvidia.so.0');
  let s = findVulkan(env, root, 'x64');
  assert.deepEqual(s.icds, []);
  assert.deepEqual(s.aside, [nv]);
  assert.match(noAdapterHint(s), new RegExp(`^no Vulkan driver file where the loader looks \\(none in .+\\), but the GPU driver's is at ${nv.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: export VK_DRIVER_FILES=`));
  assert.ok(noAdapterHint(s).endsWith(`export VK_DRIVER_FILES=${nv} (README "GPU")`), noAdapterHint(s));
  // with only lavapipe where the loader looks, auto passes over WebGPU and names the export
  icd(root, 'usr/share/vulkan/icd.d/lvp_icd.x86_64.json', 'libvulkan_lvp.so');
  s = findVulkan(env, root, 'x64');
  assert.equal(softwareOnlyReason(s), `the only Vulkan drivers here are software renderers (lvp_icd.x86_64.json), far slower than the CPU provider; this machine's GPU driver has one at ${nv}: export VK_DRIVER_FILES=${nv} (README "GPU"), or ask for --device webgpu to try anyway`);
  // once VK_DRIVER_FILES names it, the loader finds it: nothing against WebGPU, and a failure says the driver gave no adapter
  s = findVulkan({ ...env, VK_DRIVER_FILES: nv }, root, 'x64');
  assert.deepEqual(s.icds, [nv]);
  assert.deepEqual(s.aside, []);
  assert.equal(softwareOnlyReason(s), undefined);
  assert.equal(noAdapterHint(s), 'Vulkan driver files nvidia_icd.json gave no adapter (README "GPU")');
});

/** A fake /dev and /sys with `nodes` (device files under /dev) and DRM render nodes bound to drivers (null: no sysfs entry). */
function devices(t: { after: (fn: () => void) => void }, nodes: string[], render: Record<string, string | null>): string {
  const { root } = fakeRoot(t, nodes.map((n) => `dev/${n}`));
  for (const [node, driver] of Object.entries(render)) {
    mkdirSync(join(root, 'dev/dri'), { recursive: true });
    writeFileSync(join(root, 'dev/dri', node), '');
    if (driver === null) continue;
    // as sysfs has it: class/drm/<node>/device/driver -> …/bus/pci/drivers/<driver>
    const dev = join(root, 'sys/class/drm', node, 'device');
    mkdirSync(dev, { recursive: true });
    mkdirSync(join(root, 'sys/bus/pci/drivers', driver), { recursive: true });
    symlinkSync(join(root, 'sys/bus/pci/drivers', driver), join(dev, 'driver'));
  }
  return root;
}

test('GPU device nodes: NVIDIA\'s and the render nodes of GPU drivers count; a VM\'s virtual display and a BMC\'s chip do not; a card node alone does not', (t) => {
  assert.deepEqual(linuxGpus(devices(t, [], {})), { gpus: [], others: [] });
  // NVIDIA: the numbered device nodes, not the control nodes beside them
  assert.deepEqual(linuxGpus(devices(t, ['nvidia0', 'nvidia1', 'nvidiactl', 'nvidia-uvm'], {})), { gpus: ['nvidia0', 'nvidia1'], others: [] });
  assert.deepEqual(linuxGpus(devices(t, ['nvidiactl'], {})), { gpus: [], others: [] });
  assert.deepEqual(linuxGpus(devices(t, [], { renderD128: 'i915', renderD129: 'amdgpu' })), { gpus: ['renderD128 (i915)', 'renderD129 (amdgpu)'], others: [] });
  const vm = linuxGpus(devices(t, [], { renderD128: 'virtio-pci' }));
  assert.deepEqual(vm, { gpus: [], others: ['renderD128 (virtio-pci)'] });
  assert.equal(noGpuReason(vm), 'no GPU device on this machine (no /dev/nvidiaN, no /dev/dri render node of a GPU driver; its render nodes are not GPUs: renderD128 (virtio-pci)); ask for --device webgpu to try anyway');
  assert.equal(noGpuReason({ gpus: [], others: [] }), 'no GPU device on this machine (no /dev/nvidiaN, no /dev/dri render node of a GPU driver); ask for --device webgpu to try anyway');
  assert.equal(noGpuReason({ gpus: ['nvidia0'], others: ['renderD128 (ast)'] }), undefined);
  assert.deepEqual(linuxGpus(devices(t, [], { renderD128: 'ast', renderD129: 'amdgpu' })), { gpus: ['renderD129 (amdgpu)'], others: ['renderD128 (ast)'] });
  // a driver that cannot be read: the attempt decides
  assert.deepEqual(linuxGpus(devices(t, [], { renderD128: null })), { gpus: ['renderD128'], others: [] });
  // simpledrm and the like make a card node and no render node
  const card = devices(t, [], {});
  mkdirSync(join(card, 'dev/dri'), { recursive: true });
  writeFileSync(join(card, 'dev/dri/card0'), '');
  assert.deepEqual(linuxGpus(card), { gpus: [], others: [] });
});
