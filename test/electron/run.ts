/**
 * The @vscode/test-electron suite: VS Code's desktop build with this checkout as the extension
 * under development, running test/electron/suite/ (the end-to-end scenario through the extension
 * API) in a fresh copy of the demo workspace. Run it with `npm run test:electron`.
 *
 * It needs VS Code: SKEPTIC_VSCODE_EXECUTABLE (a VS Code binary), or a download from
 * update.code.visualstudio.com, cached under $SKEPTIC_E2E_CACHE/vscode (default
 * ~/.cache/skeptic-e2e); SKEPTIC_VSCODE_VERSION picks the version (default: stable). Where VS Code
 * can be neither found nor downloaded, or there is no display (and no xvfb-run to make one), the
 * suite is skipped with the reason and exits 0. SKEPTIC_SKIP_ELECTRON=1 skips it outright.
 * Machines without a download path are covered by the code-server suite (npm run test:e2e).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const CACHE = join(process.env.SKEPTIC_E2E_CACHE ?? join(homedir(), '.cache/skeptic-e2e'), 'vscode');
const VERSION = process.env.SKEPTIC_VSCODE_VERSION ?? 'stable';
const PROBE_URL = 'https://update.code.visualstudio.com/api/releases/stable';
const PROBE_TIMEOUT_MS = 8_000;

function skip(reason: string): never {
  console.log(`# electron suite skipped: ${reason}`);
  process.exit(0);
}

/** Why VS Code cannot be had here, or undefined. */
async function noVSCode(): Promise<string | undefined> {
  const exe = process.env.SKEPTIC_VSCODE_EXECUTABLE;
  if (exe) return existsSync(exe) ? undefined : `SKEPTIC_VSCODE_EXECUTABLE=${exe} does not exist`;
  // A pinned version that is already in the cache needs no network.
  if (VERSION !== 'stable' && VERSION !== 'insiders' && existsSync(CACHE) && readdirSync(CACHE).some((d) => d.includes(VERSION))) return undefined;
  try {
    const r = await fetch(PROBE_URL, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    if (!r.ok) return `${PROBE_URL} answered ${r.status}`;
    await r.arrayBuffer();
    return undefined;
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    return `VS Code cannot be downloaded here (${PROBE_URL}: ${err.cause?.code ?? err.cause?.message ?? err.message}); set SKEPTIC_VSCODE_EXECUTABLE to a VS Code binary, or run the code-server suite: npm run test:e2e`;
  }
}

async function main(): Promise<void> {
  if (process.env.SKEPTIC_SKIP_ELECTRON === '1') skip('SKEPTIC_SKIP_ELECTRON=1');
  const why = await noVSCode();
  if (why) skip(why);

  // Electron needs a display: make one with xvfb-run where there is none.
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
    if (spawnSync('sh', ['-c', 'command -v xvfb-run'], { encoding: 'utf8' }).status !== 0) skip('no display and no xvfb-run (apt-get install -y xvfb)');
    const r = spawnSync('xvfb-run', ['-a', process.execPath, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }

  const { runTests, downloadAndUnzipVSCode } = await import('@vscode/test-electron');
  const { build } = await import('esbuild');
  const { makeWorkspace } = await import('../e2e/workspace');

  // The extension as the checkout builds it (dist/), and the suite bundled for the extension host.
  const b = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, stdio: 'inherit' });
  if (b.status !== 0) throw new Error('npm run build failed');
  const out = join(ROOT, 'test-output/electron');
  mkdirSync(out, { recursive: true });
  const suite = join(out, 'suite.js');
  await build({ entryPoints: [join(__dirname, 'suite/index.ts')], outfile: suite, bundle: true, platform: 'node', format: 'cjs', target: 'node20', external: ['vscode'], logLevel: 'warning' });

  const run = mkdtempSync(join(tmpdir(), 'skeptic-electron-'));
  const ws = join(run, 'workspace');
  makeWorkspace(ws, { configured: true });
  try {
    const vscodeExecutablePath = process.env.SKEPTIC_VSCODE_EXECUTABLE ?? (await downloadAndUnzipVSCode({ version: VERSION, cachePath: CACHE, timeout: 120_000 }));
    const code = await runTests({
      vscodeExecutablePath,
      extensionDevelopmentPath: ROOT,
      extensionTestsPath: suite,
      launchArgs: [
        ws,
        '--disable-extensions',
        '--disable-workspace-trust',
        '--skip-welcome',
        '--skip-release-notes',
        '--disable-telemetry',
        '--user-data-dir', join(run, 'ud'),
        '--extensions-dir', join(run, 'ext'),
        ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      ],
    });
    if (code !== 0) throw new Error(`VS Code exited with ${code}`);
    console.log('electron suite: PASS');
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`electron suite: FAIL: ${(e as Error).message}`);
  process.exit(1);
});
