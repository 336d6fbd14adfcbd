/**
 * The types shared across the engine's parts: pixel images, datasets, models and probes.
 * The report types (the contract with front ends) live in report/schema.ts.
 */
import type { Interpolation } from './image/resample';
export type { Interpolation } from './image/resample';

/** Whose resize a preprocessing reproduces. */
export type Resampler = 'pil' | 'tensor' | 'tensor-antialias';
export const RESAMPLERS: readonly Resampler[] = ['pil', 'tensor', 'tensor-antialias'];
export type CropRounding = 'half-even' | 'floor';

/**
 * An image in pixel space: float32 values in [0,1], planar CHW, channels in RGB order
 * (or 1 channel for grayscale). Probes transform images in this space, and the model
 * applies its own normalisation (scale, mean/std, channel order, layout) when it runs them,
 * so a perturbation is measured in the units a person sees.
 */
export interface PixelImage {
  data: Float32Array;
  channels: 1 | 3;
  height: number;
  width: number;
}

/** A batch of pixel-space images of equal size: data is N×C×H×W. */
export interface PixelBatch {
  data: Float32Array;
  n: number;
  channels: 1 | 3;
  height: number;
  width: number;
}

/** What the model needs from the decoder: the size and channel count of its input. */
export interface DecodeSpec {
  channels: 1 | 3;
  height: number;
  width: number;
  /** Resize the short side to this many pixels, then centre-crop to height×width. Without it
   *  the image is resized straight to height×width. */
  resizeShortSide?: number;
  /** The resampling filter, computed as Pillow's Image.resize does (image/resample.ts); bilinear if absent. */
  interpolation?: Interpolation;
  /** Whose resize: Pillow's (default), or torchvision's on tensors (image/resample-tensor.ts). */
  resampler?: Resampler;
  /** How the centre crop's offset (size − crop)/2 is rounded: half to even (torchvision, default)
   *  or down (Hugging Face's center_crop). */
  cropRounding?: CropRounding;
  /**
   * Extra pixels of real context to keep on each side of the centre crop (a shift probe moves
   * the crop window inside it). Where the resized image has no more content, the border pixels
   * are repeated.
   */
  margin?: number;
}

/** One item of a dataset, before it is decoded. */
export interface DatasetRecord {
  /** Position in the dataset's full listing (0-based, before --limit). */
  index: number;
  /** Stable, human-readable id: the path relative to the dataset root, or `file#index` for idx. */
  id: string;
  /** Absolute path of the image file (for idx data: the images file). */
  file: string;
  /** The manifest that lists this item, with its 1-based line, when it came from one. */
  manifest?: string;
  line?: number;
  /** Class index in the model's label space, when known. */
  label?: number;
  /** The label as the dataset wrote it (class name or index). */
  labelName?: string;
  /** A problem found while listing (missing label, path escaping the root...). Such a record is
   *  reported as a finding and not evaluated. */
  problem?: string;
}

/** A decoded item. `image` is absent when decoding failed; `error` then says why. */
export interface Sample {
  record: DatasetRecord;
  /** sha256 (hex) of the item's source bytes: the file, or the raw idx bytes. */
  sha256?: string;
  /** Pixel-space image of size (H+2·margin)×(W+2·margin). */
  image?: PixelImage;
  margin: number;
  error?: string;
}

export type OutputKind = 'logits' | 'probabilities' | 'log-probabilities';

/** Result of running a batch: one row of K values per image. */
export interface Prediction {
  n: number;
  numClasses: number;
  /** Logits (for probability outputs: log p, so that softmax gives p back). */
  logits: Float32Array;
  /** Softmax probabilities. */
  probs: Float32Array;
}

/**
 * The model's class names, with the keys a dataset label may use for each class: the name, an
 * id such as an ImageNet WNID, or the whole line of a labels file. Matching is case-insensitive.
 */
export interface LabelSet {
  names: string[];
  /** keys[i] lists every accepted spelling of class i (lower-cased). */
  keys: string[][];
  /** Where the names came from: a labels file path, 'metadata', 'dataset' (class folders). */
  source: string;
}

// ---------------------------------------------------------------------------------------------
// Models (implemented in model/)

export type DeviceChoice = 'auto' | 'cpu' | 'webgpu' | 'cuda';

export interface DeviceInfo {
  requested: DeviceChoice;
  /** The execution provider that runs the model. */
  used: 'cpu' | 'webgpu' | 'cuda';
  /** One line per provider that was tried and failed, saying why ("cuda: libcudart.so.12 not found"). */
  fallbacks: string[];
  /** CPU threads per ONNX Runtime session (model/threads.ts); absent: ORT's own default. */
  threads?: number;
}

/** How pixel-space images become the model's input tensor: tensor = (pixel·scale − mean) / std. */
export interface Preprocessing {
  /** The preset it came from, when it came from one (imagenet, unit, signed, raw255, mnist). */
  preset?: string;
  /** Resize the short side to this, then centre-crop to the model's input size. */
  resizeShortSide?: number;
  /** The resampling filter for every resize (Pillow's, pixel for pixel); absent means bilinear, torchvision's default. */
  interpolation?: Interpolation;
  /** `pil` (default): torchvision on PIL images; `tensor` / `tensor-antialias`: torchvision's
   *  F.resize on uint8 tensors with antialias False / True. */
  resampler?: Resampler;
  /** `floor` for Hugging Face's center_crop (offset floor((size − crop)/2)); absent: torchvision's
   *  round half to even. */
  cropRounding?: CropRounding;
  scale: number;
  /** Per channel (length 1 or C), in the model's channel order. */
  mean: number[];
  std: number[];
  channelOrder: 'rgb' | 'bgr';
  /** Where it came from; 'assumed' means nothing said, and the report carries a warning. */
  source: 'cli' | 'skeptic.json' | 'preprocessor_config.json' | 'config.json' | 'metadata' | 'assumed';
  /** Which file or option gave each value (key: the field, value: e.g. "preprocessor_config.json: resample = 3");
   *  values not listed come from the preset or the defaults. */
  origins?: Record<string, string>;
}

export interface TensorInfo {
  name: string;
  type: string;
  /** Dimensions: numbers, or the symbolic name for a dynamic dimension. */
  shape: (number | string)[];
}

export interface ModelInfo {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  /** The input layout Skeptic feeds: NCHW, NHWC, or a flat vector (N×D, N×D×1, ...). */
  layout: 'NCHW' | 'NHWC' | 'flat';
  channels: 1 | 3;
  height: number;
  width: number;
  numClasses: number;
  outputKind: OutputKind;
  /** How the output kind was decided: 'override', 'graph' (last op), or 'numeric'. */
  outputKindSource: 'override' | 'graph' | 'numeric';
  opset: number;
  producer: string;
  /** Op type → count, over the main graph. */
  opHistogram: Record<string, number>;
  quantized: boolean;
  /** Batch handling: the graph's own batch dimension, and whether Skeptic rewrote a fixed batch
   *  of 1 to a symbolic one (verified to give the same outputs). */
  batch: { declared: number | string; effective: 'dynamic' | number; patched: boolean };
  metadata: Record<string, string>;
}

export interface LoadedModel {
  path: string;
  sha256: string;
  info: ModelInfo;
  preprocessing: Preprocessing;
  labels?: LabelSet;
  device: DeviceInfo;
  /** Things the user should know (assumed preprocessing, fallbacks, patched batch...). */
  warnings: string[];
  /** The graph output that holds the class scores (views/ puts its graphs in front of the model
   *  and fetches it); absent for models that are not ONNX graphs (test fakes). */
  outputName?: string;
  /** What the decoder must produce for this model, with `margin` extra pixels on each side. */
  decodeSpec(margin?: number): DecodeSpec;
  /** Runs pixel-space images (values in [0,1], at the model's input size) through the model. */
  predict(batch: PixelBatch): Promise<Prediction>;
  dispose(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Datasets (implemented in data/)

export interface StreamOptions {
  batchSize: number;
  signal?: AbortSignal;
  /** Asked once the item's bytes are hashed: false skips decoding (its results are cached). */
  wantImage?: (record: DatasetRecord, sha256: string) => boolean;
  /** Streams only the records this accepts (without reading the others at all). */
  only?: (record: DatasetRecord) => boolean;
}

export interface Dataset {
  /** The path the user gave (folder, manifest or idx folder), absolute. */
  path: string;
  kind: 'folder' | 'csv' | 'jsonl' | 'idx';
  /** Folder that relative paths resolve against. */
  root: string;
  /** Class names as the dataset spells them (folder names, label values), when it has names. */
  classes?: string[];
  /** Number of items before --limit. */
  total: number;
  /** The items to evaluate, in dataset order (after --limit). Records with a `problem` are listed
   *  too, so that each becomes a finding. */
  records: DatasetRecord[];
  warnings: string[];
  /** Decodes the records without a problem, in order, in batches. Memory stays bounded by the
   *  batch size, whatever the dataset's size. */
  stream(spec: DecodeSpec, opts: StreamOptions): AsyncIterable<Sample[]>;
}
