/**
 * The CLI as a user runs it: the bundled `bin/skeptic.js` in a child process, on the demo model
 * and data that a fresh clone makes, and on deliberately broken inputs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import Ajv from 'ajv';
import { loadReport } from '../../server/engine/compare/load';
import reportSchema from '../../server/engine/report/report.schema.json';

const ROOT = resolve(__dirname, '../..');
const DEMO_MODEL = join(ROOT, 'models/demo/shapes-cnn.onnx');
const DEMO_DATA = join(ROOT, 'models/demo/data/test.csv');
let work: string;

function skeptic(args: string[], cwd = work) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/skeptic.js'), ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  for (const cmd of [['scripts/build.mjs'], ['models/demo/make-data.mjs', '--quiet']]) {
    const r = spawnSync(process.execPath, cmd, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  work = mkdtempSync(join(tmpdir(), 'skeptic-cli-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

test('audit on the demo: summary, report.json and SARIF, exit 0; --fail-on warning exits 1', () => {
  const out = join(work, 'demo');
  const r = skeptic(['audit', DEMO_MODEL, '--data', DEMO_DATA, '--limit', '40', '--format', 'json,sarif', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /clean\s+ok\s+accuracy/);
  assert.match(r.stdout, /shift\s+ok/);
  const report = loadReport(join(out, 'report.json'));
  assert.equal(report.schemaVersion, 2);
  assert.equal(report.dataset.selected, 40);
  assert.equal(report.config.limit, 40);
  assert.equal(report.model.preprocessing.source, 'metadata');
  const sarif = JSON.parse(readFileSync(join(out, 'report.sarif'), 'utf8'));
  assert.equal(sarif.version, '2.1.0');
  assert.equal(sarif.runs[0].results.length, report.findings.length);

  const strict = skeptic(['audit', DEMO_MODEL, '--data', DEMO_DATA, '--limit', '40', '--out', out, '--fail-on', 'warning']);
  assert.ok(report.findings.some((f: { severity: string }) => f.severity === 'warning'), 'the demo model has warnings to fail on');
  assert.equal(strict.code, 1);
});

test('same inputs and seed give the same report; the second run comes from the cache', () => {
  const a = skeptic(['audit', DEMO_MODEL, '--data', DEMO_DATA, '--limit', '24', '--seed', '5', '--json', '--out', join(work, 'a')]);
  const b = skeptic(['audit', DEMO_MODEL, '--data', DEMO_DATA, '--limit', '24', '--seed', '5', '--json', '--out', join(work, 'b')]);
  assert.equal(a.code, 0, a.stderr);
  const ra = JSON.parse(a.stdout);
  const rb = JSON.parse(b.stdout);
  assert.equal(ra.run.cache.hits, 0);
  assert.deepEqual(ra.config.probes, ['clean', 'shift', 'patches', 'ood', 'corruptions'], 'every default probe ran');
  assert.equal(rb.run.cache.hits, 24 * ra.config.probes.length, 'every record of the 24 images came from the cache');
  delete ra.run;
  delete rb.run;
  assert.deepEqual(rb, ra);
  const c = JSON.parse(skeptic(['audit', DEMO_MODEL, '--data', DEMO_DATA, '--limit', '24', '--seed', '5', '--json', '--no-cache', '--out', join(work, 'c')]).stdout);
  delete c.run;
  assert.deepEqual(c, ra, 'cached and recomputed reports agree');
});

test('bad inputs: each gives its clear message, and the rest of the run completes', () => {
  // A dataset with one good image per class, plus every kind of broken row.
  const ds = join(work, 'broken');
  mkdirSync(join(ds, 'img'), { recursive: true });
  const good = readFileSync(DEMO_DATA, 'utf8').trim().split('\n').slice(1, 5);
  const rows = ['path,label'];
  good.forEach((line, i) => {
    const [p, label] = line.split(',');
    copyFileSync(join(ROOT, 'models/demo/data', p), join(ds, 'img', `good${i}.png`));
    rows.push(`img/good${i}.png,${label}`);
  });
  const png = readFileSync(join(ds, 'img/good0.png'));
  writeFileSync(join(ds, 'img/corrupt.png'), png.subarray(0, Math.floor(png.length / 2)));
  writeFileSync(join(ds, 'img/empty.jpg'), '');
  writeFileSync(join(ds, 'img/text.png'), 'this is not an image\n');
  writeFileSync(join(work, 'outside.png'), png);
  rows.push('img/corrupt.png,circle', 'img/empty.jpg,circle', 'img/text.png,square', '../outside.png,circle', 'img/good0.png,', 'img/missing.png,cross', 'img/good1.png,hexagon');
  writeFileSync(join(ds, 'manifest.csv'), rows.join('\n') + '\n');

  const r = skeptic(['audit', DEMO_MODEL, '--data', join(ds, 'manifest.csv'), '--probes', 'clean', '--json', '--out', join(work, 'broken-out')]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.dataset.selected, 11);
  assert.equal(report.probes.clean.count, 4, 'the four good rows were audited');
  const byLine = new Map<number, string>(report.findings.filter((f: any) => f.probe === 'data').map((f: any) => [f.subject.line, f.message]));
  const expect: Array<[number, RegExp]> = [
    [6, /corrupt\.png/], // truncated PNG
    [7, /empty\.jpg.*(empty|0 bytes)/i],
    [8, /text\.png/],
    [9, /outside|escapes/i],
    [10, /label/i], // missing label
    [11, /missing\.png.*(not found|no such|missing|does not exist)/i],
    [12, /hexagon/], // unknown class name
  ];
  for (const [line, re] of expect) {
    assert.ok(byLine.has(line), `a finding on manifest row ${line}; got rows ${[...byLine.keys()]}`);
    assert.match(byLine.get(line)!, re, `row ${line}: ${byLine.get(line)}`);
  }
  for (const f of report.findings.filter((f: any) => f.probe === 'data')) assert.equal(f.subject.path.endsWith('manifest.csv'), true);
});

test('a broken model file is refused with exit 2 and a message naming it', () => {
  const truncated = join(work, 'truncated.onnx');
  writeFileSync(truncated, readFileSync(DEMO_MODEL).subarray(0, 5000));
  const text = join(work, 'text.onnx');
  writeFileSync(text, 'not a model, just text\n');
  for (const file of [truncated, text]) {
    const r = skeptic(['audit', file, '--data', DEMO_DATA]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(file), `message names ${file}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('usage errors exit 2 with a message', () => {
  assert.equal(skeptic(['audit', DEMO_MODEL]).code, 2);
  const unknown = skeptic(['audit', DEMO_MODEL, '--data', DEMO_DATA, '--probes', 'clean,telepathy']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown probe 'telepathy'/);
  const missing = skeptic(['audit', join(work, 'nope.onnx'), '--data', DEMO_DATA]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.onnx/);
  const badData = skeptic(['audit', DEMO_MODEL, '--data', join(work, 'no-such-folder')]);
  assert.equal(badData.code, 2);
  assert.match(badData.stderr, /no-such-folder/);
  assert.equal(skeptic(['frobnicate']).code, 2);
  assert.equal(skeptic(['--help']).code, 0);
});

test('inspect prints what Skeptic reads from the model', () => {
  const r = skeptic(['inspect', DEMO_MODEL]);
  assert.equal(r.code, 0, r.stderr);
  for (const re of [/Layout\s+NCHW/, /Output kind\s+logits/, /Labels\s+4/, /circle, cross, square, triangle/, /source:\s*metadata/, /Device\s+cpu/, /Conv \d/]) {
    assert.match(r.stdout, re);
  }
  assert.ok(existsSync(DEMO_MODEL));
  // A pipe gets every value on one line, however long the paths (a wrap once moved with the checkout path).
  assert.ok(!/^ {14}\S/m.test(r.stdout), r.stdout);
  // CPU threads per session: --threads, else the physical cores.
  const one = skeptic(['inspect', DEMO_MODEL, '--threads', '1']);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /^Device +cpu \(requested auto\), 1 CPU thread$/m);
  const bad = skeptic(['inspect', DEMO_MODEL, '--threads', 'lots']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--threads must be a non-negative integer/);
  // --cpus N (or SKEPTIC_CPUS=N), a scheduler's share of the node: the automatic threads follow it,
  // and --threads more than it is cut to it. (With one CPU the default is one thread anyway.)
  if (availableParallelism() > 1) {
    const all = skeptic(['inspect', DEMO_MODEL]);
    assert.doesNotMatch(all.stdout, /^Device +cpu \(requested auto\), 1 CPU thread$/m, 'more than one thread without a budget');
  }
  const budget = skeptic(['inspect', DEMO_MODEL, '--cpus', '1']);
  assert.equal(budget.code, 0, budget.stderr);
  assert.match(budget.stdout, /^Device +cpu \(requested auto\), 1 CPU thread$/m);
  const env = spawnSync(process.execPath, [join(ROOT, 'bin/skeptic.js'), 'inspect', DEMO_MODEL], { cwd: work, encoding: 'utf8', env: { ...process.env, SKEPTIC_CPUS: '1' } });
  assert.match(env.stdout, /^Device +cpu \(requested auto\), 1 CPU thread$/m);
  if (availableParallelism() > 1) {
    const cut = skeptic(['inspect', DEMO_MODEL, '--cpus', '1', '--threads', '2']);
    assert.match(cut.stdout, /^Device +cpu \(requested auto\), 1 CPU thread$/m);
    assert.match(cut.stderr, /--threads 2 is more than the 1 CPUs this process may use; using 1/);
  }
  for (const v of ['0', '5000', 'many']) {
    const r = skeptic(['inspect', DEMO_MODEL, '--cpus', v]);
    assert.equal(r.code, 2, v);
    assert.match(r.stderr, /--cpus must be/, v);
  }
});

test('--lanes: the audit in lanes says so and writes the report one lane writes; skeptic.json "lanes" is checked', () => {
  const args = ['audit', DEMO_MODEL, '--data', DEMO_DATA, '--limit', '40', '--probes', 'clean,shift', '--no-cache', '--json'];
  const one = skeptic([...args, '--lanes', '1', '--out', join(work, 'lanes-1')]);
  assert.equal(one.code, 0, one.stderr);
  assert.doesNotMatch(one.stderr, /lanes of/);
  const two = skeptic([...args, '--lanes', '2', '--out', join(work, 'lanes-2')]);
  assert.equal(two.code, 0, two.stderr);
  assert.match(two.stderr, /skeptic: 2 lanes of \d+ threads? \(2 as asked; --lanes 1 for one\)/);
  const a = JSON.parse(one.stdout);
  const b = JSON.parse(two.stdout);
  assert.equal(a.run.lanes, undefined);
  assert.equal(b.run.lanes.count, 2);
  const validate = new Ajv({ allErrors: true, strict: false }).compile(reportSchema);
  assert.ok(validate(b) as boolean, JSON.stringify(validate.errors));
  assert.deepEqual({ ...b, run: undefined }, { ...a, run: undefined }, 'the same report');
  // a shard in lanes: the shard result one lane writes
  const shardArgs = ['audit', DEMO_MODEL, '--data', DEMO_DATA, '--limit', '40', '--probes', 'clean,shift', '--no-cache', '--shard', '1/2'];
  const s1 = skeptic([...shardArgs, '--lanes', '1', '--out', join(work, 'shard-lanes-1')]);
  const s2 = skeptic([...shardArgs, '--lanes', '2', '--out', join(work, 'shard-lanes-2')]);
  assert.equal(s1.code, 0, s1.stderr);
  assert.equal(s2.code, 0, s2.stderr);
  assert.match(s2.stderr, /skeptic: 2 lanes of/);
  const shardOf = (d: string) => ({ ...JSON.parse(readFileSync(join(work, d, 'shard-0001-of-0002.json'), 'utf8')), run: undefined });
  assert.deepEqual(shardOf('shard-lanes-2'), shardOf('shard-lanes-1'));
  for (const bad of ['0', 'many', '65']) {
    const r = skeptic([...args, '--lanes', bad]);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /--lanes must be/, bad);
  }
  const dir = join(work, 'ws-lanes');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'skeptic.json'), '{\n  "lanes": 0\n}\n');
  const r = skeptic(['audit', DEMO_MODEL, '--data', DEMO_DATA], dir);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /skeptic\.json:2: "lanes" must be "auto" or an integer from 1 to 64, not 0/);
});

test('skeptic.json supplies the dataset and settings; a syntax error names the file and line', () => {
  const dir = join(work, 'ws');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'skeptic.json'),
    `{
  // the demo model, audited on its test split
  "seed": 2,
  "probes": { "shift": { "k": 2 } },
  "models": [{ "path": ${JSON.stringify(DEMO_MODEL)}, "dataset": ${JSON.stringify(DEMO_DATA)}, "limit": 12 }],
}`,
  );
  const r = skeptic(['audit', DEMO_MODEL, '--json'], dir);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.config.seed, 2);
  assert.equal(report.dataset.selected, 12);
  assert.equal(report.config.params.shift.k, 2);
  assert.ok(existsSync(join(dir, '.skeptic/reports/shapes-cnn--test/report.json')), 'default report folder beside skeptic.json');

  writeFileSync(join(dir, 'skeptic.json'), '{\n  "seed": 2,\n  "models": [ oops ]\n}\n');
  const bad = skeptic(['audit', DEMO_MODEL, '--data', DEMO_DATA], dir);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /skeptic\.json:3: /);
});

test('gradcheck compares the gradient with finite differences and says PASS', () => {
  const r = skeptic(['gradcheck', DEMO_MODEL, '--samples', '2', '--directions', '2']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /worst relative error [\d.e+-]+/);
  assert.match(r.stdout, /PASS/);
  assert.match(r.stdout, /Conv\s+4/);
  const bad = skeptic(['gradcheck', DEMO_MODEL, '--loss', 'hinge']);
  assert.equal(bad.code, 2);
});
