/**
 * The daemon's worker keeps the last audited model loaded for the next audit of the same model
 * (server/kept-model.ts): the key changes with anything the model was loaded from, and the keeper
 * gives the model back only under its own key, disposing it otherwise, when idle, or when told.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { modelKey, ModelKeeper } from '../../server/kept-model';

test('the key of a model: the same while nothing changes; another when the model, a file beside it, a labels file elsewhere or an option changes; none for a crowded folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'skeptic-kept-'));
  try {
    const dir = join(root, 'm');
    mkdirSync(dir);
    const model = join(dir, 'net.onnx');
    writeFileSync(model, 'weights');
    const labels = join(root, 'names.txt');
    writeFileSync(labels, 'a\nb\n');
    const opts = { device: 'cpu', batchSize: 32 };
    const k0 = modelKey(model, opts, labels);
    assert.ok(k0);
    assert.equal(modelKey(model, { device: 'cpu', batchSize: 32 }, labels), k0, 'same files, same options');
    assert.notEqual(modelKey(model, { device: 'cpu', batchSize: 64 }, labels), k0, 'another option');
    assert.notEqual(modelKey(model, opts), k0, 'no labels file');

    writeFileSync(join(dir, 'labels.txt'), 'x\ny\n');
    const k1 = modelKey(model, opts, labels);
    assert.notEqual(k1, k0, 'a labels file appears beside the model');
    writeFileSync(join(dir, 'net.onnx.data'), 'external weights');
    const k2 = modelKey(model, opts, labels);
    assert.notEqual(k2, k1, 'an external data file appears');
    writeFileSync(join(dir, 'net.onnx.data'), 'external weightz'); // same size
    utimesSync(join(dir, 'net.onnx.data'), new Date(2000, 0, 1), new Date(2000, 0, 1));
    assert.notEqual(modelKey(model, opts, labels), k2, 'an external data file rewritten (same size, another time)');
    mkdirSync(join(dir, 'weights'));
    writeFileSync(join(dir, 'weights', 'w.bin'), 'w1');
    const k2b = modelKey(model, opts, labels);
    assert.notEqual(k2b, k2, 'external data in a subfolder appears');
    writeFileSync(join(dir, 'weights', 'w.bin'), 'w2'); // same size
    utimesSync(join(dir, 'weights', 'w.bin'), new Date(2001, 0, 1), new Date(2001, 0, 1));
    assert.notEqual(modelKey(model, opts, labels), k2b, 'external data in a subfolder rewritten');
    const k3 = modelKey(model, opts, labels);
    writeFileSync(labels, 'a\nb\nc\n');
    assert.notEqual(modelKey(model, opts, labels), k3, 'the labels file named elsewhere changes');
    const k4 = modelKey(model, opts, labels);
    writeFileSync(model, 'weights, retrained');
    assert.notEqual(modelKey(model, opts, labels), k4, 'the model itself changes');

    for (let i = 0; i < 300; i++) writeFileSync(join(dir, `img${i}.png`), '');
    assert.equal(modelKey(model, opts, labels), undefined, 'a model beside hundreds of files is not kept');
    assert.equal(modelKey(join(root, 'gone', 'net.onnx'), opts), undefined, 'an unreadable folder');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

class FakeModel {
  disposed = 0;
  constructor(readonly name: string) {}
  async dispose(): Promise<void> {
    this.disposed++;
  }
}

test('the keeper gives a model back under its key only, disposes it under another, with no key, when idle or released, and holds one at a time', async () => {
  const keeper = new ModelKeeper<FakeModel>(60_000);
  assert.equal(await keeper.take('a'), undefined, 'nothing kept yet');
  const a = new FakeModel('a');
  await keeper.keep('a', a);
  assert.equal(keeper.holding, true);
  assert.equal(await keeper.take('a'), a, 'the same model under its key');
  assert.equal(a.disposed, 0, 'not disposed while handed out');
  assert.equal(keeper.holding, false, 'taken out while an audit uses it');

  await keeper.keep('a', a);
  assert.equal(await keeper.take('b'), undefined, 'another key');
  assert.equal(a.disposed, 1, 'the other model is disposed before another loads');
  assert.equal(await keeper.take(undefined), undefined);

  const b = new FakeModel('b');
  await keeper.keep(undefined, b);
  assert.equal(b.disposed, 1, 'a model without a key is not kept');
  assert.equal(keeper.holding, false);

  const c = new FakeModel('c');
  const d = new FakeModel('d');
  await keeper.keep('c', c);
  await keeper.keep('d', d);
  assert.equal(c.disposed, 1, 'keeping another disposes the one held');
  await keeper.release();
  assert.equal(d.disposed, 1, 'release disposes');
  assert.equal(await keeper.take('d'), undefined);

  const off = new ModelKeeper<FakeModel>(0);
  const e = new FakeModel('e');
  await off.keep('e', e);
  assert.equal(e.disposed, 1, 'keeping for 0 ms is not keeping');

  const brief = new ModelKeeper<FakeModel>(30);
  const f = new FakeModel('f');
  await brief.keep('f', f);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(f.disposed, 1, 'disposed after the idle time');
  assert.equal(await brief.take('f'), undefined);
});
