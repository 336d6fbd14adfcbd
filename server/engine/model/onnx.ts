/**
 * Thin helpers over onnx-proto (protobufjs-generated ONNX schema): decoding with clear errors,
 * encoding, and reading the few fields whose protobufjs representation is awkward (int64 fields
 * come back as Long objects, tensors keep their values either in typed fields or in raw_data).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve as resolvePath } from 'node:path';
import { onnx } from 'onnx-proto';
import { SkepticInputError } from '../errors';
import { checkRegularFile, escapesRoot, MAX_MODEL_BYTES } from '../fs/files';

export { onnx };

/** A protobufjs int64: a number or a Long (an object with toNumber). */
export type Int64 = number | { toNumber(): number } | null | undefined;

/** Normalises a protobufjs int64 (number or Long) to a JS number (0 when absent). */
export function toNum(v: Int64 | unknown): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  if (typeof v === 'object' && typeof (v as { toNumber?: unknown }).toNumber === 'function') {
    return (v as { toNumber(): number }).toNumber();
  }
  return Number(v);
}

/** ONNX TensorProto.DataType codes → the names onnxruntime uses. */
const ELEM_TYPES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 14: 'complex64',
  15: 'complex128', 16: 'bfloat16',
};

export function elemTypeName(code: number | null | undefined): string {
  return ELEM_TYPES[code ?? 0] ?? `type${code ?? '?'}`;
}

/** Decodes model bytes. A parse failure or a model without a graph is a SkepticInputError naming the file. */
export function decodeModel(bytes: Uint8Array, file: string): onnx.ModelProto {
  let m: onnx.ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    const hint = looksLikeText(bytes) ? '; the file looks like text' : '';
    throw new SkepticInputError(
      `${file}: not an ONNX model (protobuf parse failed: ${(e as Error).message}${hint})`,
      file,
    );
  }
  // protobuf is permissive: arbitrary bytes can decode into a message made of unknown fields, so
  // also require the parts every ONNX model has.
  if (!m.graph) {
    const hint = looksLikeText(bytes) ? ' (the file looks like text)' : '';
    throw new SkepticInputError(`${file}: not an ONNX model: it has no graph${hint}`, file);
  }
  if ((m.graph.node?.length ?? 0) === 0) {
    throw new SkepticInputError(`${file}: the ONNX model's graph has no nodes`, file);
  }
  return m;
}

export function encodeModel(m: onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(m).finish();
}

/**
 * A graph's initializers encoded once, for encodeModelWith to join to each of many graphs that
 * share them. Why: the views build a composed session per plan over one model, and encoding its
 * weights again for each plan costs seconds on a large model (bench/compose.ts, five plans over
 * 100 MB of weights: 3.25 s before, 1.95 s after; over MobileNetV2-int8: 0.28 → 0.1 s).
 */
export function encodeInitializers(inits: onnx.ITensorProto[]): Uint8Array {
  return onnx.GraphProto.encode({ initializer: inits }).finish();
}

/**
 * encodeModel(m) with `initializers` (encodeInitializers's bytes) added after its graph's own
 * initializers. Protobuf reads a message's fields in any order, appends the values of a repeated
 * field, and merges a message field that occurs twice, so the bytes are joined, not re-encoded:
 * the graph (its own fields, then the shared initializers) goes after the model's other fields.
 */
export function encodeModelWith(m: onnx.IModelProto, initializers: Uint8Array): Uint8Array {
  const graph = onnx.GraphProto.encode(m.graph ?? {}).finish();
  // the model's other fields, then the graph's key (field 7, length-delimited) and length
  const head = onnx.ModelProto.encode({ ...m, graph: null })
    .uint32((7 << 3) | 2)
    .uint32(graph.length + initializers.length)
    .finish();
  const out = new Uint8Array(head.length + graph.length + initializers.length);
  out.set(head, 0);
  out.set(graph, head.length);
  out.set(initializers, head.length + graph.length);
  return out;
}

/** True when the first bytes are printable ASCII/UTF-8 (a text file with an .onnx name). */
function looksLikeText(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 512);
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if (b < 9 || (b > 13 && b < 32 && b !== 27)) return false;
  }
  return true;
}

/** Dimensions of a value's tensor type: numbers, the dim_param name, or '?' when neither is set. */
export function dimsOf(vi: onnx.IValueInfoProto): (number | string)[] | undefined {
  const shape = vi.type?.tensorType?.shape;
  if (!shape) return undefined;
  return (shape.dim ?? []).map((d) => {
    if (d.dimParam) return d.dimParam;
    // protobufjs leaves a oneof member unset (null/undefined, or the default 0) when absent
    if (d.dimValue !== null && d.dimValue !== undefined && toNum(d.dimValue) > 0) return toNum(d.dimValue);
    return '?';
  });
}

/** Numeric values of a (small) tensor: int64/int32/float/double data or raw_data. */
export function tensorValues(t: onnx.ITensorProto): number[] {
  const dt = t.dataType ?? 0;
  if (t.int64Data && t.int64Data.length) return t.int64Data.map(toNum);
  if (t.int32Data && t.int32Data.length) return t.int32Data.slice();
  if (t.floatData && t.floatData.length) return t.floatData.slice();
  if (t.doubleData && t.doubleData.length) return t.doubleData.slice();
  const raw = t.rawData;
  if (!raw || raw.length === 0) return [];
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = [];
  switch (dt) {
    case 7: for (let i = 0; i + 8 <= raw.length; i += 8) out.push(Number(dv.getBigInt64(i, true))); break;
    case 6: for (let i = 0; i + 4 <= raw.length; i += 4) out.push(dv.getInt32(i, true)); break;
    case 1: for (let i = 0; i + 4 <= raw.length; i += 4) out.push(dv.getFloat32(i, true)); break;
    case 11: for (let i = 0; i + 8 <= raw.length; i += 8) out.push(dv.getFloat64(i, true)); break;
    default: break;
  }
  return out;
}

/** A 1-D int64 tensor (as Reshape's shape input wants). */
export function int64Tensor(name: string, values: number[]): onnx.ITensorProto {
  return { name, dataType: 7, dims: [values.length], int64Data: values };
}

/** Adds an initializer; before IR 4 an initializer must also be declared as a graph input. */
export function addInitializer(m: onnx.IModelProto, t: onnx.ITensorProto): void {
  const g = m.graph!;
  (g.initializer ??= []).push(t);
  if (toNum(m.irVersion) < 4) {
    (g.input ??= []).push({
      name: t.name,
      type: { tensorType: { elemType: t.dataType, shape: { dim: (t.dims ?? []).map((d) => ({ dimValue: toNum(d) })) } } },
    });
  }
}

/** A float32 tensor. */
export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): onnx.ITensorProto {
  return { name, dataType: 1, dims, floatData: Array.from(values) };
}

/**
 * Moves tensors stored in external data files (beside the model) into the model itself. ONNX
 * Runtime refuses external data for a model given as bytes (and Skeptic runs rewritten bytes),
 * so large models saved with external weights are inlined here, up to protobuf's 2 GB limit.
 * Returns the number of tensors inlined; locations must stay inside the model's folder.
 */
export function inlineExternalData(m: onnx.ModelProto, file: string, followSymlinks = false): number {
  const tensors: onnx.ITensorProto[] = [...(m.graph?.initializer ?? [])];
  for (const n of m.graph?.node ?? []) for (const a of n.attribute ?? []) if (a.t) tensors.push(a.t);
  const external = tensors.filter((t) => t.dataLocation === 1);
  if (external.length === 0) return 0;
  const dir = dirname(file);
  const fds = new Map<string, number>();
  let total = 0;
  try {
    for (const t of external) {
      const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
      const loc = kv.get('location') ?? '';
      const path = resolvePath(dir, loc);
      if (!loc || isAbsolute(loc) || relative(dir, path).startsWith('..')) {
        throw new SkepticInputError(`${file}: tensor '${t.name}' has external data at '${loc}', outside the model's folder`, file);
      }
      let fd = fds.get(path);
      if (fd === undefined) {
        // A regular file (a FIFO would block, a folder cannot be read) that really lies beside
        // the model: a link out of its folder is refused unless the user asked to follow links.
        checkRegularFile(path, `external data of tensor '${t.name}' of ${file}:`, MAX_MODEL_BYTES);
        const out = followSymlinks ? undefined : escapesRoot(dir, path);
        if (out) throw new SkepticInputError(`${file}: the external data of tensor '${t.name}' ('${loc}') is a symbolic link to ${out}, outside the model's folder`, file);
        try {
          fd = openSync(path, 'r');
        } catch (e) {
          throw new SkepticInputError(`${file}: cannot read the external data of tensor '${t.name}' (${(e as Error).message})`, file);
        }
        fds.set(path, fd);
      }
      const size = fstatSync(fd).size;
      const offset = Number(kv.get('offset') ?? 0);
      const length = kv.has('length') ? Number(kv.get('length')) : size - offset;
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > size) {
        throw new SkepticInputError(
          `${file}: the external data of tensor '${t.name}' (offset ${kv.get('offset') ?? 0}, length ${kv.get('length') ?? 'rest'}) does not fit in '${loc}' (${size} bytes)`,
          file,
        );
      }
      total += length;
      if (total > 2 ** 31 - 2 ** 26) {
        throw new SkepticInputError(`${file}: external data over 2 GB is not supported (weights cannot be inlined into one protobuf)`, file);
      }
      const buf = new Uint8Array(length);
      const got = readSync(fd, buf, 0, length, offset);
      if (got !== length) throw new SkepticInputError(`${file}: external data of tensor '${t.name}' in '${loc}' is truncated`, file);
      t.rawData = buf;
      t.dataLocation = 0;
      t.externalData = [];
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  return external.length;
}
