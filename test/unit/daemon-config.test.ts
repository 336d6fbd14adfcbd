/**
 * skeptic.json in the editor: validation at the right ranges (syntax errors, unknown keys and
 * probes, missing files, preprocessing that does not fit the model), hover, completion, the edit
 * that saves a model/dataset pair; and the manifest-row ranges of diagnostics. The last test
 * gives a real daemon a broken skeptic.json and checks it publishes, and keeps answering.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import type { Diagnostic, Range } from 'vscode-languageserver-protocol';
import { HoverRequest } from 'vscode-languageserver-protocol/node';
import { describeProbes } from '../../server/daemon/catalog';
import { addModelEntryEdits, configCompletion, configHover, validateConfig, type ConfigContext } from '../../server/daemon/config-doc';
import { rowPathRange } from '../../server/daemon/diagnostics';
import type { ModelInput } from '../../server/protocol';
import { ROOT, TestDaemon } from './helpers/lsp-client';

const catalog = describeProbes();
const DIR = '/ws';
const FILE = '/ws/skeptic.json';
const GRAY: ModelInput = { layout: 'NCHW', channels: 1, height: 28, width: 28, input: { name: 'x', type: 'float32', shape: ['N', 1, 28, 28] }, outputs: [{ name: 'y', type: 'float32', shape: ['N', 10] }] };

function ctx(files: string[], input?: ModelInput): ConfigContext {
  return { catalog, modelInput: () => input, exists: (p) => files.includes(p), schemaProvided: false, docsUrl: 'file:///README.md' };
}

/** The text a range covers. */
function textAt(text: string, r: Range): string {
  const lines = text.split('\n');
  if (r.start.line === r.end.line) return lines[r.start.line].slice(r.start.character, r.end.character);
  return [lines[r.start.line].slice(r.start.character), ...lines.slice(r.start.line + 1, r.end.line), lines[r.end.line].slice(0, r.end.character)].join('\n');
}

function find(ds: Diagnostic[], code: string): Diagnostic[] {
  return ds.filter((d) => d.code === code);
}

test('a syntax error is reported where it is, and the rest still validates', () => {
  const text = '{\n  "seed": 0,\n  "models": [ { "path": "m.onnx" } ]\n  "device": "cpu"\n}\n';
  const ds = validateConfig(text, FILE, ctx([]));
  const syntax = find(ds, 'config/syntax');
  assert.equal(syntax.length, 1);
  assert.equal(syntax[0].range.start.line, 3, 'the missing comma is noticed at "device"');
  assert.equal(syntax[0].source, 'skeptic.json');
  assert.ok(syntax[0].codeDescription?.href.endsWith('#skeptic-json'));
  const missing = find(ds, 'config/missing-file');
  assert.equal(missing.length, 1, 'the entry after the error is still checked');
  assert.equal(textAt(text, missing[0].range), '"m.onnx"');
});

test('unknown probes, keys and parameters; missing files; wrong types: each at its own range', () => {
  const text = `{
  // comments are fine
  "colour": true,
  "device": "tpu",
  "probes": { "shift": { "k": "eight", "kk": 1 }, "texturez": {}, "cue-conflict": { "generator": "style-transfer", "steps": 100, "styleWeight": 5, "stepz": 1 } },
  "models": [
    { "path": "models/m.onnx", "dataset": "data/none.csv", "probes": ["clean", "shfit"], "limit": 0, "extra": 1 },
    { "dataset": "data/ok.csv" }
  ]
}`;
  const ds = validateConfig(text, FILE, ctx([join(DIR, 'models/m.onnx'), join(DIR, 'data/ok.csv')]));
  const at = (code: string) => find(ds, code).map((d) => textAt(text, d.range));
  assert.deepEqual(at('config/unknown-probe').sort(), ['"shfit"', '"texturez"']);
  assert.match(find(ds, 'config/unknown-probe')[0].message as string, /known probes: clean, shift/);
  // cue-conflict's style-transfer parameters are known (a variant's), a misspelt one is not.
  assert.deepEqual(at('config/unknown-key').sort(), ['"colour"', '"extra"', '"kk"', '"stepz"']);
  assert.deepEqual(at('config/missing-file'), ['"data/none.csv"']);
  assert.ok(at('config/type').includes('"tpu"'));
  assert.ok(at('config/type').includes('"eight"'), 'shift.k must be a number');
  assert.ok(at('config/type').includes('0'), 'limit must be positive');
  const noPath = find(ds, 'config/missing-key');
  assert.equal(noPath.length, 1);
  assert.equal(textAt(text, noPath[0].range), '{ "dataset": "data/ok.csv" }');
  for (const d of ds) assert.ok(d.severity === 1 || d.severity === 2, `${d.message}: error or warning`);
});

test('"lanes": a positive integer or "auto"', () => {
  for (const bad of ['0', '2.5', '"many"']) {
    assert.deepEqual(find(validateConfig(`{ "lanes": ${bad} }`, FILE, ctx([])), 'config/type').map((d) => d.message), ['"lanes" must be a positive integer or "auto"'], bad);
  }
  assert.deepEqual(validateConfig('{ "lanes": 4 }', FILE, ctx([])), []);
  assert.deepEqual(validateConfig('{ "lanes": "auto" }', FILE, ctx([])), []);
});

test('"threads": a positive integer', () => {
  const bad = validateConfig('{ "threads": 2.5 }', FILE, ctx([]));
  assert.deepEqual(find(bad, 'config/type').map((d) => d.message), ['"threads" must be a positive integer']);
  assert.deepEqual(validateConfig('{ "threads": 4 }', FILE, ctx([])), []);
});

test('preprocessing that does not fit the model: a 3-value mean for a grayscale model, on "mean"', () => {
  const text = `{
  "models": [
    { "path": "gray.onnx", "preprocess": { "scale": 1, "mean": [0.5, 0.4, 0.3], "std": [0.5] } },
    { "path": "gray.onnx", "preprocess": "imagenet" },
    { "path": "gray.onnx", "preprocess": { "mean": [0.5], "std": [0.5] } },
    { "path": "gray.onnx", "preprocess": { "mean": [0.5], "gamma": 2 } }
  ]
}`;
  const files = [join(DIR, 'gray.onnx')];
  const ds = find(validateConfig(text, FILE, ctx(files, GRAY)), 'config/preprocess-mismatch');
  assert.equal(ds.length, 2, ds.map((d) => String(d.message)).join('\n'));
  assert.equal(textAt(text, ds[0].range), '[0.5, 0.4, 0.3]');
  assert.match(ds[0].message as string, /NCHW 1×28×28.*mean has 3 values; the model takes 1 channel/);
  assert.equal(textAt(text, ds[1].range), '"imagenet"', "the imagenet preset's 3-value mean does not fit either");
  const unknown = find(validateConfig(text, FILE, ctx(files, GRAY)), 'config/unknown-key');
  assert.deepEqual(unknown.map((d) => textAt(text, d.range)), ['"gamma"']);
  // Without the model's input (untrusted workspace, not inspected yet) only static checks run.
  assert.equal(find(validateConfig(text, FILE, ctx(files)), 'config/preprocess-mismatch').length, 0);
});

test('never a crash: garbage, an array, an empty file', () => {
  for (const text of ['', '[1,2]', '{"models": 3}', '{"models": [1, null, "x"]}', '{"probes": []}', '{{{', '{"models":[{"path":5,"preprocess":7}]}']) {
    assert.doesNotThrow(() => validateConfig(text, FILE, ctx([], GRAY)), text);
  }
  assert.equal(find(validateConfig('[1,2]', FILE, ctx([])), 'config/type').length, 1);
});

test('hover: probe names, probe parameters, presets, the model behind a path', () => {
  const text = '{\n  "probes": { "shift": { "k": 4 } },\n  "models": [ { "path": "gray.onnx", "preprocess": "mnist", "probes": ["patches"] } ]\n}';
  /** Hover in the middle of the n-th occurrence of `needle`. */
  const hover = (needle: string, nth = 0) => {
    let offset = -1;
    for (let i = 0; i <= nth; i++) offset = text.indexOf(needle, offset + 1);
    const before = text.slice(0, offset + 2).split('\n');
    const pos = { line: before.length - 1, character: before[before.length - 1].length };
    const h = configHover(text, FILE, pos, ctx([join(DIR, 'gray.onnx')], GRAY));
    return h ? (h.contents as { value: string }).value : '';
  };
  assert.match(hover('"shift"'), /Azulay & Weiss/, 'the probe name');
  assert.match(hover('"k"'), /shift\.k.*default 8/, 'a parameter');
  assert.match(hover('"mnist"'), /preset `mnist`.*0\.1307/);
  assert.match(hover('"gray.onnx"'), /input `x` float32 \[N, 1, 28, 28\].*NCHW 1×28×28/s);
  assert.match(hover('"patches"'), /patch shuffle/);
});

test('completion: probe names, parameters with defaults, presets, probes of a model', () => {
  const labels = (text: string, line: number, character: number) =>
    configCompletion(text, FILE, { line, character }, ctx([]), { models: ['/ws/a.onnx'], datasets: ['/ws/data/t.csv'] }).map((i) => i.label);
  assert.deepEqual(labels('{ "probes": { "" } }', 0, 15), catalog.probes.map((p) => p.id));
  assert.ok(labels('{ "probes": { "shift": { "" } } }', 0, 26).includes('maxFlipRate'));
  assert.ok(labels('{ "models": [ { "path": "x.onnx", "probes": [ "" ] } ] }', 0, 46).includes('corruptions'));
  assert.ok(labels('{ "models": [ { "preprocess": "" } ] }', 0, 31).includes('imagenet'));
  assert.deepEqual(labels('{ "models": [ { "path": "" } ] }', 0, 25), ['a.onnx']);
  assert.deepEqual(labels('{ "models": [ { "dataset": "" } ] }', 0, 28), ['data/t.csv']);
  const item = configCompletion('{ "probes": { "" } }', FILE, { line: 0, character: 15 }, ctx([]), { models: [], datasets: [] })[0];
  assert.deepEqual(item.textEdit, { range: { start: { line: 0, character: 14 }, end: { line: 0, character: 16 } }, newText: '"clean"' }, 'replaces the quotes typed');
});

test('saving a model/dataset pair keeps the comments, or writes a new file', () => {
  const apply = (text: string, edits: ReturnType<typeof addModelEntryEdits>) => {
    const lines = text.split('\n');
    const off = (p: { line: number; character: number }) => lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
    for (const e of [...edits].sort((a, b) => off(b.range.start) - off(a.range.start))) text = text.slice(0, off(e.range.start)) + e.newText + text.slice(off(e.range.end));
    return text;
  };
  const text = '{\n  // my models\n  "seed": 3,\n  "models": [\n    { "path": "a.onnx", "dataset": "old.csv" }\n  ]\n}\n';
  const added = apply(text, addModelEntryEdits(text, FILE, '/ws/m/b.onnx', '/ws/data/test.csv'));
  assert.match(added, /\/\/ my models/);
  assert.deepEqual(JSON.parse(added.replace(/\/\/.*\n/, '')).models[1], { path: 'm/b.onnx', dataset: 'data/test.csv' });
  const changed = apply(text, addModelEntryEdits(text, FILE, '/ws/a.onnx', '/ws/new.csv'));
  assert.deepEqual(JSON.parse(changed.replace(/\/\/.*\n/, '')).models, [{ path: 'a.onnx', dataset: 'new.csv' }]);
  const fresh = apply('', addModelEntryEdits('', FILE, '/ws/a.onnx', '/ws/d'));
  assert.deepEqual(JSON.parse(fresh), { models: [{ path: 'a.onnx', dataset: 'd' }] });
});

test('manifest rows: the range of the path cell, in CSV (quoted or not) and JSONL', () => {
  const csv = 'label,path\ncat,imgs/a.png\n"dog", "imgs/b, c.png"\nfish,./imgs/../imgs/d.png\n';
  const m = '/ws/data/m.csv';
  assert.equal(textAt(csv, rowPathRange(csv, 1, m, 'imgs/a.png')), 'imgs/a.png');
  assert.equal(textAt(csv, rowPathRange(csv, 2, m, 'imgs/b, c.png')), 'imgs/b, c.png');
  assert.equal(textAt(csv, rowPathRange(csv, 3, m, 'imgs/d.png')), './imgs/../imgs/d.png');
  assert.equal(textAt(csv, rowPathRange(csv, 3, m, 'elsewhere/x.png')), 'fish,./imgs/../imgs/d.png', 'no cell names it: the whole row');
  const jsonl = '{"label": 1, "image": "x/y.png"}\n  {"file":"z.png","label":"cat"}\n';
  assert.equal(textAt(jsonl, rowPathRange(jsonl, 0, '/ws/m.jsonl', 'x/y.png')), 'x/y.png');
  assert.equal(textAt(jsonl, rowPathRange(jsonl, 1, '/ws/m.jsonl', 'z.png (row 2)')), 'z.png');
});

// ---------------------------------------------------------------------------------------------

let ws: string;
before(() => {
  const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  ws = mkdtempSync(join(tmpdir(), 'skeptic-daemon-config-'));
});
after(() => rmSync(ws, { recursive: true, force: true }));

test('the daemon publishes a broken skeptic.json at the right ranges and keeps answering', async () => {
  mkdirSync(join(ws, 'models'));
  copyFileSync(join(ROOT, 'models/demo/shapes-cnn.onnx'), join(ws, 'models/m.onnx'));
  const text = `{
  "probes": { "shfit": { "k": 2 } },
  "models": [
    { "path": "models/m.onnx", "probes": ["clean", "adversarial!"], "preprocess": { "mean": [0.5, 0.5], "std": [0.5] } },
    { "path": "models/gone.onnx", "dataset": "data" }
  ],
}`;
  writeFileSync(join(ws, 'skeptic.json'), text);
  const d = await TestDaemon.start({ workspace: ws });
  try {
    const file = join(ws, 'skeptic.json');
    // The probe names are checked once the worker described the probes, the preprocessing once
    // it read the model's input: wait for both.
    const ds = await d.waitFor('all skeptic.json diagnostics', () => {
      const all = d.diagnosticsOf(file);
      return all.some((x) => x.code === 'config/unknown-probe') && all.some((x) => x.code === 'config/preprocess-mismatch') ? all : undefined;
    });
    const at = (code: string) => ds.filter((x) => x.code === code).map((x) => textAt(text, x.range)).sort();
    assert.deepEqual(at('config/unknown-probe'), ['"adversarial!"', '"shfit"']);
    assert.deepEqual(at('config/missing-file'), ['"data"', '"models/gone.onnx"']);
    assert.deepEqual(at('config/preprocess-mismatch'), ['[0.5, 0.5]'], 'a 2-value mean for an RGB model');
    assert.equal(ds.filter((x) => x.code === 'config/syntax').length, 0, 'a trailing comma is allowed');
    const t0 = Date.now();
    const hover = await d.connection.sendRequest(HoverRequest.type, { textDocument: { uri: pathToFileURL(file).href }, position: { line: 3, character: 55 } });
    assert.ok(Date.now() - t0 < 1000);
    assert.ok(hover === null || typeof hover === 'object');
    const status = await d.connection.sendRequest('skeptic/status');
    assert.equal((status as { version: string }).version.length > 0, true);
  } finally {
    await d.stop();
  }
});
