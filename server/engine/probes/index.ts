/** The probe registry: every probe the engine knows, by the id the CLI and skeptic.json use. */
import { SkepticInputError } from '../errors';
import { attackProbe } from './attack';
import { cleanProbe } from './clean';
import { corruptionsProbe } from './corruptions';
import { cueConflictProbe } from './cue-conflict';
import { oodProbe } from './ood';
import { patchesProbe } from './patches';
import { priorProbe } from './prior';
import type { Probe } from './probe';
import { shiftProbe } from './shift';

type Factory = (params?: Record<string, unknown>) => Probe<object>;

export const PROBES: Record<string, {
  factory: Factory;
  summary: string;
  /** Settings under which the probe takes further parameters (for completion in skeptic.json). */
  variants?: Record<string, unknown>[];
}> = {
  clean: { factory: cleanProbe as Factory, summary: 'accuracy, per-class accuracy, confusion matrix, confidences' },
  shift: { factory: shiftProbe as Factory, summary: 'P4: 1-pixel translations and embedding (Azulay & Weiss 2019)' },
  patches: { factory: patchesProbe as Factory, summary: 'P3: patch shuffle and local evidence maps (Brendel & Bethge 2019)' },
  ood: {
    factory: oodProbe as Factory,
    summary: 'P5: confidence out of distribution: generated OOD sets and --ood DATASET; MSP/energy and feature-space (Mahalanobis, KNN, ViM, ReAct) AUROC, FPR@95, ECE (Hendrycks & Gimpel 2017; Nalisnick et al. 2019)',
  },
  corruptions: { factory: corruptionsProbe as Factory, summary: 'P7: common corruptions at severities 1–5 (Hendrycks & Dietterich 2019)' },
  attack: {
    factory: attackProbe as Factory,
    summary: 'P1: the AutoAttack protocol (APGD-CE, APGD-T, Square; preset standard/fast/custom), FGSM, PGD L∞/L2 with minimal ε; gradient-masking checks (Croce & Hein 2020; Madry et al. 2018; Andriushchenko et al. 2020; Athalye et al. 2018)',
  },
  'cue-conflict': {
    factory: cueConflictProbe as Factory,
    summary: 'P2: shape bias on cue-conflict stimuli, yours (--cue-conflict DIR) or generated from the data (Geirhos et al. 2019)',
    variants: [{ generator: 'style-transfer' }],
  },
  prior: {
    factory: priorProbe as Factory,
    summary: 'P6: how much the untrained architecture and raw pixels already solve (Ulyanov et al. 2018)',
  },
};

/** The probes that need only forward passes: all of them run unless --probes says otherwise. */
export const DEFAULT_PROBES = ['clean', 'shift', 'patches', 'ood', 'corruptions'];

export function createProbes(ids: string[], params: Record<string, Record<string, unknown>> = {}): Probe<object>[] {
  for (const id of Object.keys(params)) {
    if (!PROBES[id]) throw new SkepticInputError(`unknown probe '${id}' in probe parameters; known: ${Object.keys(PROBES).join(', ')}`);
  }
  const unique = [...new Set(ids)];
  // The clean probe always runs first: the others are read against it.
  if (!unique.includes('clean')) unique.unshift('clean');
  return unique.map((id) => {
    const entry = PROBES[id];
    if (!entry) throw new SkepticInputError(`unknown probe '${id}'; known probes: ${Object.keys(PROBES).join(', ')}`);
    return entry.factory(params[id]);
  });
}
