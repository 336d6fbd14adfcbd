/**
 * Cue-conflict stimuli as views (views/): A's shape material and B's quilted texture become a
 * view source and its inputs, and the composite view op makes the stimulus by ONNX Runtime on
 * the model's provider, in front of the model in one session (the same bits as cue/generate.ts
 * compose, which stays the reference). The silhouette search and the texture quilting stay on
 * the CPU: quilting places patch after patch, each chosen against what is already placed (a
 * sequential search per image), and both are done once per image when the audit decodes it.
 */
import type { PixelImage } from '../types';
import type { ViewPlan, ViewSource } from '../views';
import { composeCarrier, inkFor, type GeneratorOptions, type ShapeMaterial } from './generate';

/** The plan of one composite view per shape image, at the model's input size. */
export function compositePlan(channels: number, height: number, width: number, opts: GeneratorOptions = {}): ViewPlan {
  return { channels, height, width, margin: 0, ops: [{ kind: 'composite', texture: 0, weights: 0, edgeWeight: opts.edgeWeight ?? 0.6, shading: opts.shading ?? 0.25 }] };
}

/** The view source of a stimulus: A's background plane, with B's texture and A's planes as inputs. */
export function compositeSource(shape: ShapeMaterial, texture: PixelImage): ViewSource {
  const c = composeCarrier(shape);
  const { channels: C, height: H, width: W } = shape;
  const n = H * W;
  if (texture.channels !== C || texture.height !== H || texture.width !== W) throw new RangeError('texture and shape differ in size');
  const weight = new Float32Array(4 * n);
  weight.set(c.mask, 0);
  weight.set(c.shading, n);
  weight.set(c.edges, 2 * n);
  weight.fill(inkFor(texture), 3 * n);
  return { source: { data: c.background, channels: C, height: H, width: W }, inputs: { given: texture.data, weight } };
}
