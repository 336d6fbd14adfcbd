/**
 * Corruption Error (Hendrycks & Dietterich, ICLR 2019, §4): for a corruption c, the model's
 * top-1 error summed over severities 1–5 divided by AlexNet's, CE_c = Σ_s E_{s,c} / Σ_s E^AlexNet_{s,c},
 * equivalently mean error over the five severities over AlexNet's mean; mCE is the mean CE over
 * the 15 corruptions. Only meaningful on ImageNet (1000 classes, ImageNet-sized inputs) with all
 * five severities: AlexNet's errors were measured there.
 *
 * AlexNet's mean errors per corruption (over severities 1–5) as published with the benchmark
 * (hendrycks/robustness) and copied by everyone who reports mCE, e.g. AugMix's imagenet.py
 * (google-research/augmix, ALEXNET_ERR).
 */
export const ALEXNET_ERR: Readonly<Record<string, number>> = {
  gaussian_noise: 0.886428,
  shot_noise: 0.894468,
  impulse_noise: 0.92264,
  defocus_blur: 0.81988,
  glass_blur: 0.826268,
  motion_blur: 0.785948,
  zoom_blur: 0.79836,
  snow: 0.866816,
  frost: 0.826572,
  fog: 0.819324,
  brightness: 0.564592,
  contrast: 0.853204,
  elastic_transform: 0.646056,
  pixelate: 0.71784,
  jpeg_compression: 0.6065,
};

/** CE of one corruption from the model's accuracy at severities 1–5, or null without an AlexNet baseline / all five severities. */
export function corruptionError(name: string, accuracyBySeverity: ReadonlyArray<number>, severities: ReadonlyArray<number>): number | null {
  const base = ALEXNET_ERR[name];
  if (base === undefined || severities.length !== 5 || [1, 2, 3, 4, 5].some((s, i) => severities[i] !== s)) return null;
  if (accuracyBySeverity.some((a) => !Number.isFinite(a))) return null;
  const err = accuracyBySeverity.reduce((a, acc) => a + (1 - acc), 0) / 5;
  return err / base;
}

/** mCE: the mean CE over the corruptions that have one (null if none do), and how many those are. */
export function meanCorruptionError(ces: ReadonlyArray<number | null>): { mCE: number | null; count: number } {
  const xs = ces.filter((c): c is number => c !== null);
  return { mCE: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null, count: xs.length };
}
