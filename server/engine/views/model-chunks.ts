/**
 * The model's nodes repeated over consecutive row slices of one run, so that a run can be large
 * for the view graph and small for the model. Why: on mnist-8 (2 cores), runs of about 1,200
 * views keep the view graph's cost low (its ~600 corruption nodes have a fixed cost per run: in
 * runs of 304 rows they cost about twice as much as in runs of 1,216), but the model's
 * activations at 1,200 rows fall out of the caches: bench/profile-views.ts --case mnist --probes
 * corruptions --images 256 measured the model's kernels at 480–551 ms in runs of 1,216 passes
 * against 378–404 ms in runs of 304. Four slices for the model in runs of 1,216: 595–597 ms
 * inside session.run against 681–772 (bench/README, sixteenth pass).
 *
 * Each row of a classifier's output depends on its own input row only, so the slices' outputs,
 * concatenated, are the whole run's; the weights (initializers) are shared, not copied.
 */
import type { onnx } from '../model/onnx';
import { VIEW_PREFIX } from './graph';

/** The names of the slices' nodes and tensors: the model's copies and the few that slice and
 *  concatenate (the benchmarks count them as the model's, not the views'). */
export const MODEL_CHUNK_PREFIX = `${VIEW_PREFIX}chunk`;
const P = MODEL_CHUNK_PREFIX;

/**
 * The graph's nodes `nodes` (the model: everything after `input`) as `chunks` copies, copy k on
 * rows ⌊N·k/chunks⌋ … ⌊N·(k+1)/chunks⌋ of `input` (N its first dimension, read at run time),
 * their outputs `outputs` concatenated on axis 0 under their own names. Adds its constants to
 * `g.initializer`, sets `g.output` to `outputs` and drops the value infos of the renamed tensors;
 * returns the new node list. Undefined (and `g` untouched) when there is nothing to split or it
 * cannot be split safely: fewer than two chunks, a node with a subgraph (an If or Loop reads
 * tensors of the outer graph by name, which the copies rename), or an output no node makes.
 * Every run must have at least `chunks` rows, or a copy would run on an empty slice.
 * Names start with VIEW_PREFIX, which composedModel refuses in a model, so none can clash.
 */
export function chunkModel(g: onnx.IGraphProto, nodes: onnx.INodeProto[], input: string, outputs: string[], chunks: number): onnx.INodeProto[] | undefined {
  if (!(Number.isInteger(chunks) && chunks >= 2) || !nodes.length) return undefined;
  if (nodes.some((n) => (n.attribute ?? []).some((a) => a.g || a.graphs?.length))) return undefined;
  const made = new Set(nodes.flatMap((n) => (n.output ?? []).filter((o) => o)));
  if (!outputs.every((o) => made.has(o))) return undefined;

  const inits: onnx.ITensorProto[] = [];
  const int64 = (name: string, value: number) => {
    inits.push({ name: `${P}_${name}`, dims: [1], dataType: 7, int64Data: [value] });
    return `${P}_${name}`;
  };
  const [zero, one, count] = [int64('zero', 0), int64('one', 1), int64('count', chunks)];
  const out: onnx.INodeProto[] = [];
  const node = (opType: string, input: string[], output: string, attribute?: onnx.IAttributeProto[], name = output) => {
    out.push({ opType, input, output: [output], name, ...(attribute ? { attribute } : {}) });
    return output;
  };
  const shape = node('Shape', [input], `${P}_shape`);
  const rows = node('Slice', [shape, zero, one, zero], `${P}_rows`);
  // bound k = ⌊rows·k / chunks⌋ (integer Div of non-negative values floors)
  const bounds = [zero];
  for (let k = 1; k < chunks; k++) bounds.push(node('Div', [node('Mul', [rows, int64(`k${k}`, k)], `${P}_mul${k}`), count], `${P}_bound${k}`));
  bounds.push(rows);

  for (let k = 0; k < chunks; k++) {
    const slice = node('Slice', [input, bounds[k], bounds[k + 1], zero], `${P}${k}_input`);
    const rename = (t: string) => (t === input ? slice : made.has(t) ? `${P}${k}_${t}` : t);
    for (const n of nodes) {
      out.push({
        ...n,
        ...(n.name ? { name: `${P}${k}_${n.name}` } : {}),
        input: (n.input ?? []).map((t) => (t ? rename(t) : t)),
        output: (n.output ?? []).map((t) => (t ? rename(t) : t)),
      });
    }
  }
  const axis0: onnx.IAttributeProto = { name: 'axis', type: 2, i: 0 };
  for (const o of outputs) node('Concat', Array.from({ length: chunks }, (_, k) => `${P}${k}_${o}`), o, [axis0], `${P}_concat_${o}`);

  g.initializer = [...(g.initializer ?? []), ...inits];
  const declared = new Map((g.output ?? []).map((o) => [o.name ?? '', o]));
  g.output = outputs.map((o) => declared.get(o) ?? { name: o });
  // value infos name the copies' tensors by their old names; ORT infers the new ones' shapes
  g.valueInfo = (g.valueInfo ?? []).filter((v) => !made.has(v.name ?? ''));
  return out;
}
