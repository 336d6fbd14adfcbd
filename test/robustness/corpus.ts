/**
 * The hostile-input corpus: bad models, images, manifests, skeptic.json files, flags and output
 * locations, generated at test time in a temporary folder (nothing binary lives in the repo).
 * Each case is a `skeptic` command line and the outcome it must have:
 *
 * - refuse: exit 2, and the first stderr line says "skeptic: " and names the file / key / flag
 *   (every string in `says` appears in it);
 * - item:   the audit runs (exit 0) and the bad item gets an error finding of one of `rules`
 *   whose message contains `says`, while the good items are evaluated;
 * - model:  the audit runs and a finding of `rules` is on the model;
 * - ok:     exit 0 (a harmless oddity), `says` in stderr when given.
 *
 * `unread` lists dataset items (record ids) that lead outside the dataset's root: the report must
 * hold no hash for them (a hash means their bytes were read). The runner (run-cases.ts) runs the
 * cases in-process through the CLI's main(); robustness.test.ts drives it with a time limit.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { buildModel, node, seeded, tensor, tinyClassifier } from '../unit/helpers/onnx-builder';
import { DEMO, DEMO_MODEL } from '../unit/helpers/demo';

export type Expect = 'refuse' | 'item' | 'model' | 'ok';

export interface Case {
  name: string;
  group: 'models' | 'images' | 'manifests' | 'configs' | 'flags' | 'outputs';
  args: string[];
  cwd: string;
  expect: Expect;
  says?: string[];
  rules?: string[];
  unread?: string[];
}

const CLASSES = ['circle', 'cross', 'square', 'triangle'];

function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

/** A PNG whose header declares `w`×`h` pixels (a decompression bomb's shape), with a tiny body. */
function bombPng(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), chunk('IEND', Buffer.alloc(0))]);
}

/** The tiny 3×8×8 → 4-class linear model, with its bias replaced (NaN, Infinity...). */
function tinyModel(opts: { bias?: number[]; inputShape?: (number | string)[]; classes?: number } = {}): Uint8Array {
  const { spec } = tinyClassifier({ inputShape: opts.inputShape ?? ['N', 3, 8, 8], classes: opts.classes ?? 4, seed: 3 });
  if (opts.bias) spec.initializers![1].data = opts.bias;
  return buildModel(spec);
}

/** x [dims] → GlobalAveragePool → Flatten → Gemm: any declared spatial size, tiny weights. */
function pooledModel(inputShape: (number | string)[]): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', shape: inputShape }],
    outputs: [{ name: 'y', shape: [inputShape[0], 4] }],
    initializers: [tensor('W', [3, 4], seeded(12, 5)), tensor('b', [4], seeded(4, 6))],
    nodes: [node('GlobalAveragePool', ['x'], ['p']), node('Flatten', ['p'], ['f'], { axis: 1 }), node('Gemm', ['f', 'W', 'b'], ['y'])],
  });
}

/** The tiny model with W moved to an external data file `location` (written by the caller). */
function externalModel(kv: Record<string, string>): Uint8Array {
  const m = onnx.ModelProto.decode(tinyModel());
  const w = m.graph!.initializer!.find((t) => t.name === 'W')!;
  w.rawData = new Uint8Array(0);
  w.floatData = [];
  w.dataLocation = 1;
  w.externalData = Object.entries(kv).map(([key, value]) => ({ key, value }));
  return onnx.ModelProto.encode(m).finish();
}

/** Builds every case under `root` (an empty temporary folder). */
export function buildCorpus(root: string): Case[] {
  const cases: Case[] = [];
  const dir = (...p: string[]) => {
    const d = join(root, ...p);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const cwd = dir('cwd');
  writeFileSync(join(cwd, 'skeptic.json'), '{}\n'); // stops the search for a skeptic.json above the corpus
  const out = (name: string) => join(root, 'out', name);
  const demoImages = CLASSES.map((c) => join(DEMO, 'data', 'test', c, readdirFirst(join(DEMO, 'data', 'test', c))));
  const goodPng = demoImages[0];

  // ---- shared data: a clean class-folder set, a manifest beside it, and files outside
  const outside = dir('outside');
  const secret = join(outside, 'secret.png');
  copyFileSync(goodPng, secret);
  mkdirSync(join(outside, 'cls'), { recursive: true });
  copyFileSync(demoImages[1], join(outside, 'cls', 'x.png'));

  /** A fresh class-folder dataset with 2 good images per class; returns its root. */
  const folderSet = (name: string) => {
    const d = dir('sets', name);
    CLASSES.forEach((c, i) => {
      mkdirSync(join(d, c), { recursive: true });
      copyFileSync(demoImages[i], join(d, c, 'a.png'));
      copyFileSync(demoImages[i], join(d, c, 'b.png'));
    });
    return d;
  };
  const model = DEMO_MODEL;
  const audit = (data: string, extra: string[] = [], name = ''): string[] => [
    'audit', model, '--data', data, '--probes', 'clean', '--no-cache', '--quiet', '--out', out(name || data.replace(/[^a-z0-9]+/gi, '_').slice(-60)), ...extra,
  ];
  const add = (c: Omit<Case, 'cwd'> & { cwd?: string }) => cases.push({ cwd, ...c });

  // ================= images: one bad item in an otherwise good class-folder set
  const bad = (name: string, make: (file: string) => void, says: string, rules = ['data/unreadable-image', 'data/unusable-item'], file = 'bad.png', unread?: string[]) => {
    const d = folderSet(`img-${name}`);
    make(join(d, 'circle', file));
    add({ name: `image: ${name}`, group: 'images', args: audit(d, [], `img-${name}`), expect: 'item', says: [says], rules, unread });
  };
  bad('empty', (f) => writeFileSync(f, ''), 'empty');
  bad('text', (f) => writeFileSync(f, 'hello, I am not a PNG\n'), 'circle/bad.png');
  bad('random bytes', (f) => writeFileSync(f, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251))), 'circle/bad.png');
  bad('truncated png', (f) => writeFileSync(f, readFileSync(goodPng).subarray(0, 60)), 'circle/bad.png');
  bad('png header only', (f) => writeFileSync(f, readFileSync(goodPng).subarray(0, 8)), 'circle/bad.png');
  bad('decompression bomb 100000x100000', (f) => writeFileSync(f, bombPng(100000, 100000)), 'circle/bad.png');
  bad('bomb 1x2000000000', (f) => writeFileSync(f, bombPng(1, 2000000000)), 'circle/bad.png');
  bad('zero-size png header', (f) => writeFileSync(f, bombPng(0, 0)), 'circle/bad.png');
  bad('fifo named .png', (f) => mkfifo(f), 'FIFO');
  bad('link to /dev/zero', (f) => symlinkSync('/dev/zero', f), 'device');
  bad('link to /dev/null', (f) => symlinkSync('/dev/null', f), 'device');
  bad('link to /etc/passwd', (f) => symlinkSync('/etc/passwd', f), 'outside', undefined, 'bad.png', ['circle/bad.png']);
  bad('link to an image outside the root', (f) => symlinkSync(secret, f), 'outside', undefined, 'bad.png', ['circle/bad.png']);
  bad('relative link out of the root', (f) => symlinkSync('../../../outside/secret.png', f), 'outside', undefined, 'bad.png', ['circle/bad.png']);
  bad('broken link', (f) => symlinkSync(join(root, 'nowhere.png'), f), 'not found');
  bad('link loop', (f) => symlinkSync(f, f), 'loop');
  bad('bmp (unsupported)', (f) => writeFileSync(f, Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)])), 'circle/bad.bmp', undefined, 'bad.bmp');
  bad('html named .jpg', (f) => writeFileSync(f, '<html><body>not an image</body></html>'), 'circle/bad.jpg', undefined, 'bad.jpg');
  bad('gzip named .png', (f) => writeFileSync(f, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0])), 'circle/bad.png');
  bad('NUL bytes', (f) => writeFileSync(f, Buffer.alloc(1000)), 'circle/bad.png');
  {
    // a folder in a class that is a link out of the root: each of its images is an error, none is read
    const d = folderSet('img-class-link');
    symlinkSync(join(outside, 'cls'), join(d, 'circle', 'linked'));
    add({ name: 'images: folder inside a class linked outside the root', group: 'images', args: audit(d, [], 'img-class-link'), expect: 'item', says: ['outside'], rules: ['data/unusable-item'], unread: ['circle/linked/x.png'] });
    add({ name: 'images: --follow-symlinks reads it', group: 'images', args: audit(d, ['--follow-symlinks'], 'img-class-link-follow'), expect: 'ok' });
  }
  {
    const d = folderSet('img-linkdir-loop');
    symlinkSync('..', join(d, 'circle', 'up'));
    add({ name: 'images: folder link cycle', group: 'images', args: audit(d, [], 'img-linkdir-loop'), expect: 'ok' });
  }
  {
    const d = dir('sets', 'img-all-bad');
    for (const c of CLASSES) {
      mkdirSync(join(d, c), { recursive: true });
      writeFileSync(join(d, c, 'x.png'), 'not a png');
    }
    add({ name: 'images: every image unreadable', group: 'images', args: audit(d, [], 'img-all-bad'), expect: 'item', says: ['x.png'], rules: ['data/unreadable-image'] });
  }
  {
    const d = dir('sets', 'img-none');
    mkdirSync(join(d, 'circle'));
    writeFileSync(join(d, 'circle', 'readme.txt'), 'x');
    add({ name: 'images: no images at all', group: 'images', args: audit(d, [], 'img-none'), expect: 'refuse', says: [d] });
  }

  // ================= manifests (CSV and JSONL) beside a folder of good images
  const mdir = dir('sets', 'manifest');
  CLASSES.forEach((c, i) => copyFileSync(demoImages[i], join(mdir, `${c}.png`)));
  symlinkSync(secret, join(mdir, 'escape.png'));
  symlinkSync('/etc/passwd', join(mdir, 'passwd.png'));
  mkdirSync(join(mdir, 'adir.png'));
  const good = 'path,label\ncircle.png,circle\ncross.png,cross\nsquare.png,square\ntriangle.png,triangle\n';
  let mi = 0;
  const manifest = (name: string, text: string | Buffer, expect: Expect, says: string[] = [], rules = ['data/unusable-item', 'data/unreadable-image'], ext = 'csv', unread?: string[]) => {
    const f = join(mdir, `m${mi++}.${ext}`);
    writeFileSync(f, text);
    add({ name: `manifest: ${name}`, group: 'manifests', args: audit(f, [], `manifest-${mi}`), expect, says: expect === 'refuse' ? [f, ...says] : says, rules, unread });
  };
  manifest('empty file', '', 'refuse', ['empty']);
  manifest('header only', 'path,label\n', 'refuse', ['no rows']);
  manifest('no path column', 'foo,bar\n1,2\n', 'refuse', ['path column']);
  manifest('binary garbage', Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 31) % 256)), 'refuse');
  manifest('missing file', good + 'nope.png,circle\n', 'item', ['row 6', 'not found']);
  manifest('path ../ out of the folder', good + '../../outside/secret.png,circle\n', 'item', ['row 6', 'outside']);
  manifest('absolute path outside', good + '/etc/passwd,circle\n', 'item', ['row 6', 'outside']);
  manifest('URL', good + 'https://example.com/x.png,circle\n', 'item', ['row 6', 'URL']);
  manifest('row is a link outside', good + 'escape.png,circle\n', 'item', ['row 6', 'outside'], undefined, 'csv', ['escape.png']);
  manifest('row is a link to /etc/passwd', good + 'passwd.png,circle\n', 'item', ['row 6', 'outside'], undefined, 'csv', ['passwd.png']);
  manifest('row is a folder', good + 'adir.png,circle\n', 'item', ['row 6', 'folder']);
  manifest('unknown class name', good + 'circle.png,hexagon\n', 'item', ['row 6', 'hexagon']);
  manifest('label 42 for 4 classes', 'path,label\ncircle.png,0\ncross.png,1\nsquare.png,2\ntriangle.png,42\n', 'item', ['row 5', '42']);
  manifest('label -1', 'path,label\ncircle.png,0\ncross.png,1\nsquare.png,2\ntriangle.png,-1\n', 'item', ['row 5']);
  manifest('label 1.5', good + 'circle.png,1.5\n', 'item', ['row 6']);
  manifest('empty label', good + 'circle.png,\n', 'item', ['row 6', 'no label']);
  manifest('empty path', good + ',circle\n', 'item', ['row 6', 'no image path']);
  manifest('unbalanced quote', good + '"circle.png,circle\n', 'ok');
  manifest('NUL bytes in a row', good + 'circ\0le.png,circle\n', 'item', ['row 6']);
  manifest('1 MB path', good + `${'a'.repeat(1 << 20)}.png,circle\n`, 'item', ['row 6']);
  manifest('CRLF and BOM', '\ufeffpath,label\r\ncircle.png,circle\r\ncross.png,cross\r\n', 'ok');
  manifest('duplicate rows', good + good.split('\n').slice(1).join('\n'), 'ok');
  manifest('extra columns', 'path,label,x,y\ncircle.png,circle,1\ncross.png,cross,1,2,3,4\n', 'ok');
  manifest('jsonl: invalid line', '{"path":"circle.png","label":"circle"}\n{oops\n', 'item', ['row 2'], undefined, 'jsonl');
  manifest('jsonl: not an object', '{"path":"circle.png","label":"circle"}\n[1,2]\n', 'item', ['row 2'], undefined, 'jsonl');
  manifest('jsonl: number path', '{"path":"circle.png","label":"circle"}\n{"path":5,"label":"circle"}\n', 'item', ['row 2'], undefined, 'jsonl');
  manifest('jsonl: object label', '{"path":"circle.png","label":"circle"}\n{"path":"cross.png","label":{"a":1}}\n', 'item', ['row 2'], undefined, 'jsonl');
  manifest('jsonl: deeply nested line', `{"path":"circle.png","label":"circle"}\n${'['.repeat(100000)}${']'.repeat(100000)}\n`, 'item', ['row 2'], undefined, 'jsonl');
  manifest('jsonl: empty', '\n\n', 'refuse', [], undefined, 'jsonl');
  {
    const f = join(mdir, 'fifo.csv');
    mkfifo(f);
    add({ name: 'manifest: a FIFO', group: 'manifests', args: audit(f, [], 'manifest-fifo'), expect: 'refuse', says: [f, 'FIFO'] });
    const big = join(mdir, 'big.csv');
    const rows = ['path,label'];
    for (let i = 0; i < 20000; i++) rows.push(`${CLASSES[i % 4]}.png,${CLASSES[i % 4]}`);
    writeFileSync(big, rows.join('\n') + '\n');
    add({ name: 'manifest: 20,000 rows, --limit 8', group: 'manifests', args: audit(big, ['--limit', '8'], 'manifest-big'), expect: 'ok' });
  }

  // ================= models
  const mdl = dir('models');
  const data = folderSet('for-models');
  const modelCase = (name: string, file: string, expect: Expect, says: string[] = [], rules?: string[], names = file) => {
    add({ name: `model: ${name}`, group: 'models', args: ['audit', file, '--data', data, '--probes', 'clean', '--no-cache', '--quiet', '--out', out(`model-${cases.length}`)], expect, says: expect === 'refuse' ? [names, ...says] : says, rules });
    // `skeptic inspect` reads the same files and must refuse them the same way
    if (expect === 'refuse') add({ name: `model (inspect): ${name}`, group: 'models', args: ['inspect', file], expect, says: [names, ...says] });
  };
  const write = (name: string, bytes: Uint8Array | string) => {
    const f = join(mdl, name);
    writeFileSync(f, bytes);
    return f;
  };
  modelCase('empty file', write('empty.onnx', ''), 'refuse', ['empty']);
  modelCase('text file', write('text.onnx', 'this is not a model\n'), 'refuse', ['not an ONNX model']);
  modelCase('random bytes', write('random.onnx', Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 131) % 256))), 'refuse');
  modelCase('truncated', write('truncated.onnx', readFileSync(DEMO_MODEL).subarray(0, 2000)), 'refuse');
  modelCase('a folder', dir('models', 'folder.onnx'), 'refuse', ['folder']);
  modelCase('not found', join(mdl, 'missing.onnx'), 'refuse', ['not found']);
  {
    const fifo = join(mdl, 'fifo.onnx');
    mkfifo(fifo);
    modelCase('a FIFO', fifo, 'refuse', ['FIFO']);
  }
  modelCase('/dev/zero', '/dev/zero', 'refuse', ['device']);
  modelCase('/dev/null', '/dev/null', 'refuse', ['device']);
  {
    const loop = join(mdl, 'loop.onnx');
    symlinkSync(loop, loop);
    modelCase('symlink loop', loop, 'refuse', ['loop']);
    const dangling = join(mdl, 'dangling.onnx');
    symlinkSync(join(mdl, 'gone.onnx'), dangling);
    modelCase('dangling symlink', dangling, 'refuse', ['not found']);
    modelCase('under a file', join(write('plain.txt', 'x'), 'm.onnx'), 'refuse', ['not a folder']);
  }
  modelCase('outputs NaN', write('nan.onnx', tinyModel({ bias: [NaN, NaN, NaN, NaN] })), 'model', [], ['clean/non-finite-output']);
  modelCase('outputs +Inf', write('inf.onnx', tinyModel({ bias: [Infinity, 0, 0, 0] })), 'model', [], ['clean/non-finite-output']);
  modelCase('outputs -Inf', write('ninf.onnx', tinyModel({ bias: [-Infinity, -Infinity, 0, 0] })), 'model', [], ['clean/non-finite-output']);
  modelCase('input 1x3x100000x100000', write('huge.onnx', pooledModel([1, 3, 100000, 100000])), 'refuse', ['100000']);
  modelCase('input 1x3x9000x9000', write('big.onnx', pooledModel([1, 3, 9000, 9000])), 'refuse', ['9000']);
  {
    const d = dir('models', 'hf');
    writeFileSync(join(d, 'preprocessor_config.json'), JSON.stringify({ size: { height: 100000, width: 100000 } }));
    modelCase('symbolic input set to 100000 by preprocessor_config.json', writeModelIn(d, 'sym.onnx', pooledModel(['N', 3, 'H', 'W'])), 'refuse', ['100000']);
    const d2 = dir('models', 'hf-dir');
    mkdirSync(join(d2, 'preprocessor_config.json'));
    modelCase('preprocessor_config.json is a folder', writeModelIn(d2, 'm.onnx', tinyModel()), 'refuse', ['folder'], undefined, join(d2, 'preprocessor_config.json'));
    const d3 = dir('models', 'hf-bad');
    writeFileSync(join(d3, 'preprocessor_config.json'), '{"size": ');
    modelCase('preprocessor_config.json is not JSON', writeModelIn(d3, 'm.onnx', tinyModel()), 'refuse', ['JSON'], undefined, join(d3, 'preprocessor_config.json'));
  }
  modelCase('one class', write('k1.onnx', tinyModel({ classes: 1 })), 'refuse', ['class scores']);
  modelCase('two inputs', write('two-inputs.onnx', twoInputs()), 'refuse', ['2 inputs']);
  {
    const ext = (name: string, kv: Record<string, string>, prepare: (d: string) => void, says: string[]) => {
      const d = dir('models', `ext-${name.replace(/\W+/g, '-')}`);
      prepare(d);
      modelCase(`external data: ${name}`, writeModelIn(d, 'm.onnx', externalModel(kv)), 'refuse', says);
    };
    const weights = Buffer.alloc(4 * 192 * 4, 1);
    ext('a folder', { location: 'w.bin' }, (d) => mkdirSync(join(d, 'w.bin')), ['w.bin', 'folder']);
    ext('missing', { location: 'w.bin' }, () => undefined, ['w.bin', 'not found']);
    ext('negative length', { location: 'w.bin', length: '-5' }, (d) => writeFileSync(join(d, 'w.bin'), weights), ['length']);
    ext('length past the end', { location: 'w.bin', length: '99999999' }, (d) => writeFileSync(join(d, 'w.bin'), weights), ['w.bin']);
    ext('offset not a number', { location: 'w.bin', offset: 'abc' }, (d) => writeFileSync(join(d, 'w.bin'), weights), ['w.bin']);
    ext('../ location', { location: '../w.bin' }, () => undefined, ['outside']);
    ext('absolute location', { location: '/etc/passwd' }, () => undefined, ['outside']);
    ext('symlink out of the folder', { location: 'w.bin' }, (d) => symlinkSync('/etc/passwd', join(d, 'w.bin')), ['outside']);
    ext('a FIFO', { location: 'w.bin' }, (d) => mkfifo(join(d, 'w.bin')), ['FIFO']);
    ext('/dev/zero link', { location: 'w.bin' }, (d) => symlinkSync('/dev/zero', join(d, 'w.bin')), ['device']);
  }
  add({ name: 'model: inspect on /dev/zero', group: 'models', args: ['inspect', '/dev/zero'], expect: 'refuse', says: ['/dev/zero'] });
  add({ name: 'model: inspect a NaN model warns', group: 'models', args: ['inspect', join(mdl, 'nan.onnx')], expect: 'ok', says: ['non-finite'] });
  {
    // a grayscale model given a 3-channel mean: refused, not silently cut to one value
    const gray = write('gray.onnx', tinyModel({ inputShape: ['N', 1, 8, 8] }));
    add({ name: 'model: 3-value mean for a grayscale model', group: 'models', args: ['audit', gray, '--data', data, '--probes', 'clean', '--no-cache', '--quiet', '--out', out('gray'), '--preprocess', '{"mean":[0.1,0.2,0.3]}'], expect: 'refuse', says: ['mean', '1 channel'] });
    add({ name: 'model: imagenet preset for a grayscale model', group: 'models', args: ['audit', gray, '--data', data, '--probes', 'clean', '--no-cache', '--quiet', '--out', out('gray2'), '--preprocess', 'imagenet'], expect: 'refuse', says: ['mean'] });
  }

  // ================= skeptic.json (in the current folder; the model given on the command line)
  let ci = 0;
  const config = (name: string, text: string | null, expect: Expect, says: string[] = [], prepare?: (d: string) => void) => {
    const d = dir('configs', `c${ci++}`);
    if (text !== null) writeFileSync(join(d, 'skeptic.json'), text);
    prepare?.(d);
    add({
      name: `skeptic.json: ${name}`, group: 'configs', cwd: d,
      args: ['audit', model, '--data', data, '--probes', 'clean', '--no-cache', '--quiet', '--out', out(`config-${ci}`)],
      expect, says: expect === 'refuse' ? [join(d, 'skeptic.json'), ...says] : says,
    });
  };
  const cfgLines = (key: string, value: string) => `{\n  "seed": 0,\n  "${key}": ${value}\n}\n`;
  config('threads "two"', cfgLines('threads', '"two"'), 'refuse', [':3', '"threads"']);
  config('threads -1', cfgLines('threads', '-1'), 'refuse', [':3', '"threads"']);
  config('threads 0', cfgLines('threads', '0'), 'refuse', ['"threads"']);
  config('threads 1.5', cfgLines('threads', '1.5'), 'refuse', ['"threads"']);
  config('threads 100000', cfgLines('threads', '100000'), 'refuse', ['"threads"']);
  config('batchSize "x"', cfgLines('batchSize', '"x"'), 'refuse', [':3', '"batchSize"']);
  config('batchSize 0', cfgLines('batchSize', '0'), 'refuse', ['"batchSize"']);
  config('batchSize 100000', cfgLines('batchSize', '100000'), 'refuse', ['"batchSize"']);
  config('seed "abc"', '{\n "seed": "abc"\n}', 'refuse', [':2', '"seed"']);
  config('seed 1.5', '{"seed": 1.5}', 'refuse', ['"seed"']);
  config('seed -1', '{"seed": -1}', 'refuse', ['"seed"']);
  config('device "tpu"', '{"device": "tpu"}', 'refuse', ['"device"']);
  config('followSymlinks "yes"', '{"followSymlinks": "yes"}', 'refuse', ['"followSymlinks"']);
  config('probes "x"', '{"probes": "x"}', 'refuse', ['"probes"']);
  config('probes {"clean": "x"}', '{"probes": {"clean": "x"}}', 'refuse', ['"probes.clean"']);
  config('probes {"shift": {"k": -5}}', '{"probes": {"shift": {"k": -5}}}', 'ok'); // only clean runs here
  config('models null', '{"models": null}', 'refuse', ['"models"']);
  config('models "str"', '{"models": "str"}', 'refuse', ['"models"']);
  config('models [null]', '{"models": [null]}', 'refuse', ['"models[0]"']);
  config('models ["str"]', '{"models": ["m.onnx"]}', 'refuse', ['"models[0]"']);
  config('models [{}]', '{"models": [{}]}', 'refuse', ['"models[0]"', 'path']);
  config('model path 5', '{"models": [{"path": 5}]}', 'refuse', ['"models[0].path"']);
  config('model labels 5', `{"models": [{"path": ${JSON.stringify(model)}, "labels": 5}]}`, 'refuse', ['"models[0].labels"']);
  config('model limit "x"', `{"models": [{"path": ${JSON.stringify(model)}, "limit": "x"}]}`, 'refuse', ['"models[0].limit"']);
  config('model outputKind "x"', `{"models": [{"path": ${JSON.stringify(model)}, "outputKind": "x"}]}`, 'refuse', ['"models[0].outputKind"']);
  config('model probes "clean"', `{"models": [{"path": ${JSON.stringify(model)}, "probes": "clean"}]}`, 'refuse', ['"models[0].probes"']);
  config('model preprocess 5', `{"models": [{"path": ${JSON.stringify(model)}, "preprocess": 5}]}`, 'refuse', ['"models[0].preprocess"']);
  config('preprocess resizeShortSide 100000', `{"models": [{"path": ${JSON.stringify(model)}, "preprocess": {"resizeShortSide": 100000}}]}`, 'refuse', ['resizeShortSide']);
  config('preprocess 2-value mean', `{"models": [{"path": ${JSON.stringify(model)}, "preprocess": {"mean": [0.5, 0.5]}}]}`, 'refuse', ['mean']);
  config('preprocess unknown preset', `{"models": [{"path": ${JSON.stringify(model)}, "preprocess": "nope"}]}`, 'refuse', ['nope']);
  config('preprocess scale -1', `{"models": [{"path": ${JSON.stringify(model)}, "preprocess": {"scale": -1}}]}`, 'refuse', ['scale']);
  config('nested 10,000 levels', `{"probes": ${'['.repeat(10000)}${']'.repeat(10000)}}`, 'refuse', ['nested']);
  config('syntax error', '{"seed": 0,,}', 'refuse', [':1']);
  config('not an object', '[1, 2]', 'refuse', ['object']);
  config('empty file', '', 'refuse');
  config('comments and trailing commas', '// settings\n{"seed": 1, /* c */ "batchSize": 8,}\n', 'ok');
  config('unknown keys', '{"colour": "blue"}', 'ok');
  config('a folder', null, 'refuse', ['folder'], (d) => mkdirSync(join(d, 'skeptic.json')));
  config('a FIFO', null, 'refuse', ['FIFO'], (d) => mkfifo(join(d, 'skeptic.json')));
  config('a link to /dev/zero', null, 'refuse', ['device'], (d) => symlinkSync('/dev/zero', join(d, 'skeptic.json')));
  config('cache folder is a file', '{}', 'refuse', ['clean failed', '.skeptic/cache'], (d) => {
    mkdirSync(join(d, '.skeptic'), { recursive: true });
    writeFileSync(join(d, '.skeptic', 'cache'), 'x');
  });
  cases[cases.length - 1].args = cases[cases.length - 1].args.filter((a) => a !== '--no-cache');
  cases[cases.length - 1].says!.shift(); // names the cache, not skeptic.json

  // ================= flags
  const flag = (name: string, extra: string[], expect: Expect, says: string[] = []) =>
    add({ name: `flag: ${name}`, group: 'flags', args: [...audit(data, [], `flag-${cases.length}`), ...extra], expect, says });
  flag('--threads 1000 (capped)', ['--threads', '1000'], 'refuse', ['--threads']);
  flag('--threads 64 (more than the CPUs: used as the CPU count)', ['--threads', '64'], 'ok', ['CPUs']);
  flag('--threads 0', ['--threads', '0'], 'refuse', ['--threads']);
  flag('--threads -1', ['--threads', '-1'], 'refuse', ['--threads']);
  flag('--threads abc', ['--threads', 'abc'], 'refuse', ['--threads']);
  flag('--threads empty', ['--threads', ''], 'refuse', ['--threads']);
  flag('--batch-size 100000', ['--batch-size', '100000'], 'refuse', ['--batch-size']);
  flag('--batch-size 0', ['--batch-size', '0'], 'refuse', ['--batch-size']);
  flag('--batch-size 1', ['--batch-size', '1'], 'ok');
  flag('--limit -1', ['--limit', '-1'], 'refuse', ['--limit']);
  flag('--limit abc', ['--limit', 'abc'], 'refuse', ['--limit']);
  flag('--limit 0', ['--limit', '0'], 'refuse', ['--limit']);
  flag('--seed 1e30', ['--seed', '1e30'], 'refuse', ['--seed']);
  flag('--seed 1.5', ['--seed', '1.5'], 'refuse', ['--seed']);
  flag('--device tpu', ['--device', 'tpu'], 'refuse', ['--device']);
  flag('--format pdf', ['--format', 'pdf'], 'refuse', ['--format']);
  flag('--fail-on x', ['--fail-on', 'x'], 'refuse', ['--fail-on']);
  flag('--preprocess bad JSON', ['--preprocess', '{bad'], 'refuse', ['--preprocess']);
  flag('--preprocess unknown preset', ['--preprocess', 'nope'], 'refuse', ['nope']);
  flag('--preprocess resizeShortSide 100000', ['--preprocess', '{"resizeShortSide":100000}'], 'refuse', ['resizeShortSide']);
  flag('--labels missing', ['--labels', join(root, 'nope.txt')], 'refuse', ['nope.txt']);
  flag('--labels a folder', ['--labels', root], 'refuse', [root, 'folder']);
  flag('--labels /dev/zero', ['--labels', '/dev/zero'], 'refuse', ['/dev/zero']);
  flag('--output-kind x', ['--output-kind', 'x'], 'refuse', ['--output-kind']);
  flag('--probes nope', ['--probes', 'nope'], 'refuse', ['nope']);
  flag('--param malformed', ['--param', 'shiftk'], 'refuse', ['--param']);
  flag('--param clean.nearChanceFactor=abc', ['--param', 'clean.nearChanceFactor=abc'], 'refuse', ['nearChanceFactor']);
  flag('--param clean.nearChanceFactor=-3', ['--param', 'clean.nearChanceFactor=-3'], 'refuse', ['nearChanceFactor']);
  flag('--path-column missing', ['--data', join(mdir, 'm4.csv'), '--path-column', 'nope'], 'refuse', ['nope']);
  flag('unknown flag', ['--bogus'], 'refuse', ['bogus']);
  flag('--config missing', ['--config', join(root, 'none.json')], 'refuse', ['none.json']);
  flag('--config a folder', ['--config', root], 'refuse', ['folder']);
  flag('--data missing', ['--data', join(root, 'none')], 'refuse', ['none']);
  flag('--data /dev/zero', ['--data', '/dev/zero'], 'refuse', ['/dev/zero']);
  flag('--data a single image', ['--data', goodPng], 'refuse', ['single image']);
  add({ name: 'flag: --ood missing', group: 'flags', args: [...audit(data, [], 'flag-ood'), '--ood', join(root, 'no-ood')], expect: 'model', says: ['no-ood'], rules: ['ood/ood-data-unreadable'] });
  add({ name: 'flag: no command', group: 'flags', args: [], expect: 'refuse', says: ['no command'] });
  add({ name: 'flag: two models', group: 'flags', args: ['audit', model, model, '--data', data], expect: 'refuse', says: ['one MODEL'] });
  add({ name: 'flag: unknown command', group: 'flags', args: ['frobnicate'], expect: 'refuse', says: ['frobnicate'] });
  add({ name: 'flag: no dataset', group: 'flags', args: ['audit', model], expect: 'refuse', says: ['--data'] });

  // ================= output locations
  const outCase = (name: string, outDir: string, expect: Expect, says: string[], extra: string[] = []) =>
    add({ name: `out: ${name}`, group: 'outputs', args: ['audit', model, '--data', data, '--probes', 'clean', '--no-cache', '--quiet', '--out', outDir, ...extra], expect, says });
  const aFile = write('out-file', 'x');
  outCase('a file', aFile, 'refuse', [aFile, 'not a folder']);
  outCase('under a file', join(aFile, 'sub'), 'refuse', [join(aFile, 'sub')]);
  outCase('/dev/null', '/dev/null', 'refuse', ['/dev/null']);
  outCase('/dev/full', '/dev/full', 'refuse', ['/dev/full']);
  outCase('/proc (not writable)', '/proc/skeptic-report', 'refuse', ['/proc/skeptic-report']);
  {
    const d = dir('out', 'report-is-dir');
    mkdirSync(join(d, 'report.json'));
    outCase('report.json is a folder', d, 'refuse', [join(d, 'report.json')]);
    const d2 = dir('out', 'sarif-is-dir');
    mkdirSync(join(d2, 'report.sarif'));
    outCase('report.sarif is a folder', d2, 'refuse', [join(d2, 'report.sarif')], ['--format', 'json,sarif']);
    const d3 = dir('out', 'html-is-dir');
    mkdirSync(join(d3, 'report.html'));
    outCase('report.html is a folder', d3, 'refuse', [join(d3, 'report.html')], ['--format', 'html']);
  }
  outCase('all formats', join(root, 'out', 'all'), 'ok', [], ['--format', 'json,sarif,html']);
  return cases;
}

function writeModelIn(d: string, name: string, bytes: Uint8Array): string {
  const f = join(d, name);
  writeFileSync(f, bytes);
  return f;
}

function twoInputs(): Uint8Array {
  const { spec } = tinyClassifier({ inputShape: ['N', 3, 8, 8], classes: 4 });
  spec.inputs.push({ name: 'extra', shape: ['N', 4] });
  spec.nodes[spec.nodes.length - 1].outputs = ['g'];
  spec.nodes.push({ op: 'Add', inputs: ['g', 'extra'], outputs: ['y'] });
  return buildModel(spec);
}

function readdirFirst(d: string): string {
  return readdirSync(d).sort()[0];
}
