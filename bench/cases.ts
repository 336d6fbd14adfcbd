/**
 * The fixture cases of the audit benchmarks (bench/audit.ts, bench/audit-lanes.ts), paths under
 * ../shared/fixtures: the model, the data, the preprocessing the model was trained with, and how
 * many images. The target's two cases first; CIFAR-10 is outside the target (`optional`). Also
 * the options every bench script loads a case's model with (caseModelOptions).
 */
import { join } from 'node:path';
import type { LoadModelOptions } from '../server/engine/model';

export interface BenchCase {
  key: 'imagenet' | 'mnist' | 'cifar';
  name: string;
  model: string;
  data: string;
  preprocess: NonNullable<LoadModelOptions['preprocess']>;
  labels?: string;
  /** Images audited by default. */
  images: number;
  /** Not part of the target: run only when asked for by name. */
  optional?: true;
}

export const BENCH_CASES: readonly BenchCase[] = [
  { key: 'imagenet', name: 'MobileNetV2-int8 / ImageNet', model: 'models/imagenet_mobilenetv2-12-int8.onnx', data: 'imagenet_samples/labels.csv', preprocess: 'imagenet', labels: 'labels/imagenet_1k_wnids_names.txt', images: 100 },
  { key: 'mnist', name: 'mnist-8 / MNIST', model: 'models/mnist-8_onnxzoo_cntk.onnx', data: 'mnist', preprocess: 'unit', images: 1000 },
  // Small colour images, where a corruption view's CPU part (JPEG above all, until image/jpeg.ts)
  // costs more than the model's pass.
  {
    key: 'cifar', name: 'ResNet-2B / CIFAR-10', model: 'models/cifar10_resnet2b_advtrained.onnx', data: 'cifar10_test_first100/labels.csv',
    preprocess: { mean: [0.4914, 0.4822, 0.4465], std: [0.2471, 0.2435, 0.2616] }, images: 100, optional: true,
  },
];

/**
 * loadModel's options for a case's model (a BenchCase or a bench script's own case): on the CPU,
 * with the case's preprocessing and, where it has them, its label names under `fixtures`; `more`
 * adds to them or overrides them (batchSize, device).
 */
export function caseModelOptions(c: Pick<LoadModelOptions, 'preprocess' | 'labels'>, fixtures: string, more: LoadModelOptions = {}): LoadModelOptions {
  return { device: 'cpu', preprocess: c.preprocess, labels: c.labels ? join(fixtures, c.labels) : undefined, ...more };
}
