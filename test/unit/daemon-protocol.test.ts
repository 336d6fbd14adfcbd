/**
 * The daemon as an editor sees it: the built dist/server.js in a child process, spoken to over
 * its Node IPC transport by a real LSP client (helpers/lsp-client.ts). A temporary workspace
 * holds a copy of the demo model and its data (a CSV manifest and the same images as class
 * folders) and a skeptic.json. Audits use small limits and the clean and shift probes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import type { Range } from 'vscode-languageserver-protocol';
import { CodeLensRequest, DidChangeWatchedFilesNotification, ExecuteCommandRequest, FileChangeType, HoverRequest } from 'vscode-languageserver-protocol/node';
import {
  AuditRequest, CancelRequest, DAEMON_COMMANDS, DatasetsRequest, ModelsRequest, ReportRequest, ReportsRequest,
  SaveModelEntryRequest, StatusRequest, type AuditParams, type AuditResult,
} from '../../server/protocol';
import { ROOT, TestDaemon } from './helpers/lsp-client';
import { loadReport } from '../../server/engine/compare/load';

const FIXTURES = join(ROOT, '../shared/fixtures');
let ws: string;
let daemon: TestDaemon;
const file = (p: string) => join(ws, p);
const uri = (p: string) => pathToFileURL(file(p)).href;

const SKEPTIC_JSON = `{
  // the demo model, audited on its test manifest
  "probes": { "shift": { "k": 2, "embedPositions": 2 } },
  "models": [
    { "path": "models/shapes-cnn.onnx", "dataset": "data/test.csv", "probes": ["clean", "shift"], "limit": 40 }
  ]
}
`;

before(async () => {
  for (const cmd of [['scripts/build.mjs'], ['models/demo/make-data.mjs', '--quiet']]) {
    const r = spawnSync(process.execPath, cmd, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
  ws = mkdtempSync(join(tmpdir(), 'skeptic-daemon-'));
  mkdirSync(file('models'));
  mkdirSync(file('data'));
  copyFileSync(join(ROOT, 'models/demo/shapes-cnn.onnx'), file('models/shapes-cnn.onnx'));
  copyFileSync(join(ROOT, 'models/demo/shapes-cnn.labels.txt'), file('models/shapes-cnn.labels.txt'));
  copyFileSync(join(ROOT, 'models/demo/data/test.csv'), file('data/test.csv'));
  cpSync(join(ROOT, 'models/demo/data/test'), file('data/test'), { recursive: true });
  // The same images as class folders, under another name (its own report folder).
  cpSync(join(ROOT, 'models/demo/data/test'), file('shapes'), { recursive: true });
  writeFileSync(file('skeptic.json'), SKEPTIC_JSON);
  daemon = await TestDaemon.start({ workspace: ws });
});

after(async () => {
  await daemon?.stop();
  rmSync(ws, { recursive: true, force: true });
});

function textAt(text: string, r: Range): string {
  return text.split('\n')[r.start.line].slice(r.start.character, r.end.character);
}

function audit(params: Omit<AuditParams, 'model'> & { model?: string }, token?: string): Promise<AuditResult> {
  return daemon.connection.sendRequest(AuditRequest, { model: uri('models/shapes-cnn.onnx'), ...params, ...(token ? { workDoneToken: token } : {}) });
}

test('initialize: the daemon advertises hover, completion, code lenses and its commands', () => {
  const caps = daemon.initializeResult.capabilities;
  assert.ok(caps.hoverProvider);
  assert.ok(caps.completionProvider);
  assert.ok(caps.codeLensProvider);
  assert.deepEqual(caps.executeCommandProvider?.commands, Object.values(DAEMON_COMMANDS));
  assert.equal(daemon.initializeResult.serverInfo?.name, 'skeptic');
});

test('audit from skeptic.json: progress, then diagnostics on the model, the manifest rows and skeptic.json', async () => {
  const progress = daemon.watchProgress('audit-1');
  const result = await audit({}, 'audit-1');
  assert.equal(result.status, 'ok', result.error);
  const s = result.report!;
  assert.equal(s.modelName, 'shapes-cnn.onnx');
  assert.equal(s.dataset, uri('data/test.csv'), 'the dataset skeptic.json gives the model');
  assert.equal(s.device, 'cpu');
  assert.ok(existsSync(file('.skeptic/reports/shapes-cnn--test/report.json')));
  const report = loadReport(file('.skeptic/reports/shapes-cnn--test/report.json')) as any;
  assert.deepEqual(report.config.probes, ['clean', 'shift']);
  assert.equal(report.dataset.selected, 40);
  assert.equal(report.config.params.shift.k, 2, "skeptic.json's probe parameters");

  assert.equal(progress[0].kind, 'begin');
  assert.equal((progress[0] as { cancellable?: boolean }).cancellable, true);
  assert.ok(progress.some((p) => p.kind === 'report' && /^shift \d+\/40/.test(p.message ?? '')), JSON.stringify(progress));
  assert.equal(progress.at(-1)!.kind, 'end');

  // Diagnostics arrive one file at a time: wait for the three files.
  await daemon.waitFor('diagnostics on the model, the manifest and skeptic.json', () =>
    ['models/shapes-cnn.onnx', 'data/test.csv', 'skeptic.json'].every((p) => daemon.diagnosticsOf(file(p)).some((d) => d.source !== 'skeptic.json')),
  );

  // The model: model-level findings at 0:0, the probe as source, the rule as code with a link.
  const model = daemon.diagnosticsOf(file('models/shapes-cnn.onnx'));
  const fragile = model.find((d) => d.code === 'shift/fragile-model');
  assert.ok(fragile, JSON.stringify(model));
  assert.deepEqual(fragile.range, { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } });
  assert.equal(fragile.source, 'shift');
  assert.match(fragile.codeDescription!.href, /README\.md#probe-shift$/);

  // The manifest: one diagnostic per flagged row, on the text of the row's path.
  const csv = readFileSync(file('data/test.csv'), 'utf8');
  const rows = daemon.diagnosticsOf(file('data/test.csv'));
  const imageFindings = report.findings.filter((f: { subject: { line?: number } }) => f.subject.line !== undefined);
  assert.ok(imageFindings.length > 0);
  assert.equal(rows.length, imageFindings.length);
  for (const f of imageFindings) {
    const d = rows.find((r) => r.range.start.line === f.subject.line - 1 && r.code === f.rule);
    assert.ok(d, `a diagnostic on row ${f.subject.line}`);
    assert.equal(textAt(csv, d.range), report.images[f.subject.image].id, 'the range covers the path cell');
  }

  // skeptic.json: the model's findings on the entry's "path", a count on its "dataset".
  const cfg = daemon.diagnosticsOf(file('skeptic.json'));
  const onPath = cfg.find((d) => d.code === 'shift/fragile-model');
  assert.ok(onPath);
  assert.equal(textAt(SKEPTIC_JSON, onPath.range), '"models/shapes-cnn.onnx"');
  const onData = cfg.find((d) => d.code === 'report/image-findings');
  assert.equal(textAt(SKEPTIC_JSON, onData!.range), '"data/test.csv"');

  // Code lenses on the manifest and on skeptic.json's entry.
  for (const p of ['data/test.csv', 'skeptic.json']) {
    const lenses = await daemon.connection.sendRequest(CodeLensRequest.type, { textDocument: { uri: uri(p) } });
    assert.equal(lenses?.length, 1, p);
    assert.equal(lenses![0].command!.title, `${s.fragileImages} fragile images: show gallery`);
    assert.deepEqual(lenses![0].command!.arguments, [s.folder]);
  }
  const got = await daemon.connection.sendRequest(ReportRequest, { folder: s.folder });
  assert.equal((got!.report as { schemaVersion: number }).schemaVersion, 2);
});

test('class-folder data: diagnostics on the image files', async () => {
  const result = await audit({ dataset: uri('shapes'), limit: 40, probes: ['clean', 'shift'] });
  assert.equal(result.status, 'ok', result.error);
  const report = loadReport(file('.skeptic/reports/shapes-cnn--shapes/report.json')) as any;
  const perImage = report.findings.filter((f: { subject: { image?: number } }) => f.subject.image !== undefined);
  assert.ok(perImage.length > 0);
  for (const f of perImage) {
    assert.match(f.subject.uri, /\/shapes\/\w+\/[^/]+\.png$/);
    const ds = await daemon.waitFor(`diagnostics on ${f.subject.path}`, () => daemon.diagnostics.get(f.subject.uri));
    assert.deepEqual(ds[0].range.start, { line: 0, character: 0 });
  }
});

test('the worker keeps the audited model for the next audit of it (the log says so), and loads it again once the model file changes', async () => {
  const logSince = (n: number, re: RegExp) => daemon.logs.slice(n).filter((l) => re.test(l));
  const n0 = daemon.logs.length;
  let result = await audit({ dataset: uri('shapes'), limit: 8, probes: ['clean'] });
  assert.equal(result.status, 'ok', result.error);
  await daemon.waitFor('the log line of the kept model', () => logSince(n0, /shapes-cnn\.onnx: kept from the last audit/).length > 0 || undefined);
  assert.deepEqual(logSince(n0, /shapes-cnn\.onnx: loaded in/), [], 'not loaded again');

  const later = new Date(Date.now() + 10_000);
  utimesSync(file('models/shapes-cnn.onnx'), later, later);
  const n1 = daemon.logs.length;
  result = await audit({ dataset: uri('shapes'), limit: 8, probes: ['clean'] });
  assert.equal(result.status, 'ok', result.error);
  await daemon.waitFor('the log line of the model loaded again', () => logSince(n1, /shapes-cnn\.onnx: loaded in [\d.]+ s/).length > 0 || undefined);
  assert.deepEqual(logSince(n1, /kept from the last audit/), [], 'a changed model file is not the kept model');
});

test('"lanes" in skeptic.json: the worker audits in lanes (its log says so) and writes the report one lane writes', async () => {
  const params = { dataset: uri('shapes'), limit: 40, probes: ['clean', 'shift'], noCache: true };
  const reportFile = file('.skeptic/reports/shapes-cnn--shapes/report.json');
  const withoutRun = (r: any) => JSON.stringify({ ...r, run: undefined });
  const one = await audit(params);
  assert.equal(one.status, 'ok', one.error);
  const single = loadReport(reportFile) as any;
  assert.equal(single.run.lanes, undefined, 'one lane on this machine by default, or "lanes" absent');
  writeFileSync(file('skeptic.json'), SKEPTIC_JSON.replace('"probes": {', '"lanes": 2,\n  "probes": {'));
  try {
    const n0 = daemon.logs.length;
    const two = await audit(params);
    assert.equal(two.status, 'ok', two.error);
    const laned = loadReport(reportFile) as any;
    assert.deepEqual(laned.run.lanes, { count: 2, threads: laned.run.lanes.threads, why: '2 as asked' });
    assert.ok(daemon.logs.slice(n0).some((l) => /audit in 2 lanes of \d+ threads?/.test(l)), 'the log names the lanes');
    assert.equal(withoutRun(laned), withoutRun(single), 'the same report');
  } finally {
    writeFileSync(file('skeptic.json'), SKEPTIC_JSON);
  }
});

test('while an audit runs the daemon answers within 100 ms; cancel stops it and keeps the partial report', async (t) => {
  const progress = daemon.watchProgress('audit-long');
  // The whole manifest (400 images), no cache, the default shift sweep: several seconds of work.
  const running = audit({ limit: 400, noCache: true, batchSize: 8, params: { shift: { k: 8, embedPositions: 8 } } }, 'audit-long');
  await daemon.waitFor('the audit to be under way', () => progress.some((p) => p.kind === 'report' && /^shift [1-9]/.test(p.message ?? '')));

  const hoverAt = { textDocument: { uri: uri('skeptic.json') }, position: { line: 2, character: 17 } };
  await daemon.connection.sendRequest(StatusRequest); // resets the daemon's event-loop delay histogram
  const times: number[] = [];
  let loopMax = 0;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const status = await daemon.connection.sendRequest(StatusRequest);
    times.push(performance.now() - t0);
    assert.ok(status.audit, 'the audit is running');
    loopMax = Math.max(loopMax, status.eventLoopDelayMs!.max);
    const t1 = performance.now();
    await daemon.connection.sendRequest(HoverRequest.type, hoverAt);
    times.push(performance.now() - t1);
    await new Promise((r) => setTimeout(r, 20));
  }
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1];
  const max = times.at(-1)!;
  t.diagnostic(`latency while auditing (${times.length} requests: status, hover): median ${median.toFixed(1)} ms, p95 ${times[Math.floor(times.length * 0.95)].toFixed(1)} ms, max ${max.toFixed(1)} ms (target 50 ms); the daemon's own event loop was held up at most ${loopMax.toFixed(1)} ms`);
  assert.ok(max < 100, `slowest answer ${max.toFixed(1)} ms`);

  const cancelled = await daemon.connection.sendRequest(CancelRequest);
  assert.equal(cancelled.cancelled, true);
  const result = await running;
  assert.equal(result.status, 'cancelled', result.error);
  assert.equal(result.report?.cancelled, true);
  const report = loadReport(file('.skeptic/reports/shapes-cnn--test/report.json')) as any;
  assert.equal(report.run.cancelled, true);
  assert.equal(report.probes.shift.status, 'cancelled');
  assert.ok(report.probes.shift.count > 0 && report.probes.shift.count < 400, `partial: ${report.probes.shift.count} images`);
  assert.equal((await daemon.connection.sendRequest(CancelRequest)).cancelled, false, 'nothing left to cancel');
});

test('a worker crash ends the audit with a clear error; the daemon keeps answering and audits again', async () => {
  const progress = daemon.watchProgress('audit-crash');
  const running = audit({ limit: 400, noCache: true, batchSize: 8, params: { shift: { k: 8 } } }, 'audit-crash');
  await daemon.waitFor('the audit to be under way', () => progress.some((p) => p.kind === 'report' && /^shift [1-9]/.test(p.message ?? '')));
  const { workerPid } = await daemon.connection.sendRequest(StatusRequest);
  assert.ok(workerPid);
  process.kill(workerPid, 'SIGKILL');
  const result = await running;
  assert.equal(result.status, 'failed');
  assert.match(result.error!, /worker process was killed by SIGKILL while shift was running \(\d+\/400 images\)/);
  assert.match(result.error!, /the daemon is still running/);
  const status = await daemon.connection.sendRequest(StatusRequest);
  assert.equal(status.audit, undefined);
  const again = await audit({});
  assert.equal(again.status, 'ok', again.error);
  assert.notEqual((await daemon.connection.sendRequest(StatusRequest)).workerPid, workerPid, 'a fresh worker');
});

test('bad input fails the audit with the file named; other LSP clients audit through workspace/executeCommand', async () => {
  const bad = await audit({ dataset: uri('data/missing.csv') });
  assert.equal(bad.status, 'failed');
  assert.match(bad.error!, /dataset not found: .*missing\.csv/);

  const viaCommand = (await daemon.connection.sendRequest(ExecuteCommandRequest.type, {
    command: DAEMON_COMMANDS.audit,
    arguments: [{ model: uri('models/shapes-cnn.onnx') }],
  })) as AuditResult;
  assert.equal(viaCommand.status, 'ok', viaCommand.error);
  const report = (await daemon.connection.sendRequest(ExecuteCommandRequest.type, { command: DAEMON_COMMANDS.report, arguments: [{ model: uri('models/shapes-cnn.onnx'), dataset: uri('data/test.csv') }] })) as { summary: { folder: string } };
  assert.equal(report.summary.folder, viaCommand.report!.folder);
});

test('choosing the data: candidates for a model without an entry, and saving the pair to skeptic.json', async () => {
  copyFileSync(file('models/shapes-cnn.onnx'), file('models/other.onnx'));
  // As VS Code's file watcher would tell it:
  await daemon.connection.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: uri('models/other.onnx'), type: FileChangeType.Created }] });
  const choice = await daemon.connection.sendRequest(DatasetsRequest, { model: uri('models/other.onnx') });
  assert.equal(choice.configured, undefined);
  const found = choice.candidates.map((c) => `${c.kind}:${c.label}`);
  assert.ok(found.includes('csv:data/test.csv'), found.join(' '));
  assert.ok(found.includes('folder:shapes'), found.join(' '));
  assert.ok(found.includes('folder:data/test'), found.join(' '));
  assert.equal((await daemon.connection.sendRequest(DatasetsRequest, { model: uri('models/shapes-cnn.onnx') })).configured?.dataset, uri('data/test.csv'));

  const saved = await daemon.connection.sendRequest(SaveModelEntryRequest, { model: uri('models/other.onnx'), dataset: uri('shapes') });
  assert.deepEqual(saved, { configFile: uri('skeptic.json'), applied: true, created: false });
  const text = readFileSync(file('skeptic.json'), 'utf8');
  assert.match(text, /\/\/ the demo model/, 'comments kept');
  assert.match(text, /"path": "models\/other\.onnx",\s*"dataset": "shapes"/);
  assert.equal((await daemon.connection.sendRequest(DatasetsRequest, { model: uri('models/other.onnx') })).configured?.dataset, uri('shapes'));
  const models = await daemon.connection.sendRequest(ModelsRequest, { dataset: uri('shapes') });
  assert.equal(models.find((m) => m.label === 'models/other.onnx')?.configuredDataset, uri('shapes'));
  writeFileSync(file('skeptic.json'), SKEPTIC_JSON);
});

test('reports are read back on start: a fresh daemon publishes them without auditing', async () => {
  await daemon.stop();
  daemon = await TestDaemon.start({ workspace: ws });
  await daemon.waitFor('diagnostics from the saved reports', () => ['models/shapes-cnn.onnx', 'data/test.csv', 'skeptic.json'].every((p) => daemon.diagnosticsOf(file(p)).some((d) => d.source === 'shift')));
  assert.ok(daemon.diagnosticsOf(file('models/shapes-cnn.onnx')).some((d) => d.code === 'shift/fragile-model'));
  const reports = await daemon.connection.sendRequest(ReportsRequest);
  assert.deepEqual(reports.map((r) => r.datasetName).sort(), ['shapes', 'test.csv']);
  const changed = daemon.notifications.find((n) => n.method === 'skeptic/reportsChanged');
  assert.equal((changed?.params as { reports: unknown[] }).reports.length, 2);
  assert.equal((await daemon.connection.sendRequest(StatusRequest)).audit, undefined);
});

test('a fixture model on fixture data (MNIST idx): diagnostics on the idx file', { skip: existsSync(FIXTURES) ? false : `no fixtures at ${FIXTURES}` }, async () => {
  mkdirSync(file('mnist'));
  copyFileSync(join(FIXTURES, 'models/mnist-8_onnxzoo_cntk.onnx'), file('mnist/mnist-8.onnx'));
  writeFileSync(
    file('mnist/skeptic.json'),
    JSON.stringify({ models: [{ path: 'mnist-8.onnx', dataset: join(FIXTURES, 'mnist'), preprocess: 'unit', probes: ['clean', 'shift'], limit: 30 }], probes: { shift: { k: 2, embedPositions: 2 } } }),
  );
  const result = await audit({ model: uri('mnist/mnist-8.onnx') });
  assert.equal(result.status, 'ok', result.error);
  assert.ok(existsSync(file('mnist/.skeptic/reports/mnist-8--mnist/report.json')), 'beside its skeptic.json');
  const report = loadReport(file('mnist/.skeptic/reports/mnist-8--mnist/report.json')) as any;
  assert.equal(report.dataset.kind, 'idx');
  const idx = report.findings.filter((f: { subject: { index?: number } }) => f.subject.index !== undefined);
  for (const f of idx) {
    const ds = await daemon.waitFor('idx diagnostics', () => daemon.diagnostics.get(f.subject.uri));
    assert.ok(ds.some((d) => d.range.start.line === 0 && String(d.message).includes(`#${f.subject.index}`)));
  }
});
