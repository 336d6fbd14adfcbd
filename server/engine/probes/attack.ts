/**
 * P1, adversarial examples (Szegedy et al., ICLR 2014; Biggio et al., ECML 2013; Goodfellow et al.,
 * ICLR 2015; Madry et al., ICLR 2018; Andriushchenko et al., ECCV 2020), with the sanity checks of
 * Athalye, Carlini & Wagner (ICML 2018) and Carlini et al. (2019, "On evaluating adversarial
 * robustness").
 *
 * Each correctly classified image (unlabelled: each image, against its own prediction) is
 * attacked, untargeted, in pixel space ([0,1], before the model's normalisation):
 *   - white-box, through the input gradient of the model's own ONNX graph (model/gradient):
 *     FGSM and PGD L∞ at every ε of the L∞ grid, PGD L2 at every ε of the L2 grid (random start,
 *     20 steps, α = 2.5·ε/20, cross-entropy by default);
 *   - black-box: Square Attack L∞ (scores only, a query budget per image and ε), at every ε of
 *     the L∞ grid;
 *   - minimal ε (L∞): bracketed by the grid (the smallest ε any L∞ attack broke, and the grid ε
 *     below it or 0), then bisected with PGD for `bisectionSteps` steps (attacks/minimal-eps.ts).
 *     Images no grid ε breaks are attacked at `largeEps`; if that breaks them, [largest grid ε,
 *     largeEps] is bisected instead. Without a gradient, the minimal ε is the smallest grid ε
 *     Square broke (no bisection: each Square run is a full query budget).
 * Grids [L∞: 1/255, 2/255, 4/255, 8/255 for natural images, 0.1, 0.2, 0.3 for digits; L2: 0.25,
 * 0.5, 1 for natural images, 1, 2, 3 for digits], where "digits" means a 1-channel input of at
 * most 32×32 pixels (or domain: 'digits'). The L2 defaults bracket the usual benchmarks: 0.5 on
 * CIFAR-10 and 2 on MNIST (RobustBench; Madry et al.).
 *
 * Every random choice comes from derivedRng(seed, 'attack/<attack>/<ε>', sha256): an image gets
 * the same random start or search at a given ε whatever else is attacked, and render() re-runs
 * the attack that found the minimal ε, at that ε, to recover the same adversarial image.
 *
 * When the gradient model cannot be built (an op without a gradient rule), the probe runs
 * Square alone and says which ops blocked the white-box attacks (metrics.whiteBox and a
 * model-level finding).
 *
 * Sanity checks (model-level warnings):
 *   - gradient masking suspected: Square (black-box) breaks more images than FGSM and PGD
 *     together (white-box) at the same ε, by more than `maskingTolerance` of the attacked images;
 *   - robust accuracy rises with ε for an iterative attack (PGD L∞, PGD L2, Square) by more than
 *     `riseTolerance`: a larger ball contains the smaller one, so only a failing attack does that;
 *   - robust accuracy at `largeEps` [0.5: every pixel may move half the range] above
 *     `maxRobustAtLarge` [10%]: an attack that works reaches ~0 there (Carlini et al. §5).
 * Per image, a warning when the minimal ε is at most `invisibleEps` [1/255]: a change of one grey
 * level per pixel flips the label.
 *
 * Cost. Only correctly classified images are attacked (the others are recorded as already wrong),
 * at most `maxImages` images per audit (counting misclassified ones, which cost one forward pass),
 * the first in dataset order, a cap the audit applies (Probe.imageLimit) ['auto': 100 for inputs up to 64×64, 16 above].
 * Per image and at the defaults: up to 15 PGD runs of 20 gradient steps (4 + 3 grid points, 7
 * bisection steps, the large-ε run), each stopping at its first success, and 4 Square runs of up
 * to 1000 queries, also stopping at success. Measured on two CPU cores: MNIST CNN 0.2 s/image,
 * CIFAR-10 ResNet-2B 0.6 s/image, ImageNet MobileNetV2 (int8) about a minute. Images are attacked
 * together: every gradient and query call carries all rows of a batch (images × ε).
 */
import { SkepticInputError, throwIfAborted } from '../errors';
import { toBatch } from '../image/ops';
import { derivedRng } from '../random';
import type { DeviceChoice, LoadedModel, PixelBatch, PixelImage } from '../types';
import { gatherRows, rowSize, verdict, type GradientOracle, type LossKind } from '../attacks/base';
import { buildGradientModel, GradientUnsupportedError } from '../model/gradient';
import { fgsm } from '../attacks/fgsm';
import { bisectMinimalEps } from '../attacks/minimal-eps';
import { apgd, apgdTargeted } from '../attacks/apgd';
import { pgd } from '../attacks/pgd';
import { squareLinf } from '../attacks/square';
import { boolParam, groupsWithin, numberParam, pct, round, type FindingDraft, type Probe, type ProbeContext, type ProbeImage } from './probe';

/** Every attack, in the order they run (each norm's chain keeps this order). */
export const ATTACKS = ['fgsm', 'pgd-linf', 'pgd-l2', 'apgd-ce', 'apgd-t', 'square'] as const;
export type AttackName = (typeof ATTACKS)[number];
/** What preset 'custom' runs when `attacks` is not given: the attacks before APGD. */
const LEGACY_ATTACKS: AttackName[] = ['fgsm', 'pgd-linf', 'pgd-l2', 'square'];

export const PRESETS = ['standard', 'fast', 'custom'] as const;
export type Preset = (typeof PRESETS)[number];

/**
 * The AutoAttack protocol (Croce & Hein, ICML 2020): APGD-CE, then APGD-T on the survivors, then
 * Square on theirs. `standard` has AutoAttack's standard budgets (its FAB-T step aside); `fast`
 * cuts them for the editor; `custom` starts from the legacy attacks and 1,000 queries.
 */
export const PRESET_BUDGETS: Record<Preset, { attacks: AttackName[]; apgdSteps: number; restarts: number; targets: number; queries: number }> = {
  standard: { attacks: ['apgd-ce', 'apgd-t', 'square'], apgdSteps: 100, restarts: 1, targets: 9, queries: 5000 },
  fast: { attacks: ['apgd-ce', 'apgd-t', 'square'], apgdSteps: 20, restarts: 1, targets: 3, queries: 1000 },
  custom: { attacks: LEGACY_ATTACKS, apgdSteps: 100, restarts: 1, targets: 9, queries: 1000 },
};

/** The per-ε bitmask field of an AttackRecord for an attack on a norm's grid. */
const MASK_KEY = {
  linf: { fgsm: 'fgsm', 'pgd-linf': 'pgd', 'apgd-ce': 'apgdCe', 'apgd-t': 'apgdT', square: 'square' },
  l2: { 'pgd-l2': 'pgdL2', 'apgd-ce': 'apgdCeL2', 'apgd-t': 'apgdTL2' },
} as const;
type MaskKey = 'fgsm' | 'pgd' | 'pgdL2' | 'square' | 'apgdCe' | 'apgdT' | 'apgdCeL2' | 'apgdTL2';

/** Display names, for messages and the report's protocol log. */
export const ATTACK_TITLES: Record<AttackName, string> = {
  fgsm: 'FGSM', 'pgd-linf': 'PGD', 'pgd-l2': 'PGD', 'apgd-ce': 'APGD-CE', 'apgd-t': 'APGD-T', square: 'Square',
};

/** The chain of attacks on a norm's grid, in run order, of those asked for. */
export function chainOf(norm: 'linf' | 'l2', attacks: readonly AttackName[]): AttackName[] {
  return ATTACKS.filter((a) => attacks.includes(a) && a in MASK_KEY[norm]);
}

/** The gradient model as this probe uses it (model/gradient's GradientModel is one). */
export interface GradientModelLike extends GradientOracle {
  /** shadow: an int8 graph was differentiated through its float shadow (straight-through). */
  coverage: { shadow?: boolean; notes: string[] };
  dispose(): Promise<void>;
}

export interface AttackDeps {
  /** Builds the input-gradient model (default: model/gradient's buildGradientModel). */
  buildGradientModel?: (model: LoadedModel, opts?: { device?: DeviceChoice }) => Promise<GradientModelLike>;
}

export interface AttackRecord {
  /** Clean top-1 and its probability. */
  pred: number;
  conf: number;
  /** attacked; wrong: misclassified already (not attacked). */
  status: 'attacked' | 'wrong';
  /** Per attack, a bitmask over its grid: bit k set when the attack found an adversarial at
   *  ε_k (fgsm, pgd, apgdCe, apgdT, square: the L∞ grid; pgdL2, apgdCeL2, apgdTL2: the L2
   *  grid). Absent when it did not run. With `survivors` (the presets), an attack only runs
   *  where the earlier ones failed, so at most one bit per ε is set across a norm's attacks. */
  fgsm?: number;
  pgd?: number;
  pgdL2?: number;
  square?: number;
  apgdCe?: number;
  apgdT?: number;
  apgdCeL2?: number;
  apgdTL2?: number;
  /** Per ε of the L∞ (L2) grid, the first attack in run order that broke the image there; null
   *  where every attack failed (robust at that ε). */
  brokenBy?: Array<AttackName | null>;
  brokenByL2?: Array<AttackName | null>;
  /** Square's queries per L∞ ε (the whole budget where it failed). */
  queries?: number[];
  /** An adversarial exists within largeEps (found at a grid ε, or by the extra large-ε run). */
  large?: boolean;
  /** The smallest L∞ ε at which an adversarial was found (null: none up to largeEps), the attack
   *  that found it, and the label and probability the model gave the adversarial image there. */
  minEps?: number | null;
  minEpsBy?: BestBy;
  advLabel?: number;
  advConf?: number;
  /** Present when the white-box attacks could not run: the ops without a gradient rule, or the
   *  error that stopped the gradient model. */
  whiteBox?: { ops: string[]; error?: string };
  /** The gradient was that of an int8 model's float shadow (straight-through rounding). */
  gradShadow?: boolean;
}

/** The L∞ attacks that can find the minimal ε (render re-runs it to recover the image). */
type BestBy = 'fgsm' | 'pgd' | 'square' | 'apgd-ce' | 'apgd-t';

interface Best {
  eps: number;
  by: BestBy;
  label: number;
  conf: number;
}

type GradState = { oracle: GradientModelLike; shadow: boolean } | { oracle?: undefined; blocked: { ops: string[]; error?: string } };

const NATURAL = { linf: [1 / 255, 2 / 255, 4 / 255, 8 / 255], l2: [0.25, 0.5, 1] };
const DIGITS = { linf: [0.1, 0.2, 0.3], l2: [1, 2, 3] };

/** "8/255", "0.03", 0.03 → a number in (0, 1]. */
function parseEps(v: unknown, name: string): number {
  let n = NaN;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const m = /^\s*([0-9.]+)\s*\/\s*([0-9.]+)\s*$/.exec(v);
    n = m ? Number(m[1]) / Number(m[2]) : Number(v);
  }
  if (!Number.isFinite(n) || n <= 0) throw new SkepticInputError(`probe parameter attack.${name} must list positive numbers (or 'k/255'), got ${JSON.stringify(v)}`);
  return n;
}

function epsListParam(v: unknown, name: string, max: number, noneOk = false): number[] | 'auto' {
  if (v === undefined || v === 'auto') return 'auto';
  // 'none': no grid for this norm (epsL2 only: the L∞ grid carries Square and the minimal ε)
  if (noneOk && (v === 'none' || (Array.isArray(v) && v.length === 0))) return [];
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > 30) {
    throw new SkepticInputError(`probe parameter attack.${name} must be 'auto' or a list of 1 to 30 ε values, got ${JSON.stringify(v)}`);
  }
  const out = [...new Set(list.map((x) => parseEps(x, name)))].sort((a, b) => a - b);
  if (out[out.length - 1] > max) throw new SkepticInputError(`probe parameter attack.${name}: ε above ${max} makes no sense in pixel units, got ${out[out.length - 1]}`);
  return out;
}

function attacksParam(v: unknown): AttackName[] {
  if (v === undefined) return [...LEGACY_ATTACKS];
  if (v === 'all') return [...ATTACKS];
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((a) => (ATTACKS as readonly string[]).includes(a as string))) {
    throw new SkepticInputError(`probe parameter attack.attacks must be 'all' or a list of ${ATTACKS.join(', ')}; got ${JSON.stringify(v)}`);
  }
  return ATTACKS.filter((a) => (list as string[]).includes(a));
}

function choiceParam<T extends string>(v: unknown, name: string, choices: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !choices.includes(v as T)) throw new SkepticInputError(`probe parameter attack.${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** Images attacked per audit by default: 100 for inputs up to 64×64 pixels (MNIST, CIFAR: well
 *  under a second each on two CPU cores at the defaults), 16 above (an ImageNet MobileNetV2 costs
 *  about a minute per image there, most of it Square's queries). */
export function autoMaxImages(model: LoadedModel): number {
  return model.info.height * model.info.width <= 64 * 64 ? 100 : 16;
}

/** ε in grey levels, for messages: 0.0039 → "1/255", 0.3 → "76.5/255". */
export function eps255(e: number): string {
  const g = e * 255;
  const s = Math.abs(g - Math.round(g)) < 1e-6 ? String(Math.round(g)) : g < 1 ? g.toFixed(2) : g.toFixed(1);
  return `${s}/255`;
}

/** The op types a GradientUnsupportedError names (an injected builder may throw its own, by name). */
function blockedOps(e: unknown): string[] | undefined {
  const err = e as { name?: string; unsupported?: unknown; ops?: unknown } | undefined;
  if (!(e instanceof GradientUnsupportedError) && err?.name !== 'GradientUnsupportedError') return undefined;
  for (const v of [err?.unsupported, err?.ops]) {
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return [...new Set(v as string[])].sort();
  }
  return [];
}

export function attackProbe(params: Record<string, unknown> = {}, deps: AttackDeps = {}): Probe<AttackRecord> {
  const build = deps.buildGradientModel ?? buildGradientModel;
  // A list of attacks is a custom mix; otherwise the AutoAttack protocol at standard budgets.
  const preset = choiceParam<Preset>(params.preset, 'preset', PRESETS, params.attacks !== undefined ? 'custom' : 'standard');
  if (preset !== 'custom' && params.attacks !== undefined) {
    throw new SkepticInputError(`probe parameter attack.attacks chooses a custom mix: use it with preset 'custom', not '${preset}'`);
  }
  const budgets = PRESET_BUDGETS[preset];
  const attacks = preset === 'custom' ? attacksParam(params.attacks) : budgets.attacks;
  const apgdSteps = numberParam(params, 'attack', 'apgdSteps', budgets.apgdSteps, 1, 10000);
  const restarts = numberParam(params, 'attack', 'restarts', budgets.restarts, 1, 100);
  const targets = numberParam(params, 'attack', 'targets', budgets.targets, 1, 999);
  const survivors = boolParam(params, 'attack', 'survivors', preset !== 'custom');
  const domainParam = choiceParam(params.domain, 'domain', ['auto', 'natural', 'digits'] as const, 'auto');
  const epsLinfParam = epsListParam(params.eps, 'eps', 1);
  const epsL2Param = epsListParam(params.epsL2, 'epsL2', 1000, true);
  const steps = numberParam(params, 'attack', 'steps', 20, 1, 10000);
  const stepFactor = numberParam(params, 'attack', 'stepFactor', 2.5, 0, 100);
  const loss = choiceParam<LossKind>(params.loss, 'loss', ['ce', 'margin'], 'ce');
  const bisectionSteps = numberParam(params, 'attack', 'bisectionSteps', 7, 0, 30);
  const queries = numberParam(params, 'attack', 'queries', budgets.queries, 1, 1e6);
  const pInit = numberParam(params, 'attack', 'pInit', 0.8, 0, 1);
  const largeEps = params.largeEps === 0 || params.largeEps === '0' ? 0 : params.largeEps === undefined ? 0.5 : parseEps(params.largeEps, 'largeEps');
  const maxImagesParam = params.maxImages === undefined || params.maxImages === 'auto' ? 'auto' : numberParam(params, 'attack', 'maxImages', 0, 0, 1e9);
  const gradBatch = numberParam(params, 'attack', 'gradBatch', 0, 0, 1e5);
  const invisibleEps = params.invisibleEps === undefined ? 1 / 255 : parseEps(params.invisibleEps, 'invisibleEps');
  const maskingTolerance = numberParam(params, 'attack', 'maskingTolerance', 0.05, 0, 1);
  const riseTolerance = numberParam(params, 'attack', 'riseTolerance', 0.02, 0, 1);
  const maxRobustAtLarge = numberParam(params, 'attack', 'maxRobustAtLarge', 0.1, 0, 1);
  const renderImages = numberParam(params, 'attack', 'renderImages', 16, 0, 1000);
  const whiteBoxWanted = attacks.some((a) => a !== 'square');

  const runParams = {
    preset,
    attacks,
    survivors,
    apgdSteps,
    restarts,
    targets,
    domain: domainParam,
    eps: epsLinfParam,
    epsL2: epsL2Param,
    steps,
    stepFactor,
    loss,
    bisectionSteps,
    queries,
    pInit,
    largeEps,
    maxImages: maxImagesParam,
  };

  /** The ε grids for this model. */
  function grids(model: LoadedModel): { domain: 'natural' | 'digits'; linf: number[]; l2: number[] } {
    const { channels, height, width } = model.info;
    const domain = domainParam !== 'auto' ? domainParam : channels === 1 && height <= 32 && width <= 32 ? 'digits' : 'natural';
    const d = domain === 'digits' ? DIGITS : NATURAL;
    return { domain, linf: epsLinfParam === 'auto' ? d.linf : epsLinfParam, l2: epsL2Param === 'auto' ? d.l2 : epsL2Param };
  }

  // The gradient model, built once per model and audit; summarize disposes of it.
  let gradFor: { model: LoadedModel; state: Promise<GradState> } | undefined;
  // Adversarial images rendered so far in this audit, by image index (the .npy holds them all).
  let rendered = new Map<number, Float32Array>();

  async function makeGrad(model: LoadedModel): Promise<GradState> {
    try {
      const oracle = await build(model, { device: model.device.used });
      return { oracle, shadow: oracle.coverage?.shadow === true };
    } catch (e) {
      // Any failure to build the gradient leaves the black-box attack; the report says why.
      return { blocked: { ops: blockedOps(e) ?? [], error: (e as Error)?.message ?? String(e) } };
    }
  }

  function gradient(model: LoadedModel): Promise<GradState> {
    if (!gradFor || gradFor.model !== model) gradFor = { model, state: makeGrad(model) };
    return gradFor.state;
  }

  async function release(): Promise<void> {
    const g = gradFor;
    gradFor = undefined;
    const s = g && (await g.state);
    if (s?.oracle) await s.oracle.dispose();
  }

  const rngs = (name: string, eps: number[], shas: string[], seed: number) => eps.map((e, i) => derivedRng(seed, `attack/${name}/${e}`, shas[i]));

  /** One attack at one ε per row: the adversarial candidates and the model's verdict on them.
   *  `apgd-*` attacks run on `norm`'s ball (the others know their norm by name). */
  async function attackRows(
    name: 'fgsm' | 'pgd' | 'pgd-l2' | 'square' | 'apgd-ce' | 'apgd-t',
    x: PixelBatch,
    labels: number[],
    eps: number[],
    shas: string[],
    ctx: { model: LoadedModel; seed: number; signal?: AbortSignal },
    oracle?: GradientOracle,
    norm: 'linf' | 'l2' = 'linf',
  ): Promise<{ adv: Float32Array; fooled: Uint8Array; pred: Int32Array; conf: Float32Array; queries?: Int32Array }> {
    const maxRows = gradBatch || undefined;
    if (name === 'square') {
      const r = await squareLinf((b) => ctx.model.predict(b), x, labels, { eps, queries, pInit, rngs: rngs('square', eps, shas, ctx.seed), signal: ctx.signal });
      return { adv: r.adv, fooled: r.success, pred: r.pred, conf: r.conf, queries: r.queries };
    }
    let adv: Float32Array;
    if (name === 'fgsm') {
      // Any rows, one ε each (render's single row); the grid run in runGroup shares one
      // gradient per image across all ε instead.
      const D = rowSize(x);
      adv = new Float32Array(x.n * D);
      const byEps = new Map<number, number[]>();
      eps.forEach((e, r) => byEps.set(e, [...(byEps.get(e) ?? []), r]));
      for (const [e, rows] of byEps) {
        const sub = gatherRows(x.data, rows, x);
        const out = await fgsm(oracle!, sub, rows.map((r) => labels[r]), [e], { loss, maxRows, signal: ctx.signal });
        rows.forEach((r, i) => adv.set(out.subarray(i * D, (i + 1) * D), r * D));
      }
    } else if (name === 'apgd-ce' || name === 'apgd-t') {
      const streams = rngs(`${name}-${norm}`, eps, shas, ctx.seed);
      const o = { norm, eps, steps: apgdSteps, restarts, rngs: streams, maxRows, signal: ctx.signal };
      const r = name === 'apgd-ce' ? await apgd(oracle!, x, labels, o) : await apgdTargeted(oracle!, x, labels, { ...o, targetCount: targets });
      adv = r.adv;
    } else {
      const pnorm = name === 'pgd' ? 'linf' : 'l2';
      const key = name === 'pgd' ? 'pgd-linf' : 'pgd-l2';
      const r = await pgd(oracle!, x, labels, { norm: pnorm, eps, steps, stepFactor, loss, rngs: rngs(key, eps, shas, ctx.seed), maxRows, signal: ctx.signal });
      adv = r.adv;
    }
    const v = await verdict((b) => ctx.model.predict(b), { ...x, data: adv }, labels);
    return { adv, ...v };
  }

  /** What an attack costs, in words, for progress messages. */
  function costOf(a: AttackName): string {
    if (a === 'apgd-ce') return `${apgdSteps} iterations${restarts > 1 ? ` × ${restarts} restarts` : ''}`;
    if (a === 'apgd-t') return `${targets} target${targets > 1 ? 's' : ''} × ${apgdSteps} iterations${restarts > 1 ? ` × ${restarts} restarts` : ''}`;
    if (a === 'square') return `up to ${queries} queries`;
    if (a === 'fgsm') return '1 step';
    return `${steps} steps`;
  }

  async function runGroup(images: ProbeImage[], ctx: ProbeContext): Promise<AttackRecord[]> {
    const { model } = ctx;
    const g = grids(model);
    const batch = toBatch(images.map((i) => i.pixels));
    const clean = await verdict((b) => model.predict(b), batch, images.map((i) => i.label ?? -1));
    const records: AttackRecord[] = images.map((img, i) => ({
      pred: clean.pred[i],
      conf: round(clean.conf[i]),
      status: img.label !== undefined && clean.pred[i] !== img.label ? 'wrong' : 'attacked',
    }));
    const idx: number[] = [];
    records.forEach((r, i) => {
      if (r.status === 'attacked') idx.push(i);
    });
    if (!idx.length) return records;

    const grad: GradState = whiteBoxWanted ? await gradient(model) : { blocked: { ops: [] } };
    const oracle = grad.oracle;
    const X = gatherRows(batch.data, idx, batch);
    const labels = idx.map((i) => images[i].label ?? clean.pred[i]);
    const shas = idx.map((i) => images[i].sha256);
    const n = idx.length;
    const best: Array<Best | undefined> = new Array(n).fill(undefined);
    const note = (i: number, eps: number, by: Best['by'], label: number, conf: number) => {
      if (!best[i] || eps < best[i]!.eps) best[i] = { eps, by, label, conf: round(conf) };
    };
    const masks: Record<MaskKey, number[]> = {
      fgsm: new Array<number>(n).fill(0), pgd: new Array<number>(n).fill(0), pgdL2: new Array<number>(n).fill(0), square: new Array<number>(n).fill(0),
      apgdCe: new Array<number>(n).fill(0), apgdT: new Array<number>(n).fill(0), apgdCeL2: new Array<number>(n).fill(0), apgdTL2: new Array<number>(n).fill(0),
    };
    const squareQueries = Array.from({ length: n }, () => new Array<number>(g.linf.length).fill(0));
    // Per norm, row i·E + k: the first attack that broke image i at ε_k (the chain's survivors).
    const brokenBy = { linf: new Array<AttackName | null>(n * g.linf.length).fill(null), l2: new Array<AttackName | null>(n * g.l2.length).fill(null) };
    // With two classes the targeted DLR loss is constant (its ratio has one difference over itself):
    // APGD-T needs at least three.
    const targetedOk = model.info.numClasses >= 3;

    /** Runs `name` at every ε of its norm's grid for every image (or, with `survivors`, for
     *  the image×ε pairs no earlier attack of the chain broke), as one batch. */
    const onGrid = async (name: AttackName, norm: 'linf' | 'l2') => {
      const grid = norm === 'linf' ? g.linf : g.l2;
      const E = grid.length;
      const rows = Array.from({ length: n * E }, (_, r) => r).filter((r) => !survivors || brokenBy[norm][r] === null);
      if (!rows.length) return;
      const imgs = new Set(rows.map((r) => Math.floor(r / E))).size;
      ctx.progress?.(`${ATTACK_TITLES[name]} ${norm === 'linf' ? 'L∞' : 'L2'} (${costOf(name)}): ${imgs} image${imgs > 1 ? 's' : ''}, ${rows.length} image×ε run${rows.length > 1 ? 's' : ''}`);
      const eps = rows.map((r) => grid[r % E]);
      const rowLabels = rows.map((r) => labels[Math.floor(r / E)]);
      let out: { fooled: Uint8Array; pred: Int32Array; conf: Float32Array; queries?: Int32Array };
      if (name === 'fgsm' && rows.length === n * E) {
        // One gradient per image serves every ε: n·E candidates, image-major.
        const adv = await fgsm(oracle!, X, labels, grid, { loss, maxRows: gradBatch || undefined, signal: ctx.signal });
        out = await verdict((b) => model.predict(b), { ...X, n: n * E, data: adv }, rowLabels);
      } else {
        const sub = gatherRows(X.data, rows.map((r) => Math.floor(r / E)), X);
        const run = name === 'pgd-linf' ? 'pgd' : name;
        out = await attackRows(run, sub, rowLabels, eps, rows.map((r) => shas[Math.floor(r / E)]), ctx, oracle, norm);
      }
      const mask = masks[(MASK_KEY[norm] as Record<string, MaskKey>)[name]];
      rows.forEach((r, p) => {
        const i = Math.floor(r / E);
        const k = r % E;
        if (out.fooled[p]) {
          mask[i] |= 1 << k;
          brokenBy[norm][r] ??= name;
          if (norm === 'linf' && name !== 'pgd-l2') note(i, grid[k], name === 'pgd-linf' ? 'pgd' : (name as BestBy), out.pred[p], out.conf[p]);
        }
        if (out.queries) squareQueries[i][k] = out.queries[p];
      });
    };

    const ran = new Set<AttackName>();
    const squareRan = attacks.includes('square') || !oracle;
    for (const norm of ['linf', 'l2'] as const) {
      for (const a of chainOf(norm, [...attacks, ...(squareRan ? (['square'] as const) : [])])) {
        if (a === 'square' ? false : !oracle) continue;
        if (a === 'apgd-t' && !targetedOk) continue;
        await onGrid(a, norm);
        ran.add(a);
      }
    }
    throwIfAborted(ctx.signal);

    // Images no grid ε broke: one more attack at largeEps (Carlini et al.'s "large ε" check).
    const large = best.map((b) => b !== undefined);
    const maxGrid = g.linf[g.linf.length - 1];
    const canPgd = oracle !== undefined && attacks.some((a) => a === 'pgd-linf' || a === 'apgd-ce' || a === 'apgd-t');
    const largeRan = largeEps > maxGrid && (canPgd || squareRan);
    if (largeRan) {
      const rest = best.map((b, i) => (b ? -1 : i)).filter((i) => i >= 0);
      if (rest.length) {
        const by = canPgd ? 'pgd' : 'square';
        ctx.progress?.(`${by === 'pgd' ? 'PGD' : 'Square'} at the large ε ${round(largeEps, 4)}: ${rest.length} image${rest.length > 1 ? 's' : ''}`);
        const sub = gatherRows(X.data, rest, X);
        const out = await attackRows(by, sub, rest.map((i) => labels[i]), rest.map(() => largeEps), rest.map((i) => shas[i]), ctx, oracle);
        rest.forEach((i, k) => {
          if (out.fooled[k]) {
            large[i] = true;
            note(i, largeEps, by, out.pred[k], out.conf[k]);
          }
        });
      }
    }

    // Minimal ε: bisect [grid ε below the smallest success (or 0), smallest success] with PGD L∞.
    if (canPgd && bisectionSteps > 0) {
      const below = (e: number) => [0, ...g.linf].filter((v) => v < e).pop() ?? 0;
      const lo = best.map((b) => (b ? below(b.eps) : NaN));
      const hi = best.map((b) => (b ? b.eps : NaN));
      const bisected = hi.filter(Number.isFinite).length;
      if (bisected) ctx.progress?.(`minimal ε: PGD bisection (${bisectionSteps} steps of ${steps}-step PGD) on ${bisected} image${bisected > 1 ? 's' : ''}`);
      const res = await bisectMinimalEps<{ label: number; conf: number }>(
        lo,
        hi,
        bisectionSteps,
        async (rows, eps) => {
          const sub = gatherRows(X.data, rows, X);
          const out = await attackRows('pgd', sub, rows.map((i) => labels[i]), eps, rows.map((i) => shas[i]), ctx, oracle);
          return rows.map((_, k) => ({ success: out.fooled[k] === 1, witness: { label: out.pred[k], conf: out.conf[k] } }));
        },
        ctx.signal,
      );
      res.witness.forEach((w, i) => {
        if (w) best[i] = { eps: res.hi[i], by: 'pgd', label: w.label, conf: round(w.conf) };
      });
    }

    idx.forEach((imgIndex, i) => {
      const rec = records[imgIndex];
      if (oracle) {
        for (const norm of ['linf', 'l2'] as const) {
          for (const a of chainOf(norm, attacks)) {
            if (a !== 'square' && ran.has(a)) rec[(MASK_KEY[norm] as Record<string, MaskKey>)[a]] = masks[(MASK_KEY[norm] as Record<string, MaskKey>)[a]][i];
          }
        }
        if ('shadow' in grad && grad.shadow) rec.gradShadow = true;
      } else if (whiteBoxWanted && 'blocked' in grad) {
        rec.whiteBox = grad.blocked;
      }
      if (squareRan) {
        rec.square = masks.square[i];
        rec.queries = squareQueries[i];
      }
      rec.brokenBy = g.linf.map((_, k) => brokenBy.linf[i * g.linf.length + k]);
      if (chainOf('l2', [...ran]).length) rec.brokenByL2 = g.l2.map((_, k) => brokenBy.l2[i * g.l2.length + k]);
      if (largeRan) rec.large = large[i];
      const b = best[i];
      rec.minEps = b ? b.eps : null;
      if (b) {
        rec.minEpsBy = b.by;
        rec.advLabel = b.label;
        rec.advConf = b.conf;
      }
    });
    return records;
  }

  return {
    id: 'attack',
    title: 'Adversarial examples',
    params: { ...runParams, gradBatch, invisibleEps, maskingTolerance, riseTolerance, maxRobustAtLarge, renderImages },
    cacheParams: runParams,
    margin: 0,
    rules: {
      'attack/invisible-flip': {
        name: 'InvisibleAdversarialFlip',
        text: 'A change of at most one grey level per pixel (L∞) changes the prediction.',
        help:
          'Szegedy et al. (ICLR 2014), Goodfellow et al. (ICLR 2015): a perturbation no person can see flips the label. ' +
          'Adversarial training (Madry et al., ICLR 2018) is the defence that holds up; look at the amplified perturbation.',
      },
      'attack/gradient-masking': {
        name: 'GradientMaskingSuspected',
        text: 'The black-box attack breaks more images than the white-box attacks at the same ε.',
        help:
          'Athalye, Carlini & Wagner (ICML 2018); Carlini et al. (2019): with a working gradient, white-box attacks are stronger ' +
          'than a score-based one. When they are not, the gradient is obfuscated (shattered, saturated, stochastic) and the ' +
          'white-box robust accuracy overstates the robustness. Trust the lower (black-box) number.',
      },
      'attack/accuracy-rises-with-eps': {
        name: 'RobustAccuracyRisesWithEps',
        text: 'Robust accuracy is higher at a larger ε than at a smaller one.',
        help:
          'Carlini et al. (2019), §5: a larger ball contains the smaller one, so a working attack never does worse with a larger ε. ' +
          'A rise means the attack is failing (too few steps, masked gradients); do not trust the robust accuracy.',
      },
      'attack/robust-at-large-eps': {
        name: 'RobustAtLargeEps',
        text: 'Robust accuracy stays well above zero at a very large ε.',
        help:
          'Carlini et al. (2019), §5: with a large enough budget any image can be changed into another class; an attack that ' +
          'does not get there is not working (gradient masking, a broken gradient). Do not trust the robust accuracy.',
      },
      'attack/white-box-unavailable': {
        name: 'WhiteBoxAttackUnavailable',
        text: 'The input gradient could not be built; only the black-box attack ran.',
        help:
          'Skeptic differentiates the model’s own ONNX graph; an op without a gradient rule stops it. The black-box Square Attack ' +
          '(Andriushchenko et al., ECCV 2020) ran instead: its robust accuracy is an upper bound, usually looser than PGD’s.',
      },
    },

    async run(images, ctx) {
      const records: AttackRecord[] = [];
      const g = grids(ctx.model);
      const rows = Math.max(g.linf.length, g.l2.length);
      // Views per image: the candidates (one per ε), their float64 steps and the gradients.
      for (const group of groupsWithin(images, 5 * rows)) {
        throwIfAborted(ctx.signal);
        records.push(...(await runGroup(group, ctx)));
      }
      return records;
    },

    budget(model) {
      const g = grids(model);
      const fmt = (e: number) => (g.domain === 'digits' ? String(round(e, 4)) : eps255(e));
      const where = [g.linf.length ? `L∞ ε ${g.linf.map(fmt).join(', ')}` : '', g.l2.length ? `L2 ε ${g.l2.join(', ')}` : ''].filter(Boolean).join(' and ');
      const max = maxImagesParam === 'auto' ? autoMaxImages(model) : maxImagesParam;
      const list = (norm: 'linf' | 'l2') => chainOf(norm, attacks).filter((a) => a !== 'apgd-t' || model.info.numClasses >= 3);
      const linf = list('linf');
      const l2 = list('l2');
      const describe = (chain: AttackName[]) => chain.map((a, j) => `${j ? (survivors ? 'then ' : '') : ''}${ATTACK_TITLES[a]} (${costOf(a)})${j && survivors ? ' on the survivors' : ''}`).join(survivors ? ', ' : '; ');
      const name = preset === 'custom' ? `custom mix${survivors ? ' (each attack on the survivors of the ones before)' : ' (each attack on every image)'}` : `AutoAttack ${preset}`;
      const extra = [
        bisectionSteps > 0 && (linf.some((a) => a !== 'square' && a !== 'fgsm')) ? `minimal ε by ${bisectionSteps} steps of PGD-${steps} bisection` : '',
        largeEps > 0 ? `one more attack at ε ${round(largeEps, 4)} on images no grid ε breaks` : '',
      ].filter(Boolean);
      return (
        `${name} on up to ${max} images (the correctly classified ones) at ${where || 'no ε'}: L∞ ${describe(linf) || '–'}` +
        (l2.length && g.l2.length ? `; L2 ${describe(l2)}` : '') +
        (extra.length ? `; ${extra.join('; ')}` : '') +
        '. Square replaces the white-box attacks where the input gradient cannot be built.'
      );
    },

    // The audit gives this probe only the first `maxImages` images in dataset order.
    imageLimit: (model: LoadedModel) => (maxImagesParam === 'auto' ? autoMaxImages(model) : maxImagesParam),

    async summarize(records, ctx) {
      rendered = new Map();
      await release();
      const g = grids(ctx.model);
      const E = g.linf.length;
      const labelled = records.filter((r) => ctx.images[r.image].label !== undefined);
      const nL = labelled.length;
      const attacked = records.filter((r) => r.status === 'attacked');
      const nA = attacked.length;
      const clean = nL ? labelled.filter((r) => r.status === 'attacked').length / nL : null;
      const has = (key: MaskKey) => attacked.some((r) => r[key] !== undefined);
      const bit = (m: number | undefined, k: number) => m !== undefined && (m & (1 << k)) !== 0;
      const keyOf = (norm: 'linf' | 'l2', a: AttackName) => (MASK_KEY[norm] as Record<string, MaskKey>)[a];
      // The attacks that ran on each norm's grid, in run order.
      const chains = {
        linf: chainOf('linf', ATTACKS).filter((a) => has(keyOf('linf', a))),
        l2: chainOf('l2', ATTACKS).filter((a) => has(keyOf('l2', a))),
      };
      const brokenAt = (r: AttackRecord, norm: 'linf' | 'l2', k: number, upTo = chains[norm].length) => chains[norm].slice(0, upTo).some((a) => bit(r[keyOf(norm, a)], k));
      const anyLinf = (r: AttackRecord, k: number) => brokenAt(r, 'linf', k);
      const whiteBoxLinf = chains.linf.filter((a) => a !== 'square');
      const brokenWhiteBox = (r: AttackRecord, k: number) => whiteBoxLinf.some((a) => bit(r[keyOf('linf', a)], k));
      const robust = (broken: (r: AttackRecord) => boolean) => (nL ? round(labelled.filter((r) => r.status === 'attacked' && !broken(r)).length / nL) : null);
      const rate = (broken: (r: AttackRecord) => boolean) => (nA ? round(attacked.filter(broken).length / nA) : null);
      // Per attack and ε: `measure` (robust accuracy or success rate) of "broken at ε index k".
      // With `survivors`, an attack saw only what the earlier ones left: its own curve would
      // overstate robustness, so it is null there (the protocol log has the running totals),
      // except for the first attack of each chain, which saw every image.
      const curves = (measure: typeof robust) => {
        const curve = (key: MaskKey, grid: number[], first: boolean) =>
          has(key) && (!survivors || first) ? grid.map((_, k) => measure((r) => bit(r[key], k))) : null;
        const first = (norm: 'linf' | 'l2', a: AttackName) => chains[norm][0] === a;
        return {
          fgsm: curve('fgsm', g.linf, first('linf', 'fgsm')),
          pgd: curve('pgd', g.linf, first('linf', 'pgd-linf')),
          apgdCe: curve('apgdCe', g.linf, first('linf', 'apgd-ce')),
          apgdT: curve('apgdT', g.linf, first('linf', 'apgd-t')),
          square: curve('square', g.linf, first('linf', 'square')),
          any: g.linf.map((_, k) => measure((r) => anyLinf(r, k))),
          pgdL2: curve('pgdL2', g.l2, first('l2', 'pgd-l2')),
          apgdCeL2: curve('apgdCeL2', g.l2, first('l2', 'apgd-ce')),
          apgdTL2: curve('apgdTL2', g.l2, first('l2', 'apgd-t')),
          anyL2: chains.l2.length ? g.l2.map((_, k) => measure((r) => brokenAt(r, 'l2', k))) : null,
        };
      };
      const robustAccuracy = curves(robust);
      const successRate = curves(rate);
      const mins = attacked.map((r) => (r.minEps === null || r.minEps === undefined ? Infinity : r.minEps)).sort((a, b) => a - b);
      const median = mins.length ? (mins.length % 2 ? mins[(mins.length - 1) / 2] : (mins[mins.length / 2 - 1] + mins[mins.length / 2]) / 2) : null;
      const squareRecs = attacked.filter((r) => r.queries);
      const meanQueries = squareRecs.length ? g.linf.map((_, k) => round(squareRecs.reduce((a, r) => a + r.queries![k], 0) / squareRecs.length, 2)) : null;
      const successful = (k: number) => squareRecs.filter((r) => bit(r.square, k));
      const meanQueriesSuccessful = squareRecs.length
        ? g.linf.map((_, k) => (successful(k).length ? round(successful(k).reduce((a, r) => a + r.queries![k], 0) / successful(k).length, 2) : null))
        : null;
      const blocked = records.find((r) => r.whiteBox)?.whiteBox;
      const robustAtLarge = largeEps > 0 && attacked.some((r) => r.large !== undefined) ? robust((r) => r.large === true) : null;
      // AutoAttack's log: robust accuracy after each attack, in the order they ran.
      const log = (norm: 'linf' | 'l2') => {
        const grid = norm === 'linf' ? g.linf : g.l2;
        return chains[norm].map((a, j) => ({ attack: a, robustAccuracy: grid.map((_, k) => robust((r) => brokenAt(r, norm, k, j + 1))) }));
      };
      const protocolName = preset === 'custom' ? [...new Set([...chains.linf, ...chains.l2])].map((a) => ATTACK_TITLES[a]).join(' + ') || 'none' : `AutoAttack ${preset}`;
      const protocol = {
        name: protocolName,
        preset,
        survivors,
        budgets: { apgdSteps, restarts, targets, queries, pgdSteps: steps },
        linf: log('linf'),
        l2: log('l2'),
      };

      const metrics = {
        count: records.length,
        labelled: nL,
        attacked: nA,
        alreadyWrong: records.filter((r) => r.status === 'wrong').length,
        notAttacked: ctx.images.length - records.length,
        maxImages: maxImagesParam === 'auto' ? autoMaxImages(ctx.model) : maxImagesParam,
        domain: g.domain,
        eps: { linf: g.linf, l2: g.l2 },
        eps255: g.linf.map((e) => round(e * 255, 4)),
        whiteBox: {
          available: !blocked && (whiteBoxLinf.length > 0 || chains.l2.length > 0),
          blockedBy: blocked ? blocked.ops : [],
          error: blocked?.error ?? null,
          shadow: records.some((r) => r.gradShadow),
        },
        cleanAccuracy: clean === null ? null : round(clean),
        protocol,
        robustAccuracy,
        successRate,
        largeEps: largeEps || null,
        robustAccuracyAtLargeEps: robustAtLarge,
        medianMinEps: median === null || !Number.isFinite(median) ? null : round(median, 8),
        medianMinEps255: median === null || !Number.isFinite(median) ? null : round(median * 255, 4),
        minEpsFound: mins.filter(Number.isFinite).length,
        meanQueries,
        meanQueriesSuccessful,
        queryBudget: queries,
      };

      const findings: FindingDraft[] = [];
      if (blocked) {
        findings.push({
          rule: 'attack/white-box-unavailable',
          severity: 'info',
          message:
            (blocked.ops.length
              ? `No gradient rule for ${blocked.ops.join(', ')}: the white-box attacks (${[...new Set(attacks.filter((a) => a !== 'square').map((a) => ATTACK_TITLES[a]))].join(', ')}) did not run`
              : `The input gradient could not be built (${blocked.error ?? 'unknown error'}): the white-box attacks did not run`) +
            '; robust accuracy comes from the black-box Square Attack alone (an upper bound).',
          metrics: { blockedBy: blocked.ops.join(', '), error: blocked.error ?? null },
        });
      }
      // Gradient masking: Square breaks images the white-box attacks missed. With `survivors`
      // Square only saw those, so every image it broke is one the white-box attacks missed.
      if (has('square') && whiteBoxLinf.length && nA) {
        let worst = { k: -1, gap: 0, sq: 0, wb: 0 };
        for (let k = 0; k < E; k++) {
          const sq = attacked.filter((r) => bit(r.square, k)).length;
          const wb = attacked.filter((r) => brokenWhiteBox(r, k)).length;
          const onlySquare = attacked.filter((r) => bit(r.square, k) && !brokenWhiteBox(r, k)).length;
          if ((survivors || sq > wb) && onlySquare / nA > maskingTolerance && onlySquare / nA > worst.gap) worst = { k, gap: onlySquare / nA, sq, wb };
        }
        if (worst.k >= 0) {
          const e = g.linf[worst.k];
          const wbNames = whiteBoxLinf.map((a) => ATTACK_TITLES[a]).join(', ');
          findings.push({
            rule: 'attack/gradient-masking',
            severity: 'warning',
            message:
              (survivors
                ? `Gradient masking suspected: at ε = ${eps255(e)} the black-box Square Attack breaks ${worst.sq} of the images the white-box attacks (${wbNames}) left robust (they broke ${worst.wb} of ${nA}); `
                : `Gradient masking suspected: at ε = ${eps255(e)} the black-box Square Attack breaks ${worst.sq} of ${nA} images, the white-box attacks (${wbNames}) only ${worst.wb}; `) +
              `${pct(worst.gap)} of the images fall to Square alone ` +
              `(tolerance ${pct(maskingTolerance)}). White-box robust accuracy overstates robustness (Athalye et al. 2018).`,
            metrics: { eps: e, squareBroken: worst.sq, whiteBoxBroken: worst.wb, onlySquare: round(worst.gap) },
          });
        }
      }
      // Robust accuracy rising with ε.
      const rises: string[] = [];
      const riseAt: Array<[string, number[], Array<number | null> | null]> = [
        ['PGD L∞', g.linf, robustAccuracy.pgd],
        ['PGD L2', g.l2, robustAccuracy.pgdL2],
        ['APGD-CE L∞', g.linf, robustAccuracy.apgdCe],
        ['APGD-CE L2', g.l2, robustAccuracy.apgdCeL2],
        ['Square', g.linf, robustAccuracy.square],
      ];
      if (survivors) riseAt.push([`${protocolName} L∞`, g.linf, robustAccuracy.any], [`${protocolName} L2`, g.l2, robustAccuracy.anyL2]);
      for (const [name, grid, acc] of riseAt) {
        if (!acc) continue;
        for (let k = 1; k < acc.length; k++) {
          if (acc[k] !== null && acc[k - 1] !== null && acc[k]! - acc[k - 1]! > riseTolerance) {
            const unit = name.endsWith('L2') ? (e: number) => String(e) : eps255;
            rises.push(`${name}: ${pct(acc[k - 1])} at ε = ${unit(grid[k - 1])} but ${pct(acc[k])} at ε = ${unit(grid[k])}`);
          }
        }
      }
      if (rises.length) {
        findings.push({
          rule: 'attack/accuracy-rises-with-eps',
          severity: 'warning',
          message: `Robust accuracy rises with ε (${rises.join('; ')}): the attack is failing, so robust accuracy is not trustworthy (Carlini et al. 2019).`,
          metrics: { rises: rises.length },
        });
      }
      if (robustAtLarge !== null && robustAtLarge > maxRobustAtLarge) {
        findings.push({
          rule: 'attack/robust-at-large-eps',
          severity: 'warning',
          message:
            `Robust accuracy is still ${pct(robustAtLarge)} at ε = ${largeEps} (${eps255(largeEps)}), where every pixel may move ` +
            `${largeEps >= 0.5 ? 'half the range or more' : 'by a large amount'} (threshold ${pct(maxRobustAtLarge)}): the attack is not working ` +
            `(masked or broken gradients), not the model robust (Carlini et al. 2019).`,
          metrics: { eps: largeEps, robustAccuracy: robustAtLarge },
        });
      }
      // Per image: an invisible change flips the label.
      for (const r of attacked) {
        if (r.minEps === null || r.minEps === undefined || r.minEps > invisibleEps + 1e-12) continue;
        findings.push({
          rule: 'attack/invisible-flip',
          severity: 'warning',
          image: r.image,
          message:
            `A change of at most ${eps255(r.minEps)} per pixel (L∞, ${r.minEpsBy === 'pgd' ? 'PGD' : r.minEpsBy === 'fgsm' ? 'FGSM' : r.minEpsBy === 'square' ? 'Square Attack' : ATTACK_TITLES[r.minEpsBy!]}) ` +
            `turns '${ctx.className(r.pred)}' (${pct(r.conf)}) into '${ctx.className(r.advLabel!)}' (${pct(r.advConf)}).`,
          metrics: { minEps: round(r.minEps, 8), minEps255: round(r.minEps * 255, 4), from: r.pred, to: r.advLabel!, confidence: r.advConf!, by: r.minEpsBy! },
        });
      }

      const render = attacked
        .filter((r) => r.minEps !== null && r.minEps !== undefined)
        .sort((a, b) => a.minEps! - b.minEps! || a.image - b.image)
        .slice(0, renderImages)
        .map((r) => r.image);

      // The protocol's final numbers when it chained attacks, else PGD's (or Square's) own.
      const chained = survivors || chains.linf.some((a) => a === 'apgd-ce' || a === 'apgd-t');
      const main = chained ? protocolName : robustAccuracy.pgd ? 'PGD' : 'Square';
      const mainCurve = chained && chains.linf.length ? robustAccuracy.any : (robustAccuracy.pgd ?? robustAccuracy.square);
      const headline =
        `clean ${pct(clean)}; robust (${main} L∞) ` +
        (mainCurve ? g.linf.map((e, k) => `${pct(mainCurve[k])} at ${g.domain === 'digits' ? e : eps255(e)}`).join(', ') : '–') +
        `; median minimal ε ${median === null ? '–' : Number.isFinite(median) ? (g.domain === 'digits' ? `${round(median, 4)}` : eps255(median)) : `> ${g.domain === 'digits' ? largeEps || g.linf[E - 1] : eps255(largeEps || g.linf[E - 1])}`}` +
        (blocked ? ' (black-box only)' : metrics.whiteBox.shadow ? ' (int8: gradients of the float shadow)' : '');
      return {
        headline,
        metrics,
        plots: {
          eps: { linf: g.linf, l2: g.l2 },
          robustAccuracy,
          cleanAccuracy: metrics.cleanAccuracy,
          minEps: mins.filter(Number.isFinite).map((e) => round(e, 8)),
        },
        findings,
        render,
      };
    },

    async render(images, records, ctx) {
      const files = new Map<number, string[]>();
      const todo = images.map((img, i) => ({ img, rec: records[i] })).filter((t) => t.rec.minEps !== null && t.rec.minEps !== undefined && t.rec.minEpsBy);
      if (!todo.length) return files;
      const needGrad = todo.some((t) => t.rec.minEpsBy !== 'square');
      const grad = needGrad ? await makeGrad(ctx.model) : undefined;
      try {
        for (const { img, rec } of todo) {
          throwIfAborted(ctx.signal);
          if (rec.minEpsBy !== 'square' && !grad?.oracle) continue;
          const x = toBatch([img.pixels]);
          const label = img.label ?? rec.pred;
          const by = rec.minEpsBy === 'pgd' ? 'pgd' : rec.minEpsBy!;
          const out = await attackRows(by, x, [label], [rec.minEps!], [img.sha256], ctx, grad?.oracle);
          const adv: PixelImage = { data: out.adv, channels: img.pixels.channels, height: img.pixels.height, width: img.pixels.width };
          const { height: H, width: W } = img.pixels;
          const scale = Math.max(1, Math.ceil(128 / Math.max(H, W)));
          const dir = `artifacts/attack/${img.image}`;
          const list = [
            await ctx.writePng(`${dir}-original.png`, img.pixels, { scale }),
            await ctx.writePng(`${dir}-adversarial.png`, adv, { scale }),
            await ctx.writePng(`${dir}-perturbation.png`, amplify(img.pixels.data, out.adv, adv), { scale }),
          ];
          rendered.set(img.image, out.adv);
          list.push(await writeBatch(ctx, rendered, img.pixels));
          files.set(img.image, list);
        }
      } finally {
        if (grad?.oracle) await grad.oracle.dispose();
      }
      return files;
    },
  };
}

/** Writes every adversarial rendered so far as one N×C×H×W .npy (rewritten as images arrive,
 *  in image order), and their image indices as a second .npy. */
async function writeBatch(
  ctx: { writeNpy(rel: string, data: Float32Array, shape: number[]): Promise<string> },
  rendered: Map<number, Float32Array>,
  like: PixelImage,
): Promise<string> {
  const keys = [...rendered.keys()].sort((a, b) => a - b);
  const D = like.channels * like.height * like.width;
  const data = new Float32Array(keys.length * D);
  keys.forEach((k, i) => data.set(rendered.get(k)!.subarray(0, D), i * D));
  await ctx.writeNpy('artifacts/attack/adversarial-images.npy', Float32Array.from(keys), [keys.length]);
  return ctx.writeNpy('artifacts/attack/adversarial.npy', data, [keys.length, like.channels, like.height, like.width]);
}

/** The perturbation, scaled to fill [0,1] around 0.5 (grey = unchanged). */
function amplify(orig: Float32Array, adv: Float32Array, like: PixelImage): PixelImage {
  let m = 0;
  for (let j = 0; j < orig.length; j++) m = Math.max(m, Math.abs(adv[j] - orig[j]));
  const data = new Float32Array(orig.length);
  for (let j = 0; j < orig.length; j++) data[j] = m > 0 ? 0.5 + (0.5 * (adv[j] - orig[j])) / m : 0.5;
  return { ...like, data };
}
