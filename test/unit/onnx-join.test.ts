/**
 * Joining encoded initializers to a graph encoded without them (model/onnx.ts's
 * encodeInitializers and encodeModelWith, which the views use to build a composed graph per plan
 * without encoding the model's weights again): the join decodes to the model encodeModel writes,
 * for every length of the graph's field (one- to four-byte lengths), with the model's fields
 * after its graph kept; ONNX Runtime runs the joined model to the same outputs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { decodeModel, encodeInitializers, encodeModel, encodeModelWith, onnx } from '../../server/engine/model/onnx';
import { buildModel, node, seeded, tensor } from './helpers/onnx-builder';

/**
 * y = x·W + b (or, `tiny`, y = x alone: a graph short enough for a one-byte length), with `pad`,
 * an unused initializer of `padValues` values, to set the graph's length.
 */
function paddedModel(padValues: number, tiny = false): onnx.ModelProto {
  const pad = tensor('p', [padValues], seeded(padValues, 3));
  const bytes = buildModel(
    tiny
      ? { inputs: [{ name: 'x', shape: [1] }], outputs: [{ name: 'y', shape: [1] }], initializers: [pad], nodes: [node('Identity', ['x'], ['y'])] }
      : {
          inputs: [{ name: 'x', shape: ['N', 4] }],
          outputs: [{ name: 'y', shape: ['N', 3] }],
          initializers: [tensor('W', [4, 3], seeded(12, 1)), tensor('b', [3], seeded(3, 2)), pad],
          nodes: [node('MatMul', ['x', 'W'], ['xw']), node('Add', ['xw', 'b'], ['y'])],
        },
  );
  const m = decodeModel(bytes, 'padded');
  // a field after the graph's (field 14), which the join must keep
  m.metadataProps = [{ key: 'made-by', value: 'onnx-join.test' }];
  return m;
}

/** The model split as composedModel splits it: the graph without the weights, their bytes. */
function join(m: onnx.ModelProto): Uint8Array {
  const g = m.graph!;
  const initializers = encodeInitializers(g.initializer ?? []);
  const light = { ...m, graph: { ...g, initializer: [] } };
  return encodeModelWith(light, initializers);
}

const plain = (bytes: Uint8Array) => onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes), { longs: String, bytes: Array, defaults: false });

test('a graph joined to its initializers\' bytes decodes to encodeModel\'s model, at lengths of one to four bytes', () => {
  // graphs around each length's edge: 127/128 (tiny), 16383/16384 and 2^21 (4 bytes a value)
  const cases: Array<[number, boolean]> = [...[0, 4, 8, 12, 16, 20, 24, 28, 32].map((n): [number, boolean] => [n, true]), ...[0, 4036, 4038, 4040, 4042, 4044, 4046, 524_250, 524_300].map((n): [number, boolean] => [n, false])];
  const lengths = new Set<number>();
  for (const [n, tiny] of cases) {
    const m = paddedModel(n, tiny);
    const whole = encodeModel(m);
    const joined = join(m);
    assert.equal(joined.length, whole.length, `${n} values${tiny ? ', tiny' : ''}: same size`);
    assert.deepEqual(plain(joined), plain(whole), `${n} values${tiny ? ', tiny' : ''}`);
    assert.deepEqual(decodeModel(joined, 'joined').metadataProps!.map((p) => p.key), ['made-by']);
    lengths.add(onnx.GraphProto.encode(m.graph!).finish().length);
  }
  // the lengths crossed each varint boundary: 127/128, 16383/16384, 2^21
  const crossed = (edge: number) => [...lengths].some((l) => l < edge) && [...lengths].some((l) => l >= edge);
  assert.ok(crossed(128) && crossed(16384) && crossed(1 << 21), `lengths ${[...lengths].sort((a, b) => a - b).join(', ')}`);
});

test('the graph\'s own initializers stay and the joined ones follow; ONNX Runtime runs the joined model to the whole model\'s outputs', async () => {
  const m = paddedModel(5);
  const g = m.graph!;
  const initializers = encodeInitializers(g.initializer!.filter((t) => t.name !== 'b'));
  const light = { ...m, graph: { ...g, initializer: g.initializer!.filter((t) => t.name === 'b') } };
  const joined = encodeModelWith(light, initializers);
  assert.deepEqual(decodeModel(joined, 'joined').graph!.initializer!.map((t) => t.name), ['b', 'W', 'p']);
  const x = seeded(8, 9);
  const outputs = [];
  for (const bytes of [encodeModel(m), joined]) {
    const s = await ort.InferenceSession.create(bytes);
    try {
      outputs.push((await s.run({ x: new ort.Tensor('float32', x, [2, 4]) })).y.data as Float32Array);
    } finally {
      await s.release();
    }
  }
  assert.deepEqual(outputs[1], outputs[0]);
});
