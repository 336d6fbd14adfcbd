/**
 * timm's pretrained config, as the Hugging Face hub ships it beside a timm model: config.json
 * with a `pretrained_cfg` object (input_size, interpolation, crop_pct, crop_mode, mean, std).
 *
 * timm's evaluation transform (timm.data.create_transform, is_training=False):
 *   scale_size = floor(input_size / crop_pct); Resize(scale_size, interpolation) on the short
 *   side; CenterCrop(input_size); ToTensor; Normalize(mean, std).
 * crop_pct defaults to 0.875 and interpolation to bilinear, as in timm.
 *
 * A config.json without pretrained_cfg (a transformers model config, say) is not timm's and is
 * ignored.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SkepticInputError } from '../errors';
import { INTERPOLATIONS, type Interpolation } from '../image/resample';
import type { PreprocessOverride, PreprocessTarget } from './preprocess';

export interface TimmConfig {
  file: string;
  /** The pretrained_cfg object. */
  cfg: Record<string, unknown>;
}

/** timm's DEFAULT_CROP_PCT. */
const DEFAULT_CROP_PCT = 0.875;

export function readTimmConfig(modelPath: string): TimmConfig | undefined {
  const file = join(dirname(modelPath), 'config.json');
  if (!existsSync(file)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SkepticInputError(`${file}: invalid JSON (${(e as Error).message})`, file);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) return undefined;
  const cfg = (json as Record<string, unknown>).pretrained_cfg;
  if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) return undefined;
  return { file, cfg: cfg as Record<string, unknown> };
}

/** [C, H, W] from pretrained_cfg.input_size, when it is one. */
export function timmInputSize(t: TimmConfig): { height: number; width: number } | undefined {
  const s = t.cfg.input_size;
  if (!Array.isArray(s) || s.length !== 3 || !s.every((v) => Number.isInteger(v) && v > 0)) return undefined;
  return { height: s[1] as number, width: s[2] as number };
}

/** Translates pretrained_cfg into an override, recording where each value came from. */
export function timmToOverride(t: TimmConfig, target: PreprocessTarget, warnings: string[], origins: Record<string, string>): PreprocessOverride {
  const c = t.cfg;
  const at = (key: string) => `${t.file}: pretrained_cfg.${key}`;
  const bad = (what: string): never => {
    throw new SkepticInputError(`${t.file}: pretrained_cfg.${what}`, t.file);
  };
  const o: PreprocessOverride = { scale: 1 };
  origins.scale = `${t.file}: timm's ToTensor ([0,1])`;
  for (const k of ['mean', 'std'] as const) {
    if (c[k] === undefined) continue;
    if (!Array.isArray(c[k])) bad(`${k} must be an array of numbers`);
    o[k] = c[k] as number[];
    origins[k] = at(k);
  }
  if (c.interpolation !== undefined) {
    let interp = String(c.interpolation).toLowerCase();
    if (interp === 'random') {
      warnings.push(`${t.file}: pretrained_cfg.interpolation = random is a training-time choice; evaluating with bilinear`);
      interp = 'bilinear';
    }
    if (!INTERPOLATIONS.includes(interp as Interpolation)) bad(`interpolation = ${JSON.stringify(c.interpolation)} is not one of ${INTERPOLATIONS.join(', ')}`);
    o.interpolation = interp as Interpolation;
    origins.interpolation = at(`interpolation = ${c.interpolation}`);
  }
  const size = timmInputSize(t);
  if (size && (size.height !== target.height || size.width !== target.width)) {
    warnings.push(`${t.file} says ${size.width}×${size.height} but the model's input is ${target.width}×${target.height}; images are resized to the model's input size`);
  }
  const pct = c.crop_pct === undefined || c.crop_pct === null ? DEFAULT_CROP_PCT : c.crop_pct;
  if (typeof pct !== 'number' || !(pct > 0) || pct > 1) bad(`crop_pct must be a number in (0, 1], got ${JSON.stringify(c.crop_pct)}`);
  const cropPct = pct as number;
  const mode = c.crop_mode === undefined || c.crop_mode === null ? 'center' : String(c.crop_mode);
  const cropFrom = c.crop_pct === undefined || c.crop_pct === null ? `crop_pct absent, timm's default ${DEFAULT_CROP_PCT}` : `crop_pct = ${cropPct}`;
  if (mode === 'squash' && cropPct === 1) {
    // Resize both sides to input_size, no crop: the straight resize.
    o.resizeShortSide = undefined;
    origins.resizeShortSide = at('crop_mode = squash, crop_pct = 1: resized to the input size, no crop');
    return o;
  }
  if (mode !== 'center') {
    warnings.push(`${t.file}: pretrained_cfg.crop_mode = ${mode} is not supported; using timm's 'center' (resize the short side, centre-crop)`);
  }
  // timm: scale_size = floor(img_size / crop_pct) per side; a square gives Resize(int) on the short side.
  const h = size?.height ?? target.height;
  const w = size?.width ?? target.width;
  if (h !== w) warnings.push(`${t.file}: non-square input_size; resizing the short side to floor(min(H, W) / crop_pct) (timm keeps the ratio per side)`);
  o.resizeShortSide = Math.max(Math.floor(Math.min(target.height, target.width) / cropPct), Math.min(target.height, target.width));
  origins.resizeShortSide = at(`${cropFrom}: floor(${Math.min(target.height, target.width)} / ${cropPct})`);
  return o;
}
