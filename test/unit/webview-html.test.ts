/**
 * The report page's node side (server/engine/report/html.ts) and the webview's pure helpers:
 * the CSP, the report embedded as inert JSON, the nonce, artifact path rules, embedding images at a
 * bounded size, writeReport's html format, and the webview code's own type check (it builds for
 * the browser, with DOM types, so the main tsconfig does not cover it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { artifactPaths, contentSecurityPolicy, embedArtifacts, embedImage, jsonForScript, makeNonce, renderReportHtml, writeHtmlReport } from '../../server/engine/report/html';
import type { Report } from '../../server/engine/report/schema';
import { writeReport } from '../../server/engine/report/write';
import { ArtifactResolver, isDataImage, revealableUris, safeArtifactPath } from '../../webviews/lib/paths';

const ROOT = resolve(__dirname, '../..');
let work: string;
const BUNDLE = { js: '', css: '' };

before(() => {
  work = mkdtempSync(join(tmpdir(), 'skeptic-html-'));
  // A stand-in bundle: these tests are about the page around it (the browser tests use the real one).
  BUNDLE.js = join(work, 'report.js');
  BUNDLE.css = join(work, 'report.css');
  writeFileSync(BUNDLE.js, 'console.log("</script><!-- not the end");\n//# sourceMappingURL=report.js.map\n');
  writeFileSync(BUNDLE.css, 'body{color:red}/* </style> */\n/*# sourceMappingURL=report.css.map */\n');
});
after(() => rmSync(work, { recursive: true, force: true }));

function report(extra: Partial<Report> = {}): Report {
  return {
    schemaVersion: 1,
    tool: { name: 'skeptic', version: '0.1.0', engineVersion: '1' },
    model: { path: 'm.onnx', uri: 'file:///w/m.onnx', inputSize: { channels: 3, height: 32, width: 32 }, numClasses: 4 } as Report['model'],
    device: { requested: 'cpu', used: 'cpu', fallbacks: [] },
    dataset: { path: 'd.csv', uri: 'file:///w/d.csv', kind: 'csv', total: 1, selected: 1, evaluated: 1, sha256: 'x' },
    config: { probes: ['clean'], seed: 0, batchSize: 1, params: {} },
    probes: {},
    findings: [],
    rules: {},
    images: [{ id: 'a.png', uri: 'file:///w/d.csv', path: 'd.csv', line: 2 }],
    warnings: [],
    run: { startedAt: '2025-01-01T00:00:00Z', durationMs: 1, cancelled: false, timingsMs: {}, cache: { hits: 0, misses: 0 } },
    ...extra,
  };
}

test('artifact paths: only plain relative paths inside the report folder', () => {
  for (const ok of ['artifacts/patches/3-shuffle4.png', 'ood/0/image.png', 'a b/c.png']) assert.equal(safeArtifactPath(ok), ok);
  for (const bad of ['', '../x.png', 'a/../../x.png', 'a/..', '..', '/etc/passwd', 'file:///etc/passwd', 'https://x/y.png', 'data:image/png;base64,AA', 'javascript:alert(1)', 'C:/x.png', 'c:\\x.png', 'a\\..\\b.png', 'a//b.png', './a.png', 'a/%2e%2e/b.png', '%2e%2e/x.png', 'a%2fb/../c', 'a\u0000.png', 'a%zz.png', 7, null]) {
    assert.equal(safeArtifactPath(bad), undefined, JSON.stringify(bad));
  }
  const r = new ArtifactResolver('https://w.test/report', { 'a/x.png': 'data:image/png;base64,iVBORw0KGgo=', 'a/evil.png': 'data:text/html;base64,PHNjcmlwdD4=' });
  assert.equal(r.url('a/x.png'), 'data:image/png;base64,iVBORw0KGgo=', 'embedded first');
  assert.equal(r.url('a/evil.png'), 'https://w.test/report/a/evil.png', 'a non-image data: URI is never used');
  assert.equal(r.url('b/c d#.png'), 'https://w.test/report/b/c%20d%23.png');
  assert.equal(r.url('../x.png'), undefined);
  assert.equal(new ArtifactResolver(undefined, {}).url('a/x.png'), undefined, 'no base, nothing embedded: no image');
  assert.equal(isDataImage('data:image/webp;base64,UklGR'), true);
  assert.equal(isDataImage('data:image/svg+xml;base64,PHN2Zz4='), false, 'no SVG (it can carry script)');
});

test('reveal: only file: URIs the report names as subjects', () => {
  const r = report({
    findings: [
      { id: '1', probe: 'p', rule: 'p/r', severity: 'warning', message: 'm', subject: { uri: 'file:///w/d.csv', path: 'd.csv', line: 3 } },
      { id: '2', probe: 'p', rule: 'p/r', severity: 'warning', message: 'm', subject: { uri: 'command:workbench.action.terminal.new', path: 'x' } },
      { id: '3', probe: 'p', rule: 'p/r', severity: 'warning', message: 'm', subject: { uri: 'https://example.com/', path: 'x' } },
    ],
  });
  assert.deepEqual([...revealableUris(r)].sort(), ['file:///w/d.csv', 'file:///w/m.onnx']);
});

test('the report JSON cannot end its <script> element; the page has a strict CSP with the nonce', () => {
  const hostile = '</script><script>alert(1)</script><!-- \u2028\u2029 & >';
  const r = report({ warnings: [hostile], model: { ...report().model, path: hostile } });
  const json = jsonForScript(r);
  assert.doesNotMatch(json, /[<>&\u2028\u2029]/);
  assert.deepEqual(JSON.parse(json), r);

  const nonce = makeNonce();
  const html = renderReportHtml({ report: r, assets: { kind: 'inline', js: readFileSync(BUNDLE.js, 'utf8'), css: readFileSync(BUNDLE.css, 'utf8') }, nonce });
  assert.equal(html.match(/<\/script/gi)?.length, 2, 'exactly the data block and the bundle end a script');
  assert.equal(html.match(/<\/style/gi)?.length, 1);
  assert.equal(html.match(/<script/gi)?.length, 2);
  assert.doesNotMatch(html, /<script>alert/);
  assert.match(html, /<title>Skeptic report: &lt;\/script&gt;/);
  const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)![1].replace(/&#39;/g, "'");
  assert.equal(csp, contentSecurityPolicy(nonce));
  assert.match(csp, /^default-src 'none'; img-src data:; style-src 'nonce-[^']+'; script-src 'nonce-[^']+';/);
  assert.doesNotMatch(csp, /unsafe|https?:|\*/);
  assert.match(html, new RegExp(`<script nonce="${nonce.replace(/[+/=]/g, (c) => `\\${c}`)}">`));

  // VS Code: the bundle and images come from the webview's resource origin; nothing else.
  const vs = renderReportHtml({
    report: r,
    assets: { kind: 'uri', js: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webviews/report.js', css: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webviews/report.css', cspSource: 'https://*.vscode-cdn.net' },
    artifactBase: 'https://file+.vscode-resource.vscode-cdn.net/w/.skeptic/reports/x/',
    nonce,
  });
  assert.match(vs, /img-src data: https:\/\/\*\.vscode-cdn\.net; style-src &#39;nonce-[^&]+&#39; https:\/\/\*\.vscode-cdn\.net; script-src &#39;nonce-[^&]+&#39;;/);
  assert.match(vs, /<script nonce="[^"]+" src="https:\/\/file\+\.vscode-resource\.vscode-cdn\.net\/ext\/dist\/webviews\/report\.js"><\/script>/);
  assert.match(vs, /"artifactBase":"https:\/\/file\+\.vscode-resource\.vscode-cdn\.net\/w\/\.skeptic\/reports\/x\/"/);

  assert.throws(() => renderReportHtml({ report: r, assets: { kind: 'inline', js: '', css: '' }, nonce: 'short' }), /nonce/);
  assert.throws(() => contentSecurityPolicy(nonce, "https://x; script-src 'unsafe-inline'"), /CSP source/);
  // What VS Code itself passes as webview.cspSource (seen in code-server 4.139.1).
  assert.doesNotThrow(() => contentSecurityPolicy(nonce, "'self' https://*.vscode-cdn.net"));
  assert.throws(() => contentSecurityPolicy(nonce, "'self' 'unsafe-inline'"), /CSP source/);
});

async function pngOf(w: number, h: number, scale: number, noise: boolean): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  let s = 7;
  for (let i = 0; i < raw.length; i++) raw[i] = noise ? (s = (s * 1103515245 + 12345) & 0x7fffffff) >> 23 : ((i * 37) % 251);
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).resize(w * scale, h * scale, { kernel: 'nearest' }).png().toBuffer();
}

test('embedded images: exact enlargements go back to native pixels (PNG); large images become WebP of at most 192 px', async () => {
  const opts = { maxSide: 192, keepPngBytes: 12 * 1024, budgetBytes: 1e9, quality: 78 };
  const up = await pngOf(32, 32, 4, true);
  const a = await embedImage(up, opts, { width: 32, height: 32 });
  assert.match(a, /^data:image\/png;base64,/);
  const back = Buffer.from(a.split(',')[1], 'base64');
  const meta = await sharp(back).metadata();
  assert.deepEqual([meta.width, meta.height], [32, 32]);
  const orig = await sharp(up).resize(32, 32, { kernel: 'nearest' }).raw().toBuffer();
  assert.deepEqual(await sharp(back).removeAlpha().raw().toBuffer(), orig, 'lossless');

  const big = await pngOf(400, 300, 1, true);
  const b = await embedImage(big, opts);
  assert.match(b, /^data:image\/webp;base64,/);
  const bm = await sharp(Buffer.from(b.split(',')[1], 'base64')).metadata();
  assert.deepEqual([bm.width, bm.height], [192, 144]);
  assert.ok(Buffer.from(b.split(',')[1], 'base64').length < big.length / 3, 'much smaller than the PNG');

  const small = await pngOf(20, 20, 1, false);
  assert.equal(await embedImage(small, opts), `data:image/png;base64,${small.toString('base64')}`, 'a small PNG stays as it is');
});

test('embedArtifacts reads only files inside the report folder and keeps to its budget', async () => {
  const dir = join(work, 'embed');
  mkdirSync(join(dir, 'artifacts'), { recursive: true });
  const png = await pngOf(32, 32, 4, true);
  for (let i = 0; i < 5; i++) writeFileSync(join(dir, `artifacts/${i}.png`), png);
  writeFileSync(join(work, 'secret.png'), png);
  symlinkSync(join(work, 'secret.png'), join(dir, 'artifacts/link.png'));
  const r = report({
    probes: {
      p: { title: 'P', status: 'ok', params: {}, metrics: {}, count: 3, records: [
        { image: 0, artifacts: ['artifacts/0.png', 'artifacts/1.png', 'artifacts/x.npy'] },
        { image: 0, artifacts: ['artifacts/link.png', '../secret.png', '/etc/hostname', 'artifacts/missing.png'] },
        { image: 0, artifacts: ['artifacts/2.png', 'artifacts/3.png', 'artifacts/4.png'] },
      ] },
    },
    findings: [{ id: 'f', probe: 'p', rule: 'p/r', severity: 'warning', message: 'm', subject: { uri: 'file:///w/d.csv', path: 'd.csv' }, artifacts: ['artifacts/4.png'] }],
  });
  assert.deepEqual(artifactPaths(r), ['artifacts/4.png', 'artifacts/0.png', 'artifacts/1.png', 'artifacts/link.png', 'artifacts/missing.png', 'artifacts/2.png', 'artifacts/3.png'], 'findings first; unsafe paths and non-images dropped');
  const all = await embedArtifacts(r, dir);
  assert.deepEqual(Object.keys(all.artifacts).sort(), ['artifacts/0.png', 'artifacts/1.png', 'artifacts/2.png', 'artifacts/3.png', 'artifacts/4.png']);
  assert.equal(all.omitted, 2, 'the symlink out of the folder and the missing file');
  const one = Object.values(all.artifacts)[0].length;
  const tight = await embedArtifacts(r, dir, { budgetBytes: one * 2 + 10 });
  assert.equal(tight.embedded, 2);
  assert.equal(tight.omitted, 5);
});

test('writeReport: json, sarif and a self-contained report.html; size stays small per image', async () => {
  const dir = join(work, 'size');
  const N = 200;
  mkdirSync(join(dir, 'artifacts/attack'), { recursive: true });
  const records = [];
  for (let i = 0; i < N; i++) {
    // As the probes draw 32-px images: enlarged ×4, nearest neighbour; a noisy perturbation.
    const files = ['original', 'adversarial', 'perturbation'].map((k) => `artifacts/attack/${i}-${k}.png`);
    for (const f of files) writeFileSync(join(dir, f), await pngOf(32, 32, 4, true));
    records.push({ image: 0, artifacts: files });
  }
  const r = report({ probes: { attack: { title: 'Adversarial', status: 'ok', params: {}, metrics: {}, count: N, records } } });
  const files = await writeReport(r, dir, ['json', 'sarif', 'html']);
  assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), ['report.json', 'report.sarif', 'report.html']);
  const size = statSync(join(dir, 'report.html')).size;
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.equal(html.match(/data:image\/png;base64,/g)?.length, 3 * N, 'every artifact embedded');
  // 3·N noisy 32×32 RGB images: ~3 KB of PNG each, a third more as base64.
  assert.ok(size < 3 * N * 5000, `report.html is ${size} bytes for ${3 * N} images`);
  const out = await writeHtmlReport(r, join(work, 'stub'), { bundle: BUNDLE });
  const stub = readFileSync(out, 'utf8');
  assert.doesNotMatch(stub, /sourceMappingURL/, 'no source map reference in the single file');
  assert.match(stub, /console\.log\("<\\\/script><\\!-- not the end"\)/, 'the inlined bundle cannot end its element');
});

test('the webview code type-checks for the browser (tsc -p webviews)', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', join(ROOT, 'webviews/tsconfig.json')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
