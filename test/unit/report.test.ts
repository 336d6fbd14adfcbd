/**
 * The report contract: a real report validates against report.schema.json, SARIF points at the
 * model and at manifest rows, and the summary names each probe's headline.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Ajv from 'ajv';
import { audit } from '../../server/engine/audit';
import { createProbes } from '../../server/engine/probes';
import schema from '../../server/engine/report/report.schema.json';
import { toSarif } from '../../server/engine/report/sarif';
import { summaryText } from '../../server/engine/report/summary';
import { fakeDataset, gray, leftRightModel, type FakeItem } from './helpers/fake';

async function sampleReport() {
  // 4×4 images with one lit pixel; the model says left/right half, as in the shift test. The
  // pixel sits next to the middle, so a 1-pixel shift flips some of them.
  const model = leftRightModel();
  const items: FakeItem[] = Array.from({ length: 8 }, (_, i) => {
    const rows = Array.from({ length: 6 }, () => new Array<number>(6).fill(0));
    rows[1 + (i % 4)][1 + (i % 4)] = 1;
    return { id: `img${i}.png`, label: i % 4 < 2 ? 0 : 1, image: gray(rows) };
  });
  items.push({ id: 'bad.png', label: 0, error: 'bad.png: truncated PNG' });
  return audit(model, fakeDataset(items, 1), {
    probes: createProbes(['clean', 'shift'], { shift: { k: 1, embedPositions: 2 } }),
    baseDir: '/',
  });
}

test('a real report validates against the JSON Schema', async () => {
  const report = await sampleReport();
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  const ok = validate(JSON.parse(JSON.stringify(report)));
  assert.ok(ok, JSON.stringify(validate.errors, null, 1));
  assert.ok(report.findings.some((f) => f.rule === 'shift/one-pixel-flip'), 'the sample has shift findings');

  // and the schema is not vacuous: a finding without a subject is rejected
  const broken = JSON.parse(JSON.stringify(report));
  delete broken.findings[0].subject;
  assert.equal(validate(broken), false);
});

test('SARIF 2.1.0 results point at manifest rows and the model', async () => {
  const report = await sampleReport();
  const sarif = toSarif(report);
  assert.equal(sarif.version, '2.1.0');
  const run = sarif.runs[0];
  const ruleIds = run.tool.driver.rules!.map((r) => r.id);
  assert.equal(run.results!.length, report.findings.length);
  for (const r of run.results!) {
    assert.ok(ruleIds.includes(r.ruleId!), `rule ${r.ruleId} described`);
    assert.equal(run.tool.driver.rules![r.ruleIndex!].id, r.ruleId);
  }
  const row = run.results!.find((r) => r.ruleId === 'data/unreadable-image')!;
  assert.equal(row.level, 'error');
  assert.equal(row.locations![0].physicalLocation!.artifactLocation!.uri, 'data/manifest.csv');
  assert.equal(row.locations![0].physicalLocation!.region!.startLine, 10);
  const model = run.results!.find((r) => r.ruleId === 'shift/fragile-model')!;
  assert.equal(model.locations![0].physicalLocation!.artifactLocation!.uri, 'models/fake.onnx');
  assert.equal(model.locations![0].physicalLocation!.region, undefined);
});

test('the summary shows each probe headline and the findings', async () => {
  const report = await sampleReport();
  const text = summaryText(report);
  assert.match(text, /clean\s+ok\s+accuracy \d+\.\d%/);
  assert.match(text, /shift\s+ok\s+1-px shift changes/);
  assert.match(text, /Findings: 1 error\(s\), \d+ warning\(s\)/);
  assert.match(text, /data\/manifest\.csv:10/);
});
