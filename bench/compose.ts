/**
 * Building the composed graphs (views/session.ts's composedModel: the view graph in front of the
 * model's pixel-space graph, encoded for ONNX Runtime) for five plans over one model, as a first
 * audit builds one per plan: the time of each, in a fresh process. By default the model is a
 * small conv net carrying --mb MB of weights (where the encoding of the model's weights shows);
 * --model FILE builds them over that model instead (e.g. the fixture MobileNetV2-int8). With
 * --against DIR (another checkout), that checkout's engine builds the same plans in a process of
 * its own, before this one's, so both pay a fresh process's costs.
 *
 *   node --import tsx bench/compose.ts [--mb 100] [--model FILE [--preprocess P]] [--against DIR]
 *
 * A diagnostic, not a target (bench/audit.ts holds the target).
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '100' },
    model: { type: 'string' },
    preprocess: { type: 'string' },
    against: { type: 'string' },
    // internal: the checkout whose engine this process uses
    engine: { type: 'string' },
  },
});

async function main(): Promise<void> {
  if (!values.engine) {
    const args = ['--import', 'tsx', __filename, '--mb', values.mb!, ...(values.model ? ['--model', resolve(values.model)] : []), ...(values.preprocess ? ['--preprocess', values.preprocess] : [])];
    for (const dir of [...(values.against ? [values.against] : []), resolve(__dirname, '..')]) {
      console.log(`== ${dir}`);
      process.stdout.write(execFileSync(process.execPath, [...args, '--engine', resolve(dir)], { encoding: 'utf8' }));
    }
    return;
  }
  const engine = values.engine;
  const { loadModel } = (await import(resolve(engine, 'server/engine/model/index.ts'))) as typeof import('../server/engine/model');
  const { composedModel } = (await import(resolve(engine, 'server/engine/views/session.ts'))) as typeof import('../server/engine/views/session');
  const { buildModel, node, seeded, tensor, writeModel } = await import('../test/unit/helpers/onnx-builder');
  let file = values.model;
  if (!file) {
    const mb = Number(values.mb);
    if (!(mb > 0)) throw new Error(`--mb takes a positive number, not ${values.mb}`);
    // a conv net that reads an 8×8 image, and an initializer no node reads: the weights' bytes
    const extra = new Float32Array(Math.round((mb * 1e6) / 4)).fill(0.5);
    file = writeModel(
      buildModel({
        inputs: [{ name: 'x', shape: ['N', 1, 8, 8] }],
        outputs: [{ name: 'y', shape: ['N', 3] }],
        initializers: [tensor('cw', [4, 1, 3, 3], seeded(36, 1)), tensor('W', [4, 3], seeded(12, 3)), tensor('extra', [extra.length], extra)],
        nodes: [node('Conv', ['x', 'cw'], ['c'], { pads: [1, 1, 1, 1] }), node('GlobalAveragePool', ['c'], ['p']), node('Flatten', ['p'], ['f'], { axis: 1 }), node('MatMul', ['f', 'W'], ['y'])],
      }),
      'weights.onnx',
    );
  }
  const model = await loadModel(file, { device: 'cpu', preprocess: values.preprocess ?? (values.model ? undefined : 'unit') });
  try {
    const { channels, height, width } = model.info;
    let all = 0;
    for (let k = 0; k < 5; k++) {
      // five different plans: a crop and a photometric view each
      const plan = { channels, height, width, margin: 2, ops: [{ kind: 'crop' as const, top: k % 3, left: 2 - (k % 3) }, { kind: 'brightness' as const, delta: 0.1 * (k + 1) }] };
      const t0 = performance.now();
      const built = await composedModel(model, plan, 2);
      const ms = performance.now() - t0;
      if (!('bytes' in built)) throw new Error(`${file}: no composed graph (${built.reason})`);
      all += ms;
      console.log(`plan ${k + 1}: ${ms.toFixed(0)} ms (${(built.bytes.length / 1e6).toFixed(1)} MB)`);
    }
    console.log(`five plans: ${all.toFixed(0)} ms`);
  } finally {
    await model.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
