/**
 * Categories for cue-conflict decisions: which of the model's classes make up each category, and
 * the decision rule of Geirhos et al. (ICLR 2019; rgeirhos/texture-vs-shape,
 * code/probabilities_to_decision.py): average the softmax probabilities over each category's
 * classes and take the category with the largest mean (ties: the first category in order).
 *
 * Mappings:
 *  - imagenet16: the 16 entry-level categories of the paper over the 1000 ImageNet classes
 *    (imagenet16.json, written by imagenet16.build.mjs from the published WNID lists). When the
 *    model's labels carry WNIDs, the WNIDs are looked up in them (any class order works);
 *    otherwise the standard sorted-WNID indices are used.
 *  - a user file (JSON): {"category": [class index | class name | WNID, ...], ...}, in the order
 *    the categories should be tried; also accepted: {"mapping": {...}} and per-category objects
 *    {"indices": [...]} / {"imagenet1k_indices": [...]} / {"classes": [...]} / {"wnids": [...]}.
 *    Names are matched, case-insensitively, against every key of the model's labels.
 *  - identity: every class of the model is its own category (a model whose labels ARE the
 *    categories, e.g. the demo shapes model).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SkepticInputError } from '../errors';
import type { LabelSet, LoadedModel } from '../types';
import IMAGENET16 from './imagenet16.json';

export interface CategoryMap {
  /** Category names, in decision order (ties go to the first). */
  names: string[];
  /** classes[c]: the model's class indices that make up category c (at least one each). */
  classes: number[][];
  /** 'imagenet16', 'identity', or the user's file. */
  source: string;
  /** Things the user should know (names that matched no class, empty categories dropped). */
  warnings: string[];
}

/** The published mapping as shipped: category → WNIDs and ImageNet-1k indices. */
export const IMAGENET16_CATEGORIES: Record<string, { wnids: string[]; indices: number[] }> = IMAGENET16.categories;

/** The raw content of a user mapping file, parsed (kept so that it can key the results cache). */
export type RawMapping = Record<string, Array<number | string>>;

/** Reads and validates a user mapping file; throws SkepticInputError naming the file. */
export function readCategoriesFile(file: string): RawMapping {
  const path = resolve(file);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8').replace(/^\uFEFF/, ''));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : (e as Error).message;
    throw new SkepticInputError(`categories file ${path}: ${why}`, path);
  }
  return parseMapping(json, path);
}

/** Normalises the accepted JSON shapes to {category: [index | name]}. */
export function parseMapping(json: unknown, where = 'categories'): RawMapping {
  const bad = (why: string): never => {
    throw new SkepticInputError(
      `${where}: ${why}; expected JSON {"category": [class indices or names], ...}`,
      where,
    );
  };
  if (!json || typeof json !== 'object' || Array.isArray(json)) return bad('not a JSON object');
  let obj = json as Record<string, unknown>;
  if (obj.mapping && typeof obj.mapping === 'object' && !Array.isArray(obj.mapping)) obj = obj.mapping as Record<string, unknown>;
  else if (obj.categories && typeof obj.categories === 'object' && !Array.isArray(obj.categories)) obj = obj.categories as Record<string, unknown>;
  const out: RawMapping = {};
  for (const [name, v] of Object.entries(obj)) {
    let list: unknown = v;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      list = o.indices ?? o.imagenet1k_indices ?? o.classes ?? o.wnids;
    }
    if (!Array.isArray(list) || !list.every((x) => (typeof x === 'number' && Number.isInteger(x) && x >= 0) || (typeof x === 'string' && x.trim()))) {
      return bad(`category '${name}' must list class indices (integers ≥ 0) or class names`);
    }
    out[name] = list as Array<number | string>;
  }
  if (Object.keys(out).length < 2) bad('at least two categories are needed');
  return out;
}

/** Resolves a raw mapping against the model's classes. */
export function resolveMapping(raw: RawMapping, numClasses: number, labels: LabelSet | undefined, source: string): CategoryMap {
  const byKey = new Map<string, number>();
  labels?.keys.forEach((ks, i) => ks.forEach((k) => byKey.has(k) || byKey.set(k, i)));
  const names: string[] = [];
  const classes: number[][] = [];
  const warnings: string[] = [];
  const unknown: string[] = [];
  for (const [name, list] of Object.entries(raw)) {
    const idx: number[] = [];
    for (const x of list) {
      let i: number | undefined;
      if (typeof x === 'number') i = x < numClasses ? x : undefined;
      else {
        const t = x.trim().toLowerCase();
        i = byKey.get(t) ?? (/^\d+$/.test(t) && Number(t) < numClasses ? Number(t) : undefined);
      }
      if (i === undefined) unknown.push(`${name}: ${x}`);
      else if (!idx.includes(i)) idx.push(i);
    }
    if (idx.length === 0) {
      warnings.push(`category '${name}' matches none of the model's classes and is left out`);
      continue;
    }
    names.push(name);
    classes.push(idx);
  }
  if (unknown.length) {
    const some = unknown.slice(0, 5).join('; ') + (unknown.length > 5 ? `; and ${unknown.length - 5} more` : '');
    warnings.push(`${unknown.length} entries of the category mapping are not classes of the model (${some})`);
  }
  if (names.length < 2) {
    throw new SkepticInputError(`${source}: fewer than two categories match the model's ${numClasses} classes`, source);
  }
  return { names, classes, source, warnings };
}

/**
 * The 16-category ImageNet mapping for this model: by WNID through its labels when they carry
 * WNIDs, else by the standard indices (1000-class models only).
 */
export function imagenet16(numClasses: number, labels?: LabelSet): CategoryMap | undefined {
  const cats = Object.keys(IMAGENET16_CATEGORIES).sort();
  const byKey = new Map<string, number>();
  labels?.keys.forEach((ks, i) => ks.forEach((k) => /^n\d{8}$/.test(k) && !byKey.has(k) && byKey.set(k, i)));
  if (byKey.size >= 900) {
    const classes = cats.map((c) => IMAGENET16_CATEGORIES[c].wnids.map((w) => byKey.get(w)).filter((i): i is number => i !== undefined));
    if (classes.every((l) => l.length > 0)) return { names: cats, classes, source: 'imagenet16 (by WNID)', warnings: [] };
  }
  if (numClasses !== 1000) return undefined;
  return { names: cats, classes: cats.map((c) => [...IMAGENET16_CATEGORIES[c].indices]), source: 'imagenet16', warnings: [] };
}

/** Every class its own category, named by the model's labels (or its index). */
export function identity(numClasses: number, labels?: LabelSet): CategoryMap {
  const names = Array.from({ length: numClasses }, (_, i) => labels?.names[i] ?? String(i));
  return { names, classes: names.map((_, i) => [i]), source: 'identity', warnings: [] };
}

/**
 * The mapping the probe uses: the user's (when given), else imagenet16 when `preferImagenet` and
 * the model is an ImageNet-1k classifier, else identity.
 */
export function categoryMapFor(model: Pick<LoadedModel, 'info' | 'labels'>, raw: RawMapping | undefined, source: string | undefined, preferImagenet = true): CategoryMap {
  const K = model.info.numClasses;
  if (raw) return resolveMapping(raw, K, model.labels, source ?? 'categories');
  if (preferImagenet) {
    const m = imagenet16(K, model.labels);
    if (m) return m;
  }
  return identity(K, model.labels);
}

/**
 * Index of a category name in the mapping (case-insensitive; for identity mappings any key of
 * the model's labels), or -1.
 */
export function categoryIndex(map: CategoryMap, name: string, labels?: LabelSet): number {
  const t = name.trim().toLowerCase();
  const i = map.names.findIndex((n) => n.toLowerCase() === t);
  if (i >= 0 || map.source !== 'identity' || !labels) return i;
  return labels.keys.findIndex((ks) => ks.includes(t));
}

/** The category of a class index (its first category), or -1. */
export function categoryOfClass(map: CategoryMap, cls: number): number {
  for (let c = 0; c < map.classes.length; c++) if (map.classes[c].includes(cls)) return c;
  return -1;
}

/**
 * The decision for one row of softmax probabilities (probs[offset .. offset+K)): the category
 * with the largest mean probability over its classes; the first one wins a tie. Means are
 * accumulated in double precision, in the order the classes are listed.
 */
export function decide(probs: ArrayLike<number>, offset: number, map: CategoryMap): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let c = 0; c < map.classes.length; c++) {
    const cls = map.classes[c];
    let s = 0;
    for (const i of cls) s += probs[offset + i];
    const v = s / cls.length;
    if (v > bestValue) {
      bestValue = v;
      best = c;
    }
  }
  return best;
}
