/**
 * Preprocessing: where it comes from (options, preprocessor_config.json, metadata, assumption),
 * and the hot loop that turns pixel-space images into the model's input tensor.
 *
 * Pixel space is float32 in [0,1], planar CHW, RGB (or gray). The model sees
 *   tensor = (pixel·scale − mean[c]) / std[c]
 * in its own channel order (rgb/bgr) and layout (NCHW/NHWC/flat).
 */
import { existsSync } from 'node:fs';
import { readRegularFile } from '../fs/files';
import { dirname, join } from 'node:path';
import { RESAMPLERS, type Preprocessing, type Resampler } from '../types';
import { TENSOR_INTERPOLATIONS } from '../image/resample-tensor';
import { SkepticInputError } from '../errors';
import { INTERPOLATIONS, PIL_CODES, type Interpolation } from '../image/resample';
import type { InputPlan } from './introspect';
import { timmToOverride, type TimmConfig } from './timm';

export interface PresetDef {
  description: string;
  scale: number;
  mean: number[];
  std: number[];
  /** Resize the short side to round(input·ratio), then centre-crop (the ImageNet 256→224 recipe). */
  resizeRatio?: number;
}

export const PRESETS: Record<string, PresetDef> = {
  imagenet: {
    description: 'resize short side to input·256/224, centre-crop, [0,1], ImageNet mean/std',
    scale: 1,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    resizeRatio: 256 / 224,
  },
  unit: { description: '[0,1], no mean/std', scale: 1, mean: [0], std: [1] },
  signed: { description: '[-1,1] (mean 0.5, std 0.5)', scale: 1, mean: [0.5], std: [0.5] },
  raw255: { description: '[0,255], no mean/std', scale: 255, mean: [0], std: [1] },
  mnist: { description: '[0,1], MNIST mean 0.1307, std 0.3081', scale: 1, mean: [0.1307], std: [0.3081] },
};

export type PreprocessOverride = Partial<
  Pick<Preprocessing, 'resizeShortSide' | 'interpolation' | 'resampler' | 'cropRounding' | 'scale' | 'mean' | 'std' | 'channelOrder'>
> & { preset?: string };

const OVERRIDE_KEYS = ['preset', 'resizeShortSide', 'interpolation', 'resampler', 'cropRounding', 'scale', 'mean', 'std', 'channelOrder'];

/** The values a Preprocessing has, whose origin the report names. */
const VALUE_KEYS = ['resizeShortSide', 'interpolation', 'resampler', 'cropRounding', 'scale', 'mean', 'std', 'channelOrder'] as const;

/** What the model's input needs to know to validate and complete a preprocessing. */
export interface PreprocessTarget {
  file: string;
  channels: 1 | 3;
  height: number;
  width: number;
}

/**
 * Validates an override (from wherever: `where` names it in messages) and completes it into a
 * Preprocessing. Fields not given come from the preset, else from 'unit'. mean/std are expanded
 * to one value per model channel.
 */
export function completeOverride(
  o: PreprocessOverride,
  t: PreprocessTarget,
  source: Preprocessing['source'],
  where: string,
  /** The file the values came from, for the error (the model, preprocessor_config.json). */
  errFile?: string,
  /** Where each given value came from (the override's own keys); by default `where` for all of them. */
  origins?: Record<string, string>,
): Preprocessing {
  const bad = (what: string): never => {
    throw new SkepticInputError(`${where}: ${what}`, errFile);
  };
  if (o === null || typeof o !== 'object' || Array.isArray(o)) bad('expected a preset name or an object');
  for (const k of Object.keys(o)) {
    if (!OVERRIDE_KEYS.includes(k)) bad(`unknown key '${k}' (allowed: ${OVERRIDE_KEYS.join(', ')})`);
  }
  let preset: PresetDef = PRESETS.unit;
  if (o.preset !== undefined) {
    if (typeof o.preset !== 'string' || !PRESETS[o.preset]) {
      bad(`unknown preset '${String(o.preset)}' (known: ${Object.keys(PRESETS).join(', ')})`);
    }
    preset = PRESETS[o.preset!];
  }
  const perChannel = (v: unknown, name: string, presetVal: number[]): number[] => {
    const arr = v === undefined ? presetVal : v;
    if (!Array.isArray(arr) || arr.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
      return bad(`${name} must be an array of numbers`);
    }
    if (arr.length === t.channels) return arr.slice();
    if (arr.length === 1) return new Array(t.channels).fill(arr[0]);
    // A 3-value mean with identical values still describes a gray model unambiguously.
    if (t.channels === 1 && arr.every((x) => x === arr[0])) return [arr[0]];
    const from = v === undefined ? ` (from preset '${o.preset}')` : '';
    const want = t.channels === 1 ? '1 channel, so give 1 value' : `${t.channels} channels, so give 1 or ${t.channels} values`;
    return bad(`${name} has ${arr.length} values${from}; the model takes ${want}`);
  };
  const mean = perChannel(o.mean, 'mean', preset.mean);
  const std = perChannel(o.std, 'std', preset.std);
  if (std.some((s) => s === 0)) bad('std must not contain 0');
  const scale = o.scale ?? preset.scale;
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) bad('scale must be a positive number');
  const interpolation = o.interpolation ?? 'bilinear';
  if (!INTERPOLATIONS.includes(interpolation as Interpolation)) {
    bad(`interpolation must be one of ${INTERPOLATIONS.join(', ')}, not '${String(interpolation)}'`);
  }
  const resampler = o.resampler ?? 'pil';
  if (!RESAMPLERS.includes(resampler as Resampler)) bad(`resampler must be one of ${RESAMPLERS.join(', ')}, not '${String(resampler)}'`);
  if (resampler !== 'pil' && !TENSOR_INTERPOLATIONS.includes(interpolation)) {
    bad(`resampler '${resampler}' (torchvision on tensors) takes interpolation ${TENSOR_INTERPOLATIONS.join(', ')}, not '${interpolation}'`);
  }
  if (resampler === 'tensor-antialias' && interpolation === 'nearest') bad("resampler 'tensor-antialias' takes bilinear or bicubic (torchvision antialiases only those)");
  const cropRounding = o.cropRounding ?? 'half-even';
  if (cropRounding !== 'half-even' && cropRounding !== 'floor') bad(`cropRounding must be 'half-even' or 'floor', not '${String(cropRounding)}'`);
  const channelOrder = o.channelOrder ?? 'rgb';
  if (channelOrder !== 'rgb' && channelOrder !== 'bgr') bad(`channelOrder must be 'rgb' or 'bgr', not '${String(channelOrder)}'`);
  const short = Math.min(t.height, t.width);
  let resizeShortSide: number | undefined =
    'resizeShortSide' in o ? (o.resizeShortSide ?? undefined) : preset.resizeRatio ? Math.round(short * preset.resizeRatio) : undefined;
  if (resizeShortSide !== undefined) {
    if (typeof resizeShortSide !== 'number' || !Number.isInteger(resizeShortSide) || resizeShortSide < short) {
      bad(`resizeShortSide must be an integer ≥ the model's input size (${short}), got ${String(resizeShortSide)}`);
    }
    // Every image is resized to this before the crop: past it, each one would be a decode error.
    if (resizeShortSide > MAX_RESIZE_SIDE) bad(`resizeShortSide must be at most ${MAX_RESIZE_SIDE}, got ${resizeShortSide}`);
  }
  const out: Preprocessing = { scale, mean, std, channelOrder, interpolation, source };
  // Only a non-default resampler is recorded, so PIL-path preprocessings (and their cache keys) stay as they were.
  if (resampler !== 'pil') out.resampler = resampler;
  if (cropRounding === 'floor' && resizeShortSide !== undefined) out.cropRounding = 'floor';
  if (o.preset) out.preset = o.preset;
  if (resizeShortSide !== undefined) out.resizeShortSide = resizeShortSide;
  // Which file or option gave each value: the override's own keys, else the preset, else the default.
  const from: Record<string, string> = {};
  for (const k of VALUE_KEYS) {
    if (k === 'resizeShortSide' && resizeShortSide === undefined) continue;
    if (k === 'resampler' && resampler === 'pil' && o.resampler === undefined) continue;
    if (k === 'cropRounding' && out.cropRounding === undefined) continue;
    if (o[k] !== undefined || (k === 'resizeShortSide' && 'resizeShortSide' in o)) from[k] = origins?.[k] ?? where;
    else if (o.preset && (k === 'scale' || k === 'mean' || k === 'std' || (k === 'resizeShortSide' && preset.resizeRatio))) from[k] = `preset '${o.preset}'`;
    else from[k] = 'default';
  }
  out.origins = from;
  return out;
}

/** Parses the --preprocess / skeptic.json value: a preset name, a JSON string or an object. */
export function parseOverride(v: string | PreprocessOverride, where: string): PreprocessOverride {
  if (typeof v !== 'string') return v;
  const s = v.trim();
  if (s.startsWith('{')) {
    try {
      return JSON.parse(s) as PreprocessOverride;
    } catch (e) {
      throw new SkepticInputError(`${where}: invalid JSON (${(e as Error).message})`);
    }
  }
  return { preset: s };
}

// ---------------------------------------------------------------------------------------------
// Hugging Face preprocessor_config.json

export interface HfConfig {
  file: string;
  json: Record<string, unknown>;
}

/** Largest resizeShortSide accepted (an 8192-pixel short side is already ~200 MB of pixels). */
export const MAX_RESIZE_SIDE = 8192;

export function readHfConfig(modelPath: string): HfConfig | undefined {
  const file = join(dirname(modelPath), 'preprocessor_config.json');
  if (!existsSync(file)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readRegularFile(file, 'preprocessing config').toString('utf8'));
  } catch (e) {
    if (e instanceof SkepticInputError) throw e;
    throw new SkepticInputError(`${file}: invalid JSON (${(e as Error).message})`, file);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new SkepticInputError(`${file}: expected a JSON object`, file);
  }
  return { file, json: json as Record<string, unknown> };
}

type HfSize = { shortest?: number; height?: number; width?: number };

function hfSize(v: unknown): HfSize | undefined {
  if (typeof v === 'number') return { height: v, width: v, shortest: v };
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.shortest_edge === 'number') return { shortest: o.shortest_edge };
  if (typeof o.height === 'number' && typeof o.width === 'number') return { height: o.height, width: o.width };
  return undefined;
}

/** The input size preprocessor_config.json implies (for models whose H/W are symbolic). */
export function hfInputSize(cfg: HfConfig): { height: number; width: number } | undefined {
  const j = cfg.json;
  const crop = j.do_center_crop !== false ? hfSize(j.crop_size) : undefined;
  if (crop?.height && crop.width) return { height: crop.height, width: crop.width };
  const size = hfSize(j.size);
  if (size?.height && size.width) return { height: size.height, width: size.width };
  if (size?.shortest) return { height: size.shortest, width: size.shortest };
  return undefined;
}

/**
 * Translates the HF image-processor fields into an override. Pixel space is [0,1], so the model's
 * scale is rescale_factor·255 when do_rescale (1 for the usual 1/255), else 255.
 */
export function hfToOverride(cfg: HfConfig, t: PreprocessTarget, warnings: string[], origins: Record<string, string> = {}): PreprocessOverride {
  const j = cfg.json;
  const o: PreprocessOverride = {};
  const at = (key: string) => `${cfg.file}: ${key}`;
  if (j.resample !== undefined) {
    // Pillow's integer codes (Image.Resampling), or a name.
    const r = typeof j.resample === 'number' ? PIL_CODES[j.resample] : typeof j.resample === 'string' ? (j.resample.toLowerCase() as Interpolation) : undefined;
    if (r && INTERPOLATIONS.includes(r)) {
      o.interpolation = r;
      origins.interpolation = at(`resample = ${JSON.stringify(j.resample)}`);
    } else {
      throw new SkepticInputError(`${cfg.file}: resample = ${JSON.stringify(j.resample)} is not one of Pillow's filters (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)`, cfg.file);
    }
  }
  const doRescale = j.do_rescale !== false;
  const factor = typeof j.rescale_factor === 'number' ? j.rescale_factor : 1 / 255;
  o.scale = doRescale ? factor * 255 : 255;
  origins.scale = at(doRescale ? `rescale_factor = ${factor}` : 'do_rescale = false');
  const doNormalize = j.do_normalize !== false && Array.isArray(j.image_mean);
  if (doNormalize) {
    o.mean = j.image_mean as number[];
    o.std = (Array.isArray(j.image_std) ? j.image_std : [1]) as number[];
    origins.mean = at('image_mean');
    origins.std = at(Array.isArray(j.image_std) ? 'image_std' : 'image_std absent, 1');
  }
  const size = j.do_resize !== false ? hfSize(j.size) : undefined;
  const crop = j.do_center_crop === true || (j.do_center_crop === undefined && j.crop_size !== undefined) ? hfSize(j.crop_size) : undefined;
  const short = Math.min(t.height, t.width);
  if (size?.shortest !== undefined && typeof j.crop_pct === 'number' && j.crop_pct > 0 && crop === undefined) {
    // ConvNeXt's processor: below 384 the short side goes to int(shortest_edge / crop_pct) and the
    // centre shortest_edge² is cropped; at 384 and above the image is squashed to the square.
    if (size.shortest < 384) {
      o.resizeShortSide = Math.max(Math.trunc(size.shortest / j.crop_pct), short);
      origins.resizeShortSide = at(`size.shortest_edge = ${size.shortest}, crop_pct = ${j.crop_pct}`);
    } else {
      o.resizeShortSide = undefined;
      origins.resizeShortSide = at(`size.shortest_edge = ${size.shortest} ≥ 384: resized to the square, no crop`);
    }
  } else if (size?.shortest !== undefined && !(size.height && crop === undefined)) {
    o.resizeShortSide = Math.max(size.shortest, short);
    origins.resizeShortSide = at('size.shortest_edge');
  } else if (size?.height && size.width && crop?.height && crop.width && (crop.height < size.height || crop.width < size.width)) {
    // resize to a square larger than the crop, then crop: the same as resizing the short side
    o.resizeShortSide = Math.max(Math.min(size.height, size.width), short);
    origins.resizeShortSide = at('size, crop_size');
  }
  if (o.resizeShortSide !== undefined) {
    // Hugging Face's center_crop puts the window at floor((size − crop)/2).
    o.cropRounding = 'floor';
    origins.cropRounding = at("center_crop (Hugging Face floors the offset)");
  }
  const target = crop ?? (size?.height ? size : undefined);
  if (target?.height && target.width && (target.height !== t.height || target.width !== t.width)) {
    warnings.push(
      `${cfg.file} says ${target.width}×${target.height} but the model's input is ${t.width}×${t.height}; images are resized to the model's input size`,
    );
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Metadata

/**
 * Reads preprocessing from metadata_props: our own "skeptic.preprocessing" (JSON override), or
 * the Windows ML image keys. Undefined when the metadata says nothing.
 */
export function metadataOverride(meta: Record<string, string>, t: PreprocessTarget, warnings: string[]): PreprocessOverride | undefined {
  const own = meta['skeptic.preprocessing'];
  if (own !== undefined) {
    try {
      return JSON.parse(own) as PreprocessOverride;
    } catch (e) {
      throw new SkepticInputError(`${t.file}: metadata_props "skeptic.preprocessing" is not valid JSON (${(e as Error).message})`, t.file);
    }
  }
  const range = meta['Image.NominalPixelRange'];
  const fmt = meta['Image.BitmapPixelFormat'];
  if (range === undefined && fmt === undefined) return undefined;
  const o: PreprocessOverride = {};
  if (range === 'NominalRange_0_255') o.preset = 'raw255';
  else if (range === 'Normalized_0_1') o.preset = 'unit';
  else if (range === 'Normalized_1_1') o.preset = 'signed';
  else if (range !== undefined) {
    warnings.push(`metadata Image.NominalPixelRange = ${range} is not supported; assuming Normalized_0_1`);
    o.preset = 'unit';
  } else o.preset = 'unit';
  if (fmt === 'Bgr8') o.channelOrder = 'bgr';
  else if (fmt === 'Gray8' && t.channels !== 1) warnings.push(`metadata Image.BitmapPixelFormat = Gray8 but the model takes ${t.channels} channels`);
  else if ((fmt === 'Rgb8' || fmt === 'Bgr8') && t.channels !== 3) warnings.push(`metadata Image.BitmapPixelFormat = ${fmt} but the model takes 1 channel`);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Resolution

export interface ResolveArgs extends PreprocessTarget {
  preprocess?: string | PreprocessOverride;
  preprocessSource?: 'cli' | 'skeptic.json';
  /** How messages name where the override was written (default: --preprocess / skeptic.json "preprocess"). */
  preprocessWhere?: string;
  hf?: HfConfig;
  /** timm's config.json (pretrained_cfg) beside the model. */
  timm?: TimmConfig;
  metadata: Record<string, string>;
  /** The input's element type: a uint8 input takes pixels in [0,255], so the assumption is raw255. */
  inputType: string;
}

/** opts.preprocess > preprocessor_config.json > config.json (timm) > metadata_props > assumption (with a warning). */
export function resolvePreprocessing(a: ResolveArgs, warnings: string[]): Preprocessing {
  if (a.preprocess !== undefined) {
    const src = a.preprocessSource ?? 'cli';
    const where = a.preprocessWhere ?? (src === 'cli' ? '--preprocess' : 'skeptic.json "preprocess"');
    return completeOverride(parseOverride(a.preprocess, where), a, src, where);
  }
  if (a.hf) {
    const origins: Record<string, string> = {};
    return completeOverride(hfToOverride(a.hf, a, warnings, origins), a, 'preprocessor_config.json', a.hf.file, a.hf.file, origins);
  }
  if (a.timm) {
    const origins: Record<string, string> = {};
    return completeOverride(timmToOverride(a.timm, a, warnings, origins), a, 'config.json', a.timm.file, a.timm.file, origins);
  }
  const md = metadataOverride(a.metadata, a, warnings);
  if (md) return completeOverride(md, a, 'metadata', `${a.file}: metadata_props`, a.file);
  const preset = a.inputType === 'uint8' ? 'raw255' : 'unit';
  const pre = completeOverride({ preset }, a, 'assumed', 'assumed preprocessing');
  warnings.push(
    `preprocessing not specified: assuming pixels in ${preset === 'raw255' ? '[0,255]' : '[0,1]'} without mean/std ` +
      `(preset '${preset}'). Set it with --preprocess <${Object.keys(PRESETS).join('|')}|JSON>, "preprocess" in skeptic.json, ` +
      'a preprocessor_config.json beside the model, or metadata_props "skeptic.preprocessing"',
  );
  return pre;
}

// ---------------------------------------------------------------------------------------------
// The hot loop

/**
 * Writes `count` images of src (pixel space, N×C×H×W, starting at image `first`) into dst (the
 * model's float32 input, from its start) following pre and plan. Per-channel affine coefficients
 * and the source plane of each model channel are computed once; the loops are plain indexed
 * loops without per-pixel calls.
 */
export type Filler = (src: Float32Array, first: number, count: number, dst: Float32Array) => void;

export function makeFiller(pre: Preprocessing, plan: InputPlan): Filler {
  const C = plan.channels;
  const HW = plan.height * plan.width;
  const per = C * HW;
  const a = new Float32Array(C);
  const b = new Float32Array(C);
  const srcPlane = new Int32Array(C);
  for (let c = 0; c < C; c++) {
    a[c] = pre.scale / pre.std[c];
    b[c] = -pre.mean[c] / pre.std[c];
    // model channel c reads pixel plane srcPlane[c] (pixel space is RGB)
    srcPlane[c] = C === 3 && pre.channelOrder === 'bgr' ? 2 - c : c;
  }
  if (plan.layout !== 'NHWC') {
    // NCHW and flat (planar CHW flattened) share the pixel-space memory order.
    return (src, first, count, dst) => {
      for (let n = 0; n < count; n++) {
        const sBase = (first + n) * per;
        const dBase = n * per;
        for (let c = 0; c < C; c++) {
          const ac = a[c], bc = b[c];
          const s0 = sBase + srcPlane[c] * HW;
          const d0 = dBase + c * HW;
          for (let i = 0; i < HW; i++) dst[d0 + i] = src[s0 + i] * ac + bc;
        }
      }
    };
  }
  if (C === 1) {
    // NHWC with one channel is the same memory as NCHW.
    return (src, first, count, dst) => {
      const a0 = a[0], b0 = b[0];
      const s0 = first * per;
      const len = count * per;
      for (let i = 0; i < len; i++) dst[i] = src[s0 + i] * a0 + b0;
    };
  }
  return (src, first, count, dst) => {
    const a0 = a[0], a1 = a[1], a2 = a[2], b0 = b[0], b1 = b[1], b2 = b[2];
    for (let n = 0; n < count; n++) {
      const sBase = (first + n) * per;
      const p0 = sBase + srcPlane[0] * HW, p1 = sBase + srcPlane[1] * HW, p2 = sBase + srcPlane[2] * HW;
      let d = n * per;
      for (let i = 0; i < HW; i++, d += 3) {
        dst[d] = src[p0 + i] * a0 + b0;
        dst[d + 1] = src[p1 + i] * a1 + b1;
        dst[d + 2] = src[p2 + i] * a2 + b2;
      }
    }
  };
}
