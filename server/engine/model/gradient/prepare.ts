/**
 * The forward half of the gradient model: the model's own graph, re-read from its file, made
 * ready to be differentiated in pixel space:
 *
 *   1. int8 graphs become their float shadow (shadow.ts);
 *   2. float16/float64/bfloat16 weights and casts become float32 (the gradient is computed in
 *      float32; the note says so);
 *   3. the default-domain opset is raised to at least 11 (the backward ops need it), rewriting
 *      the few forward ops whose signature changed (Clip, Pad, Slice, TopK, BatchNormalization,
 *      Upsample/Resize-10, Scatter);
 *   4. the pixel-space prefix of pixels.ts goes in front (scale, mean/std, BGR, NHWC or flat
 *      layout), so the gradient is d loss / d pixel in [0,1], the units a person sees;
 *   5. a fixed batch of 1 becomes symbolic (batch.ts) where loadModel verified that rewrite.
 */
import type { LoadedModel } from '../../types';
import { decodeModel, inlineExternalData, onnx, toNum } from '../onnx';
import { introspect, planInput, type InputPlan } from '../introspect';
import { hfInputSize, readHfConfig } from '../preprocess';
import { addPixelPrefix, canPrefix } from '../pixels';
import { makeBatchSymbolic } from '../batch';
import { A } from './builder';
import { f32Init, i64Init, readTensor, attrOf, attrInts } from './tensor';
import { floatShadow } from './shadow';
import { GradientUnsupportedError, UnsupportedList } from './errors';

export type RunMode = { kind: 'dynamic'; max: number } | { kind: 'fixed'; size: number } | { kind: 'single' };

export interface Forward {
  m: onnx.ModelProto;
  file: string;
  /** The pixel-space input ([N,C,H,W] float32 in [0,1]). */
  pixel: string;
  plan: InputPlan;
  /** Default-domain opset of the gradient graph and of the model. */
  opset: number;
  modelOpset: number;
  notes: string[];
  /** For shadowed nodes: output name → the original node (index, op type). */
  origin: Map<string, { id: number; op: string }>;
  shadow: boolean;
  /** Outputs of Skeptic's own prefix nodes (not counted as the model's ops). */
  prefixOutputs: Set<string>;
  mode: RunMode;
}

/** Lowest opset the backward graph is written for. */
export const MIN_OPSET = 11;

export function prepareForward(model: LoadedModel, bytes: Uint8Array, batchSize: number): Forward {
  const file = model.path;
  const m = decodeModel(bytes, file);
  inlineExternalData(m, file);
  const intro = introspect(m);
  const notes: string[] = [];
  const modelOpset = intro.opset;
  if (modelOpset < 7) {
    throw new GradientUnsupportedError(file, [{ op: `opset ${modelOpset}`, nodes: [], reason: 'models older than opset 7 (legacy broadcasting) are not differentiated' }], 'cannot build the gradient graph');
  }
  if (intro.inputs.length !== 1) throw new GradientUnsupportedError(file, [{ op: 'inputs', nodes: intro.inputs.map((i) => i.name), reason: 'one image input expected' }], 'cannot build the gradient graph');
  const reserved = new Set<string>();
  for (const v of [...(m.graph!.input ?? []), ...(m.graph!.output ?? []), ...(m.graph!.initializer ?? [])]) if (v.name?.startsWith('skeptic_')) reserved.add(v.name);
  for (const n of m.graph!.node ?? []) for (const o of n.output ?? []) if (o.startsWith('skeptic_')) reserved.add(o);
  if (reserved.size) {
    throw new GradientUnsupportedError(file, [{ op: 'names', nodes: [...reserved], reason: "the graph uses names starting with 'skeptic_', which the gradient graph reserves" }], 'cannot build the gradient graph');
  }
  const hf = readHfConfig(file);
  const base = planInput(file, intro.inputs[0], hf ? hfInputSize(hf) : undefined);
  const plan: InputPlan = { ...base, channels: model.info.channels, height: model.info.height, width: model.info.width };

  // 1. float shadow of a quantized graph
  let origin: Forward['origin'] = new Map();
  let shadow = false;
  if (intro.quantized) {
    const r = floatShadow(m, file);
    origin = r.origin;
    shadow = Object.keys(r.converted).length > 0;
    if (shadow) {
      const list = Object.entries(r.converted).map(([op, c]) => `${op} ×${c}`).join(', ');
      notes.push(
        `quantized graph: differentiated through its float shadow (${list}): weights dequantized, each QLinear op replaced by its float op, DequantizeLinear→Identity; rounding is straight-through (identity), and so is the saturation of ranges around 0 (${r.clips.dropped}); the ${r.clips.kept} output ranges that start at 0 (fused ReLU/ReLU6) stay as Clip. The logits and loss returned with the gradient are the shadow's; judge an attack's success with the int8 model (predict).`,
      );
    }
  }

  // 2. float32
  if (toFloat32(m)) notes.push('float16/float64 weights and casts were converted to float32: the gradient is that of the float32 version of the model');

  // 3. opset ≥ 11
  const opset = Math.max(modelOpset, MIN_OPSET);
  if (opset !== modelOpset) {
    upgradeOpset(m, modelOpset, opset, file);
    notes.push(`opset raised from ${modelOpset} to ${opset} for the backward ops (forward ops rewritten where their signature changed)`);
  }
  normaliseIr(m, opset);

  // 4. pixel prefix (fed float32; a uint8/float16 input takes the float values directly)
  const g = m.graph!;
  const names = new Set<string>();
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? []), ...(g.initializer ?? [])]) names.add(v.name ?? '');
  for (const n of g.node ?? []) for (const o of n.output ?? []) names.add(o);
  const fplan: InputPlan = { ...plan, type: 'float32' };
  if (!canPrefix(fplan, opset, names)) {
    throw new GradientUnsupportedError(file, [{ op: 'input', nodes: [plan.name], reason: 'the graph uses names reserved for the pixel prefix (skeptic_pixels, skeptic_pre_*)' }], 'cannot build the gradient graph');
  }
  if (plan.type !== 'float32') {
    notes.push(`the ${plan.type} input is fed as float32${plan.type === 'uint8' ? ' without rounding to integers (the gradient of the continuous relaxation)' : ''}`);
  }
  const before = new Set((g.node ?? []).map((n) => n.output?.[0] ?? ''));
  const pixel = addPixelPrefix(m, fplan, model.preprocessing);
  const prefixOutputs = new Set<string>();
  for (const n of g.node ?? []) if (!before.has(n.output?.[0] ?? '')) for (const o of n.output ?? []) prefixOutputs.add(o);
  for (const i of g.input ?? []) {
    if (i.name === pixel && i.type?.tensorType) i.type.tensorType.elemType = 1;
  }

  // 5. batch
  const eff = model.info.batch.effective;
  let mode: RunMode = plan.batchAxis < 0 || eff === 1 ? { kind: 'single' } : eff === 'dynamic' ? { kind: 'dynamic', max: batchSize } : { kind: 'fixed', size: eff };
  if (model.info.batch.patched) {
    const r = makeBatchSymbolic(m, pixel);
    if (r.ok) mode = { kind: 'dynamic', max: batchSize };
    else {
      mode = { kind: 'single' };
      notes.push(`the symbolic-batch rewrite failed on the gradient graph (${r.reason}); running one image per run`);
    }
  }
  g.valueInfo = [];
  return { m, file, pixel, plan, opset, modelOpset, notes, origin, shadow, prefixOutputs, mode };
}

/** Converts non-float32 float weights, constants, casts and graph I/O to float32. */
function toFloat32(m: onnx.ModelProto): boolean {
  const g = m.graph!;
  let changed = false;
  const conv = (t: onnx.ITensorProto): onnx.ITensorProto => {
    const v = readTensor(t);
    changed = true;
    return f32Init(t.name ?? '', v.dims, v.data as Float32Array);
  };
  const odd = (dt: number | null | undefined) => dt === 10 || dt === 11 || dt === 16;
  g.initializer = (g.initializer ?? []).map((t) => (odd(t.dataType) ? conv(t) : t));
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t && odd(a.t.dataType)) a.t = conv(a.t);
      if ((n.opType === 'Cast' && a.name === 'to') || ((n.opType ?? '').startsWith('Random') && a.name === 'dtype') || (n.opType === 'EyeLike' && a.name === 'dtype')) {
        if (odd(toNum(a.i))) {
          a.i = 1;
          changed = true;
        }
      }
    }
  }
  for (const v of [...(g.input ?? []), ...(g.output ?? [])]) {
    const tt = v.type?.tensorType;
    if (tt && odd(tt.elemType)) {
      tt.elemType = 1;
      changed = true;
    }
  }
  return changed;
}

/** Raises the default-domain opset, rewriting forward ops whose signature changed on the way. */
function upgradeOpset(m: onnx.ModelProto, from: number, to: number, file: string): void {
  const g = m.graph!;
  const bad = new UnsupportedList();
  let k = 0;
  const init = (t: onnx.ITensorProto) => {
    (g.initializer ??= []).push(t);
    return t.name!;
  };
  const fresh = (h: string) => `skeptic_up_${h}_${k++}`;
  const drop = (n: onnx.INodeProto, names: string[]) => {
    n.attribute = (n.attribute ?? []).filter((a) => !names.includes(a.name ?? ''));
  };
  for (const n of g.node ?? []) {
    if (n.domain && n.domain !== 'ai.onnx') continue;
    const nm = n.name || n.output?.[0] || '';
    switch (n.opType) {
      case 'Clip': {
        if (from >= 11) break;
        const lo = attrOf(n, 'min');
        const hi = attrOf(n, 'max');
        n.input = [n.input![0], lo ? init(f32Init(fresh('min'), [], [lo.f ?? 0])) : '', hi ? init(f32Init(fresh('max'), [], [hi.f ?? 0])) : ''];
        while (n.input.length > 1 && n.input[n.input.length - 1] === '') n.input.pop();
        drop(n, ['min', 'max']);
        break;
      }
      case 'Pad': {
        if (from >= 11) break;
        const pads = attrInts(n, 'pads') ?? attrInts(n, 'paddings') ?? [];
        const value = attrOf(n, 'value')?.f ?? 0;
        n.input = [n.input![0], init(i64Init(fresh('pads'), [pads.length], pads)), init(f32Init(fresh('value'), [], [value]))];
        drop(n, ['pads', 'paddings', 'value']);
        break;
      }
      case 'Slice': {
        if (from >= 10) break;
        const starts = attrInts(n, 'starts') ?? [];
        const ends = (attrInts(n, 'ends') ?? []).map((e) => Math.min(e, 2 ** 53));
        const axes = attrInts(n, 'axes');
        n.input = [n.input![0], init(i64Init(fresh('starts'), [starts.length], starts)), init(i64Init(fresh('ends'), [ends.length], ends))];
        if (axes) n.input.push(init(i64Init(fresh('axes'), [axes.length], axes)));
        drop(n, ['starts', 'ends', 'axes']);
        break;
      }
      case 'TopK': {
        if (from >= 10) break;
        const kk = toNum(attrOf(n, 'k')?.i);
        n.input = [n.input![0], init(i64Init(fresh('k'), [1], [kk]))];
        drop(n, ['k']);
        break;
      }
      case 'BatchNormalization': {
        const spatial = attrOf(n, 'spatial');
        if (spatial && toNum(spatial.i) === 0) bad.add('BatchNormalization', nm, 'spatial=0 (per-activation statistics) cannot be carried to opset 9+');
        drop(n, ['spatial', 'is_test', 'consumed_inputs']);
        break;
      }
      case 'Dropout':
        drop(n, ['is_test']);
        break;
      case 'Upsample':
      case 'Resize': {
        if (n.opType === 'Resize' && from >= 11) break;
        // Upsample-9 / Resize-10 = Resize-11 with asymmetric coordinates and floor rounding
        const mode = attrOf(n, 'mode');
        const scales = n.input?.[1] ?? '';
        if (!scales || (n.opType === 'Upsample' && attrOf(n, 'scales'))) {
          const s = attrOf(n, 'scales')?.floats ?? [];
          n.input = [n.input![0], init(f32Init(fresh('roi'), [0], [])), init(f32Init(fresh('scales'), [s.length], s))];
        } else {
          n.input = [n.input![0], init(f32Init(fresh('roi'), [0], [])), scales];
        }
        n.opType = 'Resize';
        n.attribute = [A.s('coordinate_transformation_mode', 'asymmetric'), A.s('nearest_mode', 'floor')];
        if (mode?.s?.length) {
          const ms = new TextDecoder().decode(mode.s);
          n.attribute.push(A.s('mode', ms === 'bilinear' ? 'linear' : ms));
        }
        break;
      }
      case 'Scatter':
        n.opType = 'ScatterElements';
        break;
      default:
        break;
    }
  }
  if (bad.size) throw new GradientUnsupportedError(file, bad.list(), 'cannot raise the opset for the backward graph');
  for (const o of m.opsetImport ?? []) if (!o.domain || o.domain === 'ai.onnx') o.version = to;
}

/** IR version for the opset, and initializers no longer listed as graph inputs (IR ≥ 4), so ORT folds them. */
function normaliseIr(m: onnx.ModelProto, opset: number): void {
  const want = opset <= 11 ? 6 : opset === 12 ? 7 : opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
  if (toNum(m.irVersion) < want) m.irVersion = want;
  const g = m.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  g.input = (g.input ?? []).filter((i) => !inits.has(i.name ?? ''));
}

