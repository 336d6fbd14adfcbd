/**
 * From an audit request to an AuditJob: which dataset, probes, parameters and options, and where
 * the report and the cache go. The same precedence as the CLI, with the editor's settings as
 * the user's defaults:
 *
 *   request  >  skeptic.json (the model's entry, then the file's top level)  >  skeptic.* settings  >  engine defaults
 *
 * except `device`, a property of the machine rather than of the project: a `skeptic.device`
 * setting other than `auto` wins over skeptic.json.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findConfig, loadConfig, type SkepticConfig } from '../engine/config';
import { checkRegularFile, MAX_MODEL_BYTES } from '../engine/fs/files';
import { isInside } from '../engine/data/common';
import { SkepticInputError } from '../engine/errors';
import { DEFAULT_PROBES } from '../engine/probes';
import type { AuditJob, AuditParams, SkepticSettings } from '../protocol';
import { reportFolder } from './reports';

export const DEFAULT_SETTINGS: SkepticSettings = {
  device: 'auto',
  probes: [],
  probeParameters: {},
  thresholds: {},
  batchSize: 32,
  limit: 0,
  seed: 0,
  cacheLocation: '',
  useCache: true,
  followSymlinks: false,
};

/** The workspace folder that holds `path`, if any. */
export function rootOf(roots: string[], path: string): string | undefined {
  return roots.filter((r) => isInside(r, path)).sort((a, b) => b.length - a.length)[0];
}

type Params = Record<string, Record<string, unknown>>;

function mergeParams(...layers: Array<Params | undefined>): Params {
  const out: Params = {};
  for (const layer of layers) {
    for (const [probe, values] of Object.entries(layer ?? {})) {
      if (values && typeof values === 'object') out[probe] = { ...out[probe], ...values };
    }
  }
  return out;
}

/** "shift.maxFlipRate": 0.05 → { shift: { maxFlipRate: 0.05 } } */
function thresholdParams(t: Record<string, number>): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(t ?? {})) {
    const dot = k.indexOf('.');
    if (dot > 0) (out[k.slice(0, dot)] ??= {})[k.slice(dot + 1)] = v;
  }
  return out;
}

/** A path-valued parameter (ood.oodData) relative to the file or folder that gave it. */
function resolvePaths(p: Params | undefined, base: string): Params | undefined {
  // corruptions.frostDir (a folder of frost textures) is relative to the same base
  if (p?.corruptions && typeof p.corruptions.frostDir === 'string') p = { ...p, corruptions: { ...p.corruptions, frostDir: resolve(base, p.corruptions.frostDir) } };
  if (!p?.ood || typeof p.ood.oodData !== 'string') return p;
  return { ...p, ood: { ...p.ood, oodData: resolve(base, p.ood.oodData) } };
}

export interface ResolvedAudit {
  job: AuditJob;
  config?: SkepticConfig;
}

/** Longer than PATH_MAX (4096) with room for percent-encoding. */
const MAX_URI = 16384;

export function resolveJob(params: AuditParams, settings: SkepticSettings, roots: string[]): ResolvedAudit {
  const s = { ...DEFAULT_SETTINGS, ...settings };
  // A path longer than any file system allows is refused in a short message (not echoed whole).
  for (const [k, v] of [['model', params.model], ['dataset', params.dataset]] as const) {
    if (typeof v === 'string' && v.length > MAX_URI) throw new SkepticInputError(`the ${k} URI is ${v.length} characters long; the limit is ${MAX_URI}`);
  }
  const model = fileURLToPath(params.model);
  // Says why (not found, a link loop, permission denied, a FIFO...), not just "not found".
  checkRegularFile(model, 'model', MAX_MODEL_BYTES);
  const root = rootOf(roots, model);
  const configFile = findConfig(dirname(model));
  const config = configFile ? loadConfig(configFile) : undefined;
  const datasetArg = params.dataset ? fileURLToPath(params.dataset) : undefined;
  const entry =
    config?.models.find((m) => m.path === model && (!datasetArg || m.dataset === datasetArg)) ??
    config?.models.find((m) => m.path === model);
  const dataset = datasetArg ?? entry?.dataset;
  if (!dataset) {
    throw new SkepticInputError(
      `no dataset for ${model}: choose one (Skeptic: Audit Dataset With Model...) or give this model a "dataset" in ${configFile ?? 'skeptic.json'}`,
      configFile ?? model,
    );
  }
  const baseDir = config ? dirname(config.file) : (root ?? dirname(model));
  const settingsBase = root ?? baseDir;
  const probes = params.probes ?? entry?.probes ?? (s.probes.length ? s.probes : undefined);
  const device = params.device ?? (s.device !== 'auto' ? s.device : ((config?.device as AuditJob['device']) ?? 'auto'));
  const limit = params.limit ?? entry?.limit ?? (s.limit > 0 ? s.limit : undefined);
  const useCache = !params.noCache && s.useCache;
  const job: AuditJob = {
    model,
    dataset,
    params: mergeParams(
      resolvePaths(s.probeParameters, settingsBase),
      thresholdParams(s.thresholds),
      resolvePaths(config?.probes, baseDir),
      params.params,
    ),
    seed: params.seed ?? config?.seed ?? s.seed,
    batchSize: params.batchSize ?? config?.batchSize ?? s.batchSize,
    device,
    outDir: reportFolder(baseDir, model, dataset),
    baseDir,
  };
  if (probes) job.probes = probes;
  // The editor's audits run the attack probe at its `fast` preset unless told otherwise (a
  // right-click should not take AutoAttack-standard minutes); the CLI's default is `standard`.
  const attack = job.params.attack;
  if (probes?.includes('attack') && attack?.preset === undefined && attack?.attacks === undefined) job.params.attack = { ...attack, preset: 'fast' };
  // Likewise the corruptions probe runs ImageNet-C's 15 at severities 1, 3 and 5 unless told
  // otherwise: 46 views per image (with the clean one), near the 41 of the 8 corruptions it had
  // before, where all five severities take 76 (mCE needs all five: the CLI's default, or set corruptions.severities).
  const corruptions = job.params.corruptions;
  if ((probes ?? DEFAULT_PROBES).includes('corruptions') && corruptions?.severities === undefined) job.params.corruptions = { ...corruptions, severities: [1, 3, 5] };
  if (config?.threads !== undefined) job.threads = config.threads;
  if (config?.lanes !== undefined) job.lanes = config.lanes;
  // skeptic.json wins over the setting, as for the other keys; the CLI's --follow-symlinks reads the same key
  if ((config?.followSymlinks ?? s.followSymlinks) === true) job.followSymlinks = true;
  if (limit !== undefined) job.limit = limit;
  if (useCache) job.cacheDir = s.cacheLocation ? resolve(settingsBase, s.cacheLocation) : join(baseDir, '.skeptic', 'cache');
  if (entry?.preprocess !== undefined) job.preprocess = entry.preprocess;
  if (entry?.labels) job.labels = entry.labels;
  if (entry?.outputKind) job.outputKind = entry.outputKind;
  return { job, config };
}
