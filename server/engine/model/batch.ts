/**
 * Fixed batch of 1 → symbolic batch. Many exported models (mnist-8 among them) declare a batch
 * of 1 and bake it into Reshape shape constants, so they can only run one image per
 * session.run: slow. We rewrite a copy of the graph:
 *   - input and output dim 0 → a symbolic dim;
 *   - drop value_info (its shapes carry the stale batch; ORT re-infers them);
 *   - Reshape nodes on the activation path whose shape constant starts with 1 → -1 (or 0, "copy
 *     the input's dim 0", when the shape already holds a -1). Weights' Reshapes are left alone.
 * The caller then VERIFIES the rewrite numerically (batched vs one-at-a-time on the original);
 * anything else that bakes in the batch (Expand, Tile, Slice...) fails that check and we fall
 * back to looping batch-1 runs.
 */
import { addInitializer, int64Tensor, onnx, tensorValues, toNum } from './onnx';

export const BATCH_DIM = 'skeptic_batch';

export type PatchResult = { ok: true; changes: string[] } | { ok: false; reason: string };

/** Rewrites m (a decoded copy) in place so that the batch of `inputName` is symbolic. */
export function makeBatchSymbolic(m: onnx.ModelProto, inputName: string): PatchResult {
  const g = m.graph!;
  const changes: string[] = [];
  const input = (g.input ?? []).find((i) => i.name === inputName);
  const inDim = input?.type?.tensorType?.shape?.dim?.[0];
  if (!input || !inDim) return { ok: false, reason: `input '${inputName}' has no declared shape` };
  setSymbolic(inDim);
  for (const o of g.output ?? []) {
    const dims = o.type?.tensorType?.shape?.dim;
    if (!dims || dims.length < 2) continue; // [K]: no batch axis to free (caller does not patch those)
    if (dims[0].dimParam || toNum(dims[0].dimValue) === 1) setSymbolic(dims[0]);
  }
  if ((g.valueInfo?.length ?? 0) > 0) {
    changes.push(`dropped ${g.valueInfo!.length} value_info entries`);
    g.valueInfo = [];
  }

  // Values computed from the input (nodes are topologically sorted in a valid graph).
  const live = new Set<string>([inputName]);
  for (const n of g.node ?? []) {
    if ((n.input ?? []).some((x) => live.has(x))) for (const o of n.output ?? []) live.add(o);
  }
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const constants = new Map<string, onnx.ITensorProto>();
  for (const n of g.node ?? []) {
    if (n.opType === 'Constant') {
      const v = (n.attribute ?? []).find((a) => a.name === 'value')?.t;
      if (v && n.output?.[0]) constants.set(n.output[0], v);
    }
  }
  let k = 0;
  for (const n of g.node ?? []) {
    if (n.opType !== 'Reshape' || !live.has(n.input?.[0] ?? '')) continue;
    const allowZero = (n.attribute ?? []).some((a) => a.name === 'allowzero' && toNum(a.i) === 1);
    const shapeAttr = (n.attribute ?? []).find((a) => a.name === 'shape'); // opset < 5
    let values: number[] | undefined;
    if (shapeAttr) values = (shapeAttr.ints ?? []).map(toNum);
    else {
      const src = n.input?.[1] ?? '';
      const t = inits.get(src) ?? constants.get(src);
      if (!t) continue; // computed at run time (Shape → Concat...): already follows the batch
      values = tensorValues(t);
    }
    if (!values || values.length < 2 || values[0] !== 1) continue;
    const rest = values.slice(1);
    let lead: number;
    if (!rest.includes(-1)) lead = -1;
    else if (!allowZero) lead = 0;
    else return { ok: false, reason: `Reshape '${n.name ?? n.output?.[0]}' has shape [${values}] with allowzero=1` };
    const next = [lead, ...rest];
    if (shapeAttr) shapeAttr.ints = next;
    else {
      // A fresh constant: the original may be shared with Reshapes we must not touch.
      const name = `${n.input![1]}__${BATCH_DIM}_${k++}`;
      addInitializer(m, int64Tensor(name, next));
      n.input![1] = name;
    }
    changes.push(`Reshape '${n.name || n.output?.[0]}': shape [${values}] → [${next}]`);
  }
  return { ok: true, changes };
}

function setSymbolic(d: onnx.TensorShapeProto.IDimension): void {
  // dim_value and dim_param are a oneof: clear the value, set the name
  d.dimValue = null;
  d.dimParam = BATCH_DIM;
}

/** Largest |a−b| and largest |b| (for the tolerance). */
export function maxAbsDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  if (a.length !== b.length) return { diff: Infinity, scale: 0 };
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= diff)) diff = Number.isNaN(d) ? Infinity : d;
    const s = Math.abs(b[i]);
    if (s > scale) scale = s;
  }
  return { diff, scale };
}
