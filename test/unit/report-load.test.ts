/**
 * One report loader (report/load.ts) behind `skeptic compare` (compare/load.ts's loadReport) and
 * the daemon's report store: both read version 1 and version 2 reports alike, and both refuse the
 * same bad reports with a message that names the file and says what is wrong.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ReportStore } from '../../server/daemon/reports';
import { audit } from '../../server/engine/audit';
import { loadReport } from '../../server/engine/compare/load';
import { SkepticInputError } from '../../server/engine/errors';
import { createProbes } from '../../server/engine/probes';
import type { Report } from '../../server/engine/report/schema';
import { writeReport } from '../../server/engine/report/write';
import { fakeDataset, gray, leftRightModel } from './helpers/fake';

const work = mkdtempSync(join(tmpdir(), 'skeptic-report-load-'));
after(() => rmSync(work, { recursive: true, force: true }));

async function sampleReport(): Promise<Report> {
  const items = Array.from({ length: 6 }, (_, i) => {
    const rows = Array.from({ length: 4 }, () => new Array<number>(4).fill(0));
    rows[i % 4][i % 4] = 1;
    return { id: `img${i}.png`, label: i % 4 < 2 ? 0 : 1, image: gray(rows) };
  });
  return audit(leftRightModel(), fakeDataset(items), { probes: createProbes(['clean']), baseDir: '/' });
}

let n = 0;
/** A folder holding a good version 2 report, then `spoil` applied to it. */
async function reportFolder(report: Report, spoil?: (dir: string, json: Record<string, any>) => Record<string, any> | string | void): Promise<string> {
  const dir = join(work, `r${n++}`);
  await writeReport(report, dir, ['json']);
  if (spoil) {
    const file = join(dir, 'report.json');
    const json = JSON.parse(readFileSync(file, 'utf8'));
    const out = spoil(dir, json);
    writeFileSync(file, typeof out === 'string' ? out : JSON.stringify(out ?? json));
  }
  return dir;
}

test('compare and the daemon read the same good reports, version 2 and version 1', async () => {
  const report = await sampleReport();
  const v2 = await reportFolder(report);
  const v1 = join(work, 'v1');
  mkdirSync(v1);
  writeFileSync(join(v1, 'report.json'), JSON.stringify({ ...report, schemaVersion: 1 }));
  for (const dir of [v2, v1]) {
    const viaCompare = loadReport(dir);
    const store = new ReportStore();
    assert.equal(store.load(dir), undefined);
    const viaDaemon = store.get(dir)!.report;
    assert.deepEqual(viaDaemon, viaCompare);
    assert.equal(viaCompare.images.length, 6);
    assert.equal(viaCompare.probes.clean.records.length, 6);
  }
});

test('compare and the daemon refuse the same bad reports, naming the file and why', async () => {
  const report = await sampleReport();
  const cases: Array<[string, Parameters<typeof reportFolder>[1], RegExp]> = [
    ['not JSON', () => '{"schemaVersion": 2,', /report\.json: not valid JSON/],
    ['another tool', (_d, j) => ({ ...j, tool: { name: 'other' } }), /report\.json: not a Skeptic report/],
    ['a JSON array', () => '[1, 2]', /report\.json: not a Skeptic report/],
    ['a future version', (_d, j) => ({ ...j, schemaVersion: 3 }), /report\.json: report schema version 3, this Skeptic reads versions 1 and 2/],
    ['no probes', (_d, j) => ({ ...j, probes: undefined }), /report\.json: the report has no "probes"/],
    ['findings not a list', (_d, j) => ({ ...j, findings: {} }), /report\.json: the report has no "findings" list/],
    ['no run', (_d, j) => ({ ...j, run: null }), /report\.json: the report has no "run"/],
    ['a probe without status', (_d, j) => ({ ...j, probes: { clean: {} } }), /report\.json: probe "clean" has no status/],
    ['version 2 without perImage', (_d, j) => ({ ...j, perImage: undefined }), /report\.json: the report has no "perImage"/],
    ['a per-image file elsewhere', (_d, j) => ({ ...j, perImage: { ...j.perImage, images: { file: '../../etc/passwd', count: 6 } } }), /report\.json: "perImage\.images" must name a file beside report\.json/],
    ['a bad line count', (_d, j) => ({ ...j, perImage: { ...j.perImage, records: { file: 'records.jsonl', counts: { clean: -1 } } } }), /report\.json: "perImage\.records" must name a file/],
    ['version 1 without records', (_d, j) => ({ ...j, schemaVersion: 1, perImage: undefined }), /report\.json: probe "clean" has no "records" list/],
    ['version 1 without images', (_d, j) => ({ ...j, schemaVersion: 1, perImage: undefined, probes: { clean: { ...j.probes.clean, records: [] } } }), /report\.json: the report has no "images" list/],
    ['records.jsonl missing', (d) => unlinkSync(join(d, 'records.jsonl')), /records\.jsonl is missing/],
    ['images.jsonl short', (d) => writeFileSync(join(d, 'images.jsonl'), readFileSync(join(d, 'images.jsonl'), 'utf8').split('\n').slice(1).join('\n')), /images\.jsonl has 5 lines where report\.json expects 6/],
    ['records.jsonl not JSON', (d) => writeFileSync(join(d, 'records.jsonl'), '{oops\n'), /records\.jsonl:1: not valid JSON/],
  ];
  for (const [what, spoil, expected] of cases) {
    const dir = await reportFolder(report, spoil);
    let thrown: unknown;
    try {
      loadReport(dir);
    } catch (e) {
      thrown = e;
    }
    assert.ok(thrown instanceof SkepticInputError, `${what}: compare refuses it with a SkepticInputError (got ${String(thrown)})`);
    const message = (thrown as Error).message;
    assert.match(message, expected, what);
    assert.ok(message.startsWith(dir), `${what}: the message starts with the file: ${message}`);

    const store = new ReportStore();
    const problem = store.load(dir);
    assert.equal(problem, message, `${what}: the daemon says the same`);
    assert.equal(store.get(dir), undefined, `${what}: the daemon keeps no report`);
  }
  // A folder named report.json: the same refusal from both.
  const odd = join(work, 'odd');
  mkdirSync(join(odd, 'report.json'), { recursive: true });
  assert.throws(() => loadReport(odd), /report\.json: not a file/);
  assert.match(new ReportStore().load(odd)!, /report\.json: not a file/);
});
