/**
 * In-memory stand-ins for a model and a dataset, so probe and audit logic can be tested on
 * cases small enough to work out by hand. The real ONNX and file paths are tested elsewhere.
 */
import type { Dataset, DatasetRecord, DecodeSpec, LoadedModel, PixelBatch, PixelImage, Prediction, Sample, StreamOptions } from '../../../server/engine/types';

/** A model whose logits are a plain function of one image (C×H×W floats). */
export function fakeModel(opts: {
  channels?: 1 | 3;
  height: number;
  width: number;
  numClasses: number;
  logits: (pixels: Float32Array) => number[];
  labels?: string[];
}): LoadedModel & { calls: number; imagesSeen: number } {
  const channels = opts.channels ?? 1;
  const size = channels * opts.height * opts.width;
  const m = {
    calls: 0,
    imagesSeen: 0,
    path: '/models/fake.onnx',
    sha256: 'f'.repeat(64),
    info: {
      inputs: [{ name: 'x', type: 'float32', shape: ['N', channels, opts.height, opts.width] }],
      outputs: [{ name: 'y', type: 'float32', shape: ['N', opts.numClasses] }],
      layout: 'NCHW' as const,
      channels,
      height: opts.height,
      width: opts.width,
      numClasses: opts.numClasses,
      outputKind: 'logits' as const,
      outputKindSource: 'override' as const,
      opset: 13,
      producer: 'test',
      opHistogram: {},
      quantized: false,
      batch: { declared: 'N', effective: 'dynamic' as const, patched: false },
      metadata: {},
    },
    preprocessing: { scale: 1, mean: [0], std: [1], channelOrder: 'rgb' as const, source: 'cli' as const },
    labels: opts.labels ? { names: opts.labels, keys: opts.labels.map((l) => [l.toLowerCase()]), source: 'test' } : undefined,
    device: { requested: 'cpu' as const, used: 'cpu' as const, fallbacks: [] },
    warnings: [],
    decodeSpec(margin = 0): DecodeSpec {
      return { channels, height: opts.height, width: opts.width, margin };
    },
    async predict(batch: PixelBatch): Promise<Prediction> {
      m.calls++;
      m.imagesSeen += batch.n;
      const K = opts.numClasses;
      const logits = new Float32Array(batch.n * K);
      const probs = new Float32Array(batch.n * K);
      for (let i = 0; i < batch.n; i++) {
        const l = opts.logits(batch.data.subarray(i * size, (i + 1) * size));
        const mx = Math.max(...l);
        const e = l.map((v) => Math.exp(v - mx));
        const s = e.reduce((a, b) => a + b, 0);
        for (let c = 0; c < K; c++) {
          logits[i * K + c] = l[c];
          probs[i * K + c] = e[c] / s;
        }
      }
      return { n: batch.n, numClasses: K, logits, probs };
    },
    async dispose() {},
  };
  return m;
}

export interface FakeItem {
  id: string;
  label?: number;
  /** The image with `margin` pixels of context already around it (the decoder's job). */
  image?: PixelImage;
  /** A decode error for this item. */
  error?: string;
  /** A listing problem for this item. */
  problem?: string;
}

/** A dataset of ready-made images; `margin` is the context the images were made with. */
export function fakeDataset(items: FakeItem[], margin = 0): Dataset & { decoded: number } {
  const records: DatasetRecord[] = items.map((it, index) => ({
    index,
    id: it.id,
    file: `/data/${it.id}`,
    manifest: '/data/manifest.csv',
    line: index + 2,
    label: it.label,
    problem: it.problem,
  }));
  const ds = {
    decoded: 0,
    path: '/data/manifest.csv',
    kind: 'csv' as const,
    root: '/data',
    total: items.length,
    records,
    warnings: [],
    async *stream(spec: DecodeSpec, o: StreamOptions) {
      if ((spec.margin ?? 0) !== margin) throw new Error(`fake dataset made with margin ${margin}, asked for ${spec.margin}`);
      let batch: Sample[] = [];
      for (const r of records) {
        if (r.problem || (o.only && !o.only(r))) continue;
        if (o.signal?.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
        const it = items[r.index];
        const sha256 = `sha-${it.id}`;
        const s: Sample = { record: r, sha256, margin };
        if (it.error) s.error = it.error;
        else if (o.wantImage?.(r, sha256) ?? true) {
          s.image = it.image;
          ds.decoded++;
        }
        batch.push(s);
        if (batch.length === o.batchSize) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
    },
  };
  return ds;
}

/** A 1-channel image from rows of numbers. */
export function gray(rows: number[][]): PixelImage {
  return { data: Float32Array.from(rows.flat()), channels: 1, height: rows.length, width: rows[0].length };
}

/** A 4×4 two-class model (left, right): the class is the half of the image with more light. */
export function leftRightModel(): LoadedModel {
  return fakeModel({
    height: 4,
    width: 4,
    numClasses: 2,
    labels: ['left', 'right'],
    logits: (px) => {
      let l = 0;
      let r = 0;
      for (let y = 0; y < 4; y++) {
        l += px[y * 4] + px[y * 4 + 1];
        r += px[y * 4 + 2] + px[y * 4 + 3];
      }
      return [4 * l, 4 * r];
    },
  });
}
