/**
 * Report schema version 2: report.json keeps summaries and a capped list of findings, and the
 * per-image data (image table, probe records, every finding) goes to JSON Lines files beside it.
 * So report.json no longer grows with the dataset, the files read back to the same report, and
 * readers (compare) take version 1 and version 2 reports alike.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Ajv from 'ajv';
import { audit } from '../../server/engine/audit';
import { compareReports } from '../../server/engine/compare';
import { loadReport } from '../../server/engine/compare/load';
import { createProbes } from '../../server/engine/probes';
import { embeddableReport } from '../../server/engine/report/per-image';
import { MAX_FINDINGS_IN_REPORT, readJsonLines } from '../../server/engine/report/per-image';
import schema from '../../server/engine/report/report.schema.json';
import type { Report } from '../../server/engine/report/schema';
import { writeReport } from '../../server/engine/report/write';
import { fakeDataset, gray, leftRightModel, type FakeItem } from './helpers/fake';

const work = mkdtempSync(join(tmpdir(), 'skeptic-per-image-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A left/right model on 4×4 images with one lit pixel, over `n` rows; `broken` rows fail to decode. */
async function reportOf(n: number, broken = 0): Promise<Report> {
  const model = leftRightModel();
  const items: FakeItem[] = Array.from({ length: n }, (_, i) => {
    if (i < broken) return { id: `bad${String(i).padStart(5, '0')}.png`, label: 0, error: 'truncated PNG' };
    const rows = Array.from({ length: 4 }, () => new Array<number>(4).fill(0));
    rows[i % 4][i % 4] = 1;
    // same-length ids, so that nothing but the number of rows differs between two sizes
    return { id: `img${String(i).padStart(5, '0')}.png`, label: i % 4 < 2 ? 0 : 1, image: gray(rows) };
  });
  const report = await audit(model, fakeDataset(items), { probes: createProbes(['clean']), baseDir: '/' });
  // wall-clock facts differ between runs; fix them so sizes compare
  report.run.startedAt = '2026-01-01T00:00:00.000Z';
  report.run.durationMs = 0;
  report.run.timingsMs = { clean: 0 };
  return report;
}

async function written(name: string, report: Report): Promise<string> {
  const dir = join(work, name);
  await writeReport(report, dir, ['json']);
  return dir;
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean);

test('report.json does not grow with the number of images; images.jsonl and records.jsonl have one line per image', async () => {
  const small = await reportOf(50);
  const large = await reportOf(500);
  const a = await written('n50', small);
  const b = await written('n500', large);
  const sa = statSync(join(a, 'report.json')).size;
  const sb = statSync(join(b, 'report.json')).size;
  // Counts and sums print with a digit or so more; the per-image data (500 × ~150 bytes) is gone.
  assert.ok(Math.abs(sb - sa) < 200, `report.json: ${sa} bytes for 50 images, ${sb} for 500`);
  assert.equal(lines(join(b, 'images.jsonl')).length, 500);
  assert.equal(lines(join(b, 'records.jsonl')).length, 500, 'one clean record per image');
  assert.ok(statSync(join(b, 'records.jsonl')).size > 9 * statSync(join(a, 'records.jsonl')).size, 'the records file does grow');

  const onDisk = JSON.parse(readFileSync(join(b, 'report.json'), 'utf8'));
  assert.equal(onDisk.schemaVersion, 2);
  assert.equal(onDisk.images, undefined);
  assert.equal(onDisk.probes.clean.records, undefined);
  assert.deepEqual(onDisk.perImage.images, { file: 'images.jsonl', count: 500 });
  assert.deepEqual(onDisk.perImage.records.counts, { clean: 500 });
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  assert.ok(validate(onDisk), JSON.stringify(validate.errors, null, 1));

  // Read back, the report is the one in memory: same image table, same records, same findings.
  const back = loadReport(b);
  assert.deepEqual(back.images, large.images);
  assert.deepEqual(back.probes.clean.records, large.probes.clean.records);
  assert.deepEqual(back.findings, large.findings);
  assert.deepEqual({ ...back, perImage: undefined }, { ...JSON.parse(JSON.stringify(large)), perImage: undefined });
  // each line is a record object of the shape the probe made, under its probe's name
  const first = JSON.parse(lines(join(b, 'records.jsonl'))[0]);
  assert.deepEqual(first, { probe: 'clean', record: large.probes.clean.records[0] });
  assert.deepEqual([...readJsonLines(join(b, 'images.jsonl'))][499], large.images[499]);
});

test('findings past the cap are only in findings.jsonl, and come back whole', async () => {
  const report = await reportOf(MAX_FINDINGS_IN_REPORT + 300, MAX_FINDINGS_IN_REPORT + 200);
  assert.ok(report.findings.length > MAX_FINDINGS_IN_REPORT);
  const dir = await written('capped', report);
  const onDisk = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
  assert.equal(onDisk.findings.length, MAX_FINDINGS_IN_REPORT);
  assert.deepEqual(onDisk.perImage.findings, { file: 'findings.jsonl', count: report.findings.length, inReport: MAX_FINDINGS_IN_REPORT });
  assert.deepEqual(onDisk.findings, report.findings.slice(0, MAX_FINDINGS_IN_REPORT), 'model-level findings first, then in image order');
  assert.equal(lines(join(dir, 'findings.jsonl')).length, report.findings.length);
  assert.deepEqual(loadReport(dir).findings, report.findings);

  // the standalone page embeds part of such a report, and says so
  const page = embeddableReport(report, 100);
  assert.equal(page.images.length, 100);
  assert.ok(page.findings.every((f) => f.subject.image === undefined || f.subject.image < 100));
  assert.ok(page.probes.clean.records.every((r) => r.image < 100));
  assert.match(page.warnings.at(-1)!, /shows 100 of 1300 images/);
});

test('a version 1 report (everything inline) still loads, and compares with its version 2 twin', async () => {
  const report = await reportOf(40, 3);
  const v2 = await written('v2', report);
  const v1 = join(work, 'v1');
  mkdirSync(v1, { recursive: true });
  writeFileSync(join(v1, 'report.json'), JSON.stringify({ ...report, schemaVersion: 1 }));
  const old = loadReport(v1);
  assert.equal(old.schemaVersion, 1);
  assert.deepEqual(old.images, report.images);
  const now = loadReport(v2);
  const c = compareReports(old, now);
  assert.equal(c.images.fragile.length, 0);
  assert.equal(c.images.recovered.length, 0);
  assert.equal(c.findings.new.length, 0);
  assert.equal(c.findings.absent.length, 0);
  const acc = c.metrics.find((m) => m.key === 'clean.accuracy')!;
  assert.equal(acc.diff, 0);
  assert.equal(acc.n, 37, 'paired on the 37 decoded images');

  // per-image files of another report (one being written meanwhile): refused, not mixed
  writeFileSync(join(v2, 'images.jsonl'), lines(join(v2, 'images.jsonl')).slice(1).join('\n') + '\n');
  assert.throws(() => loadReport(v2), /images\.jsonl has 39 lines where report\.json expects 40/);
  // a version 2 report.json whose per-image file is gone: one line naming the file
  rmSync(join(v2, 'records.jsonl'));
  assert.throws(() => loadReport(v2), /records\.jsonl is missing/);
});
