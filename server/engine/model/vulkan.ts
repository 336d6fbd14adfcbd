/**
 * Why ONNX Runtime's WebGPU provider found no GPU adapter on Linux, told as what to install or set.
 * Dawn reaches the GPU through Vulkan. That needs the Vulkan loader (libvulkan.so.1) and a
 * driver's ICD file, a JSON naming the driver's library, where the loader looks for one. NVIDIA's
 * driver library (libGLX_nvidia) also loads libglvnd's libGLdispatch. All three were what an
 * NVIDIA H200 in a container lacked before WebGPU started there (bench/README.md, nineteenth
 * pass); ORT itself only says "No supported adapters".
 *
 * The places are the Vulkan loader's documented search order on Linux: VK_DRIVER_FILES (or the
 * older VK_ICD_FILENAMES) replaces the search, VK_ADD_DRIVER_FILES adds to it, otherwise the XDG
 * config and data folders' vulkan/icd.d plus /etc/vulkan/icd.d. Reads the file system only: no
 * process is started and nothing is loaded.
 *
 * The same lookup tells `--device auto` when every driver the loader would find is a software one
 * (softwareOnlyReason), where WebGPU would run on the CPU.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

export interface VulkanSetup {
  /** Where libvulkan.so.1 was found (undefined: nowhere this looks). */
  loader?: string;
  /** The ICD files the loader would read. */
  icds: string[];
  /** Folders searched for ICD files (for the message). */
  icdPlaces: string[];
  /** Whether the ICD search was replaced by VK_DRIVER_FILES / VK_ICD_FILENAMES. */
  fromEnv: boolean;
  /** Where libGLdispatch.so.0 was found (undefined: nowhere this looks). */
  glDispatch?: string;
  /** ICD files where the loader does not look but a GPU driver is known to leave them (DRIVER_ASIDE). */
  aside: string[];
}

/**
 * Folders outside the loader's search where a GPU driver's ICD file turns up: the NVIDIA driver
 * mounted into a GPU container (seen on the device machine's H200, bench/README.md nineteenth
 * pass). The loader needs VK_DRIVER_FILES to find it there.
 */
const DRIVER_ASIDE = ['/usr/local/nvidia/share/vulkan/icd.d'];

type Env = Record<string, string | undefined>;

const TRIPLETS: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf', ppc64: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu', riscv64: 'riscv64-linux-gnu' };

/** Folders the dynamic linker searches, in the usual order (LD_LIBRARY_PATH, then the system's); `root` prefixes the system's. */
function libraryDirs(env: Env, root: string, arch: string): string[] {
  const triplet = TRIPLETS[arch];
  const system = [
    ...(triplet ? [`/usr/lib/${triplet}`, `/lib/${triplet}`, `/usr/local/lib/${triplet}`] : []),
    '/usr/lib64', '/lib64', '/usr/lib', '/lib', '/usr/local/lib',
  ].map((d) => join(root, d));
  return [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...system, ...ldSoConfDirs(root)];
}

/** The folders /etc/ld.so.conf and /etc/ld.so.conf.d/*.conf add (NVIDIA's container images put the driver's libraries in one). */
function ldSoConfDirs(root: string): string[] {
  const confDir = join(root, '/etc/ld.so.conf.d');
  let files = [join(root, '/etc/ld.so.conf')];
  try {
    files = files.concat(readdirSync(confDir).filter((f) => f.endsWith('.conf')).sort().map((f) => join(confDir, f)));
  } catch {
    // no ld.so.conf.d
  }
  return files.flatMap((f) => {
    try {
      return readFileSync(f, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/')).map((d) => join(root, d));
    } catch {
      return [];
    }
  });
}

function findLibrary(name: string, dirs: string[]): string | undefined {
  return dirs.map((d) => join(d, name)).find((f) => existsSync(f));
}

function jsonFilesIn(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => join(dir, f));
  } catch {
    return [];
  }
}

/** A list of files and folders, as the loader's variables take it: each folder's JSON files, each existing file. */
function filesOf(list: string): string[] {
  return list.split(':').filter(Boolean).flatMap((p) => {
    try {
      return statSync(p).isDirectory() ? jsonFilesIn(p) : [p];
    } catch {
      return [];
    }
  });
}

/** What this machine has of a Vulkan setup. `root` prefixes the system folders (for the tests). */
export function findVulkan(env: Env = process.env, root = '/', arch: string = process.arch): VulkanSetup {
  const libs = libraryDirs(env, root, arch);
  const loader = findLibrary('libvulkan.so.1', libs);
  const glDispatch = findLibrary('libGLdispatch.so.0', libs);
  const replaced = env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES;
  const { icds, icdPlaces } = replaced ? { icds: filesOf(replaced), icdPlaces: replaced.split(':').filter(Boolean) } : searchedIcds(env, root);
  const aside = DRIVER_ASIDE.flatMap((d) => jsonFilesIn(join(root, d))).filter((f) => !icds.includes(f));
  return { loader, glDispatch, aside, icds, icdPlaces, fromEnv: !!replaced };
}

/** The ICD files the loader finds by its own search (no VK_DRIVER_FILES), and the folders it searches. */
function searchedIcds(env: Env, root: string): { icds: string[]; icdPlaces: string[] } {
  const home = env.HOME;
  const configHome = env.XDG_CONFIG_HOME || (home ? join(home, '.config') : undefined);
  const dataHome = env.XDG_DATA_HOME || (home ? join(home, '.local/share') : undefined);
  const configDirs = (env.XDG_CONFIG_DIRS || join(root, '/etc/xdg')).split(':').filter(Boolean);
  const dataDirs = (env.XDG_DATA_DIRS || `${join(root, '/usr/local/share')}:${join(root, '/usr/share')}`).split(':').filter(Boolean);
  const places = [
    ...(configHome ? [configHome] : []), ...configDirs, join(root, '/etc'),
    ...(dataHome ? [dataHome] : []), ...dataDirs,
  ].map((d) => join(d, 'vulkan/icd.d'));
  const unique = [...new Set(places)];
  return { icds: [...unique.flatMap(jsonFilesIn), ...filesOf(env.VK_ADD_DRIVER_FILES ?? '')], icdPlaces: unique };
}

/** What to install or set, for a WebGPU provider that found no adapter on a machine with this setup. */
export function noAdapterHint(setup: VulkanSetup): string {
  const readme = 'README "GPU"';
  if (!setup.loader) return `WebGPU reaches the GPU through Vulkan, and the Vulkan loader (libvulkan.so.1) is not installed (Debian/Ubuntu: apt-get install libvulkan1; ${readme})`;
  if (!setup.icds.length) {
    const where = setup.fromEnv ? `VK_DRIVER_FILES names none that exists (${setup.icdPlaces.join(', ')})` : `none in ${setup.icdPlaces.join(', ')}`;
    if (setup.aside.length) return `no Vulkan driver file where the loader looks (${where}), but the GPU driver's is at ${setup.aside.join(', ')}: export VK_DRIVER_FILES=${setup.aside.join(':')} (${readme})`;
    return `no Vulkan driver file (ICD, a .json naming the GPU driver's library): ${where}. The GPU driver's Vulkan part is not installed or not visible here; NVIDIA's driver ships nvidia_icd.json (in a container, mount it and set VK_DRIVER_FILES to it; ${readme})`;
  }
  const names = setup.icds.map((f) => basename(f));
  const nvidia = names.some((n) => /nvidia/i.test(n));
  const glvnd = nvidia && !setup.glDispatch ? `; NVIDIA's Vulkan driver also needs libGLdispatch.so.0, which is not installed (Debian/Ubuntu: apt-get install libglvnd0)` : '';
  return `Vulkan driver files ${names.join(', ')} gave no adapter${glvnd} (${readme})`;
}

/** Vulkan drivers that run on the CPU: Mesa's lavapipe (llvmpipe) and Google's SwiftShader. */
const SOFTWARE_DRIVER = /lvp|lavapipe|llvmpipe|swiftshader/i;

/** The library an ICD file names ('' when it cannot be read). */
function icdLibrary(file: string): string {
  try {
    const icd = JSON.parse(readFileSync(file, 'utf8')) as { ICD?: { library_path?: unknown } };
    return typeof icd.ICD?.library_path === 'string' ? icd.ICD.library_path : '';
  } catch {
    return '';
  }
}

/**
 * The ICD files' names when every driver the loader would find runs on the CPU (undefined when
 * there is none, or a hardware one). WebGPU over such a driver starts and gives the CPU's results,
 * only far slower than ONNX Runtime's CPU provider (SwiftShader: a 40-image audit of the demo
 * model 129 s against 1.7 s, bench/README.md eighteenth pass), so `auto` should not pick it.
 */
export function softwareOnlyDrivers(setup: VulkanSetup): string[] | undefined {
  if (!setup.icds.length) return undefined;
  const soft = setup.icds.every((f) => SOFTWARE_DRIVER.test(basename(f)) || SOFTWARE_DRIVER.test(icdLibrary(f)));
  return soft ? setup.icds.map((f) => basename(f)) : undefined;
}

/** Why `auto` should pass over WebGPU on a machine with this setup (undefined: nothing against it). */
export function softwareOnlyReason(setup: VulkanSetup): string | undefined {
  const software = softwareOnlyDrivers(setup);
  if (!software) return undefined;
  const gpu = setup.aside.length
    ? `this machine's GPU driver has one at ${setup.aside.join(', ')}: export VK_DRIVER_FILES=${setup.aside.join(':')}`
    : "if this machine has a GPU, point VK_DRIVER_FILES at its driver's ICD file";
  return `the only Vulkan drivers here are software renderers (${software.join(', ')}), far slower than the CPU provider; ${gpu} (README "GPU"), or ask for --device webgpu to try anyway`;
}

/**
 * Kernel DRM drivers whose render nodes have no GPU that Vulkan computes on: virtual ones (a VM's
 * virtio, QEMU's and VMware's display adapters, vgem, vkms) and servers' display-only chips (a
 * BMC's ASPEED or Matrox). Only Mesa's lavapipe, on the CPU, would answer WebGPU there.
 */
const NOT_A_GPU = new Set(['vgem', 'vkms', 'simpledrm', 'simple-framebuffer', 'efifb', 'bochs', 'bochs-drm', 'cirrus', 'cirrus-qemu', 'qxl', 'virtio-pci', 'virtio_gpu', 'vboxvideo', 'vmwgfx', 'hyperv_drm', 'udl', 'ast', 'mgag200']);

/**
 * The machine's GPUs as Vulkan would see them (Linux): NVIDIA's device nodes (/dev/nvidiaN) and
 * the DRM render nodes (/dev/dri/renderD*) of a driver not in NOT_A_GPU, each with its driver;
 * `others`: the render nodes that are not GPUs. A render node whose driver cannot be read counts
 * as a GPU (the attempt decides). `root` prefixes /dev and /sys (for the tests).
 */
export function linuxGpus(root = '/'): { gpus: string[]; others: string[] } {
  const gpus: string[] = [];
  const others: string[] = [];
  try {
    gpus.push(...readdirSync(join(root, '/dev')).filter((f) => /^nvidia\d+$/.test(f)).sort());
  } catch {
    // no /dev
  }
  let nodes: string[] = [];
  try {
    nodes = readdirSync(join(root, '/dev/dri')).filter((f) => f.startsWith('renderD')).sort();
  } catch {
    // no /dev/dri
  }
  for (const node of nodes) {
    let driver = '';
    try {
      driver = basename(readlinkSync(join(root, '/sys/class/drm', node, 'device/driver')));
    } catch {
      // sysfs not readable: cannot tell
    }
    (NOT_A_GPU.has(driver) ? others : gpus).push(driver ? `${node} (${driver})` : node);
  }
  return { gpus, others };
}

/** Why `auto` should pass over WebGPU on a machine with these device nodes (undefined: it has a GPU). */
export function noGpuReason(devices: { gpus: string[]; others: string[] }): string | undefined {
  if (devices.gpus.length) return undefined;
  const others = devices.others.length ? `; its render nodes are not GPUs: ${devices.others.join(', ')}` : '';
  return `no GPU device on this machine (no /dev/nvidiaN, no /dev/dri render node of a GPU driver${others}); ask for --device webgpu to try anyway`;
}
