/**
 * skeptic.json in the editor: validation with precise ranges (from jsonc-parser's tree), hover
 * text and completions, the entries' locations (for code lenses and for findings shown on an
 * entry), and the edit that adds a model/dataset pair.
 *
 * Validation: syntax errors; unknown keys; values of the wrong type; unknown probes and probe
 * parameters (against the engine's catalog); files that do not exist; and preprocessing that
 * does not fit the model's input (a 3-value mean for a grayscale model...), checked with the
 * engine's own completeOverride once the model's input is known.
 */
import { dirname, extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  applyEdits, findNodeAtLocation, findNodeAtOffset, getLocation, getNodePath, getNodeValue, modify, parseTree,
  printParseErrorCode, type Node, type ParseError,
} from 'jsonc-parser';
import {
  CompletionItemKind, DiagnosticSeverity, MarkupKind, type CompletionItem, type Diagnostic, type Hover, type Range,
  type TextEdit,
} from 'vscode-languageserver';
import { SkepticInputError } from '../engine/errors';
import { completeOverride, parseOverride, PRESETS, type PreprocessOverride } from '../engine/model/preprocess';
import type { Report } from '../engine/report/schema';
import type { ModelInput, ProbeCatalog } from '../protocol';
import { SEVERITY } from './diagnostics';

export const CONFIG_SOURCE = 'skeptic.json';

const DEVICES = ['auto', 'cpu', 'webgpu', 'cuda'];
const OUTPUT_KINDS = ['logits', 'probabilities', 'log-probabilities'];

export const TOP_KEYS: Record<string, string> = {
  $schema: 'The JSON schema of this file.',
  seed: 'Seed for every random choice (default 0): the same inputs and seed give the same report.',
  device: 'Execution provider: `auto` (CUDA, then WebGPU, then CPU), `cpu`, `webgpu` or `cuda`.',
  batchSize: 'Images per model run (default 32).',
  threads: 'CPU threads per ONNX Runtime session (default: the physical cores this process may use).',
  lanes: 'Lanes an audit\'s per-image work runs in: worker threads with their own model sessions and a share of the cores, merged into the same report as one lane. `auto` (default): one per 4 physical cores on the CPU provider, at most 4 and one per 16 images, as the free memory allows; one on a GPU or under 8 cores.',
  followSymlinks: 'Read dataset files whose symbolic links lead outside the dataset\'s folder (default false: each such item is an error finding).',
  probes: 'Parameters per probe, e.g. `{ "shift": { "k": 8 } }`.',
  models: 'The models of this workspace, each with the dataset it is audited on and its settings.',
  compare: '`skeptic compare`: `{ "tolerances": { "clean.accuracy": 0.01, "attack.robustAccuracy": 0.02 }, "alpha": 0.05 }`; a metric regresses when it is significantly worse by more than its tolerance.',
};

export const MODEL_KEYS: Record<string, string> = {
  path: 'The .onnx file, relative to this skeptic.json.',
  dataset: 'Class folders (`root/<class>/<image>`), a .csv/.jsonl manifest, or a folder of MNIST idx files, relative to this file.',
  preprocess: 'A preset (`imagenet`, `unit`, `signed`, `raw255`, `mnist`) or `{ "resizeShortSide", "interpolation", "resampler", "cropRounding", "scale", "mean", "std", "channelOrder", "preset" }`: tensor = (pixel·scale − mean) / std, pixels in [0,1].',
  labels: 'Class names, one per line, in the model\'s output order.',
  probes: 'The probes to run on this model (`clean` always runs).',
  limit: 'Audit a deterministic, class-stratified sample of this many images.',
  outputKind: 'What the model outputs: `logits`, `probabilities` or `log-probabilities` (default: detected).',
};

export const PREPROCESS_KEYS: Record<string, string> = {
  preset: 'Start from a preset; the other keys override it.',
  resizeShortSide: 'Resize the short side to this many pixels, then centre-crop to the model\'s input size.',
  interpolation: 'The resampling filter, computed as Pillow (and so torchvision) does: `bilinear` (default), `bicubic`, `lanczos`, `nearest`, `box` or `hamming`.',
  resampler: '`pil` (default): torchvision on PIL images; `tensor` or `tensor-antialias`: torchvision\'s resize on uint8 tensors (nearest, bilinear, bicubic), antialias off or on.',
  cropRounding: 'How the centre crop\'s offset (size − crop)/2 is rounded: `half-even` (torchvision, default) or `floor` (Hugging Face\'s center_crop).',
  scale: 'Pixels in [0,1] are multiplied by this first (255 for models trained on [0,255]).',
  mean: 'Per channel (1 value, or one per model channel), subtracted after scaling.',
  std: 'Per channel (1 value, or one per model channel), divided by after subtracting the mean.',
  channelOrder: '`rgb` or `bgr`: the channel order the model expects.',
};

/** What validation, hover and completion need to know beyond the text. */
export interface ConfigContext {
  /** The engine's probes; undefined until the worker has described them. */
  catalog?: ProbeCatalog;
  /** A model's input when known (trusted workspace, inspected); undefined otherwise. */
  modelInput(absPath: string): ModelInput | undefined;
  exists(absPath: string): boolean;
  /** The client validates structure with the JSON schema: leave key completion/hover to it. */
  schemaProvided: boolean;
  docsUrl: string;
}

export interface ConfigEntry {
  index: number;
  /** The entry's object. */
  range: Range;
  model?: string;
  dataset?: string;
  pathRange?: Range;
  datasetRange?: Range;
  preprocessRange?: Range;
}

/** Offsets ⇄ positions for one text. */
class Lines {
  private readonly starts: number[] = [0];
  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.starts.push(i + 1);
  }
  pos(offset: number) {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: offset - this.starts[lo] };
  }
  range(offset: number, length: number): Range {
    return { start: this.pos(offset), end: this.pos(offset + length) };
  }
  node(n: Node): Range {
    return this.range(n.offset, n.length);
  }
  offset(p: { line: number; character: number }): number {
    return (this.starts[p.line] ?? this.text.length) + p.character;
  }
}

function parse(text: string): { tree: Node | undefined; errors: ParseError[] } {
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  return { tree, errors };
}

const props = (n: Node | undefined): Node[] => (n?.type === 'object' ? (n.children ?? []) : []);
const keyOf = (p: Node) => String(p.children![0].value);
const valueOf = (p: Node) => p.children![1] as Node | undefined;
const isPosInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1;
const isNonNegInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const list = (xs: string[]) => xs.join(', ');

/** The model entries and where their parts are. */
export function configEntries(text: string, file: string): ConfigEntry[] {
  const { tree } = parse(text);
  const lines = new Lines(text);
  const models = tree && findNodeAtLocation(tree, ['models']);
  if (models?.type !== 'array') return [];
  const dir = dirname(file);
  return (models.children ?? []).map((m, index) => {
    const e: ConfigEntry = { index, range: lines.node(m) };
    for (const p of props(m)) {
      const v = valueOf(p);
      if (!v) continue;
      const k = keyOf(p);
      if (k === 'path' && v.type === 'string') {
        e.model = resolve(dir, String(v.value));
        e.pathRange = lines.node(v);
      } else if (k === 'dataset' && v.type === 'string') {
        e.dataset = resolve(dir, String(v.value));
        e.datasetRange = lines.node(v);
      } else if (k === 'preprocess') e.preprocessRange = lines.node(v);
    }
    return e;
  });
}

/** Every problem in a skeptic.json, at its range. */
export function validateConfig(text: string, file: string, ctx: ConfigContext): Diagnostic[] {
  const lines = new Lines(text);
  const out: Diagnostic[] = [];
  const href = `${ctx.docsUrl.replace(/#.*$/, '')}#skeptic-json`;
  const add = (range: Range, severity: DiagnosticSeverity, code: string, message: string) =>
    out.push({ range, severity, source: CONFIG_SOURCE, code, codeDescription: { href }, message });
  const err = (n: Node, code: string, message: string) => add(lines.node(n), DiagnosticSeverity.Error, code, message);
  const warn = (n: Node, code: string, message: string) => add(lines.node(n), DiagnosticSeverity.Warning, code, message);

  const { tree, errors } = parse(text);
  for (const e of errors) {
    add(lines.range(e.offset, Math.max(e.length, 1)), DiagnosticSeverity.Error, 'config/syntax', `syntax error: ${printParseErrorCode(e.error)}`);
  }
  if (!tree) return out;
  if (tree.type !== 'object') {
    err(tree, 'config/type', 'skeptic.json must hold a JSON object');
    return out;
  }
  const dir = dirname(file);
  const catalog = ctx.catalog;
  const probeIds = catalog?.probes.map((p) => p.id);

  const checkProbeName = (n: Node) => {
    if (n.type !== 'string') return err(n, 'config/type', 'a probe name must be a string');
    if (probeIds && !probeIds.includes(String(n.value))) {
      err(n, 'config/unknown-probe', `unknown probe '${n.value}'; known probes: ${list(probeIds)}`);
    }
  };
  const checkFile = (n: Node, what: string, ext?: string) => {
    if (n.type !== 'string') return err(n, 'config/type', `"${what}" must be a path (a string)`);
    const abs = resolve(dir, String(n.value));
    if (!ctx.exists(abs)) return err(n, 'config/missing-file', `${what} not found: ${abs}`);
    if (ext && extname(abs).toLowerCase() !== ext) warn(n, 'config/type', `${what} ${n.value} is not an ${ext} file`);
  };
  /** Calls fn for each property of `obj` with a value; unknown keys get a warning instead.
   *  Returns false when there was an unknown key. */
  const eachKnown = (obj: Node, known: Record<string, string>, where: string, fn: (k: string, v: Node) => void): boolean => {
    let ok = true;
    for (const p of props(obj)) {
      const k = keyOf(p);
      const v = valueOf(p);
      if (!(k in known)) {
        warn(p.children![0], 'config/unknown-key', `unknown key '${k}' in ${where} (known: ${list(Object.keys(known))})`);
        ok = false;
      } else if (v) fn(k, v);
    }
    return ok;
  };

  eachKnown(tree, TOP_KEYS, 'skeptic.json', (k, v) => {
    const value = getNodeValue(v);
    if (k === 'seed' && !isNonNegInt(value)) err(v, 'config/type', '"seed" must be a non-negative integer');
    else if (k === 'batchSize' && !isPosInt(value)) err(v, 'config/type', '"batchSize" must be a positive integer');
    else if (k === 'threads' && !isPosInt(value)) err(v, 'config/type', '"threads" must be a positive integer');
    else if (k === 'lanes' && value !== 'auto' && !isPosInt(value)) err(v, 'config/type', '"lanes" must be a positive integer or "auto"');
    else if (k === 'device' && !DEVICES.includes(value)) err(v, 'config/type', `"device" must be one of ${list(DEVICES)}`);
    else if (k === 'probes') validateProbeParams(v);
    else if (k === 'compare') validateCompare(v);
    else if (k === 'models') {
      if (v.type !== 'array') err(v, 'config/type', '"models" must be an array of { "path", "dataset", ... } entries');
      else for (const m of v.children ?? []) validateModel(m);
    }
  });
  return out;

  function validateCompare(v: Node) {
    if (v.type !== 'object') return err(v, 'config/type', '"compare" must be an object: { "tolerances": { "<metric>": number }, "alpha": number }');
    eachKnown(v, { tolerances: '', alpha: '' }, '"compare"', (k, c) => {
      const value = getNodeValue(c);
      if (k === 'alpha' && !(typeof value === 'number' && value > 0 && value < 1)) err(c, 'config/type', '"alpha" must be a number between 0 and 1');
      if (k === 'tolerances') {
        if (c.type !== 'object') return err(c, 'config/type', '"tolerances" must map metric names (or prefixes, or "*") to numbers');
        for (const t of props(c)) {
          const tv = valueOf(t);
          if (tv && !(tv.type === 'number' && Number(tv.value) >= 0)) err(tv, 'config/type', `the tolerance of '${keyOf(t)}' must be a non-negative number`);
        }
      }
    });
  }

  function validateProbeParams(v: Node) {
    if (v.type !== 'object') return err(v, 'config/type', '"probes" must be an object: { "<probe>": { "<parameter>": value } }');
    for (const p of props(v)) {
      const id = keyOf(p);
      const probe = catalog?.probes.find((x) => x.id === id);
      if (catalog && !probe) {
        err(p.children![0], 'config/unknown-probe', `unknown probe '${id}'; known probes: ${list(probeIds!)}`);
        continue;
      }
      const pv = valueOf(p);
      if (!pv) continue;
      if (pv.type !== 'object') {
        err(pv, 'config/type', `the parameters of '${id}' must be an object`);
        continue;
      }
      if (!probe) continue;
      for (const q of props(pv)) {
        const name = keyOf(q);
        if (!(name in probe.params)) {
          warn(q.children![0], 'config/unknown-key', `unknown parameter '${name}' of probe '${id}' (known: ${list(Object.keys(probe.params))})`);
          continue;
        }
        const qv = valueOf(q);
        const expected = probe.params[name];
        if (!qv || expected === null || expected === 'auto') continue;
        const got = getNodeValue(qv);
        const kind = (x: unknown) => (Array.isArray(x) ? 'array' : typeof x);
        if (kind(got) !== kind(expected)) {
          err(qv, 'config/type', `${id}.${name} must be ${kind(expected) === 'array' ? 'an array' : `a ${kind(expected)}`} (default ${JSON.stringify(expected)})`);
        }
      }
    }
  }

  function validateModel(m: Node) {
    if (m.type !== 'object') return err(m, 'config/type', 'a model entry must be an object with at least "path"');
    const byKey = new Map(props(m).map((p) => [keyOf(p), p]));
    const pathNode = byKey.get('path') && valueOf(byKey.get('path')!);
    if (!byKey.has('path')) err(m, 'config/missing-key', 'a model entry needs "path" (the .onnx file)');
    eachKnown(m, MODEL_KEYS, 'a model entry', (k, v) => {
      const value = getNodeValue(v);
      if (k === 'path') checkFile(v, 'model', '.onnx');
      else if (k === 'dataset') checkFile(v, 'dataset');
      else if (k === 'labels') checkFile(v, 'labels file');
      else if (k === 'limit' && !isPosInt(value)) err(v, 'config/type', '"limit" must be a positive integer');
      else if (k === 'outputKind' && !OUTPUT_KINDS.includes(value)) err(v, 'config/type', `"outputKind" must be one of ${list(OUTPUT_KINDS)}`);
      else if (k === 'probes') {
        if (v.type !== 'array') err(v, 'config/type', '"probes" must be an array of probe names');
        else for (const x of v.children ?? []) checkProbeName(x);
      } else if (k === 'preprocess') validatePreprocess(v, pathNode?.type === 'string' ? resolve(dir, String(pathNode.value)) : undefined);
    });
  }

  function validatePreprocess(v: Node, model: string | undefined) {
    if (v.type === 'string') {
      if (!PRESETS[String(v.value)]) return err(v, 'config/type', `unknown preset '${v.value}' (known: ${list(Object.keys(PRESETS))})`);
    } else if (v.type === 'object') {
      let presetOk = true;
      const keysOk = eachKnown(v, PREPROCESS_KEYS, '"preprocess"', (k, pv) => {
        if (k === 'preset' && !PRESETS[String(pv.value)]) {
          err(pv, 'config/type', `unknown preset '${pv.value}' (known: ${list(Object.keys(PRESETS))})`);
          presetOk = false;
        }
      });
      if (!keysOk || !presetOk) return;
    } else return err(v, 'config/type', '"preprocess" must be a preset name or an object');

    // Does it fit the model's input? The engine's own check, on the model as Skeptic reads it.
    const input = model && ctx.exists(model) ? ctx.modelInput(model) : undefined;
    if (!input || !model) return;
    try {
      const o = parseOverride(getNodeValue(v) as string | PreprocessOverride, 'preprocess');
      completeOverride(o, { file: model, channels: input.channels, height: input.height, width: input.width }, 'skeptic.json', 'preprocess');
    } catch (e) {
      if (!(e instanceof SkepticInputError)) throw e;
      const message = e.message.replace(/^preprocess: /, '');
      const key = /^(\w+) /.exec(message)?.[1];
      const at = (key && v.type === 'object' && props(v).find((p) => keyOf(p) === key)) || undefined;
      const where = at ? (valueOf(at) ?? at) : v;
      const shape = `${input.layout} ${input.channels}×${input.height}×${input.width}`;
      err(where, 'config/preprocess-mismatch', `preprocessing does not fit the model's input (${shape}): ${message}`);
    }
  }
}

/** Findings of the reports on the entries they belong to: model-level findings on the entry's
 *  "path" (preprocessing findings on "preprocess"), and a count of flagged images on "dataset". */
export function entryDiagnostics(
  text: string,
  file: string,
  reportFor: (model: string, dataset: string) => Report | undefined,
  docsUrl: string,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const e of configEntries(text, file)) {
    if (!e.model || !e.dataset || !e.pathRange) continue;
    const report = reportFor(pathToFileURL(e.model).href, pathToFileURL(e.dataset).href);
    if (!report) continue;
    const href = (probe: string) => `${docsUrl.replace(/#.*$/, '')}#probe-${probe}`;
    const perImage = new Map<string, number>();
    for (const f of report.findings) {
      if (f.subject.image !== undefined) {
        perImage.set(f.probe, (perImage.get(f.probe) ?? 0) + 1);
        continue;
      }
      const onPreprocess = f.rule === 'clean/near-chance' && e.preprocessRange;
      out.push({
        range: onPreprocess ? e.preprocessRange! : e.pathRange,
        severity: SEVERITY[f.severity],
        source: f.probe,
        code: f.rule,
        codeDescription: { href: href(f.probe) },
        message: `${f.message} [last audit on ${report.dataset.path.split(/[\\/]/).pop()}]`,
      });
    }
    if (perImage.size && e.datasetRange) {
      const parts = [...perImage].map(([probe, n]) => `${probe} ${n}`).join(', ');
      const total = [...perImage.values()].reduce((a, b) => a + b, 0);
      out.push({
        range: e.datasetRange,
        severity: DiagnosticSeverity.Information,
        source: 'skeptic',
        code: 'report/image-findings',
        codeDescription: { href: `${docsUrl.replace(/#.*$/, '')}#diagnostics` },
        message: `the last audit flagged ${total} image finding${total === 1 ? '' : 's'} in this dataset (${parts}); they are shown on the dataset's rows and files`,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hover

function probeHover(catalog: ProbeCatalog | undefined, id: string): string | undefined {
  const p = catalog?.probes.find((x) => x.id === id);
  if (!p) return undefined;
  const params = Object.entries(p.params).map(([k, v]) => `- \`${k}\`: ${JSON.stringify(v)}`).join('\n');
  return `**${p.title}** (\`${id}\`)\n\n${p.summary}\n\nParameters (defaults):\n${params}`;
}

export function configHover(text: string, file: string, pos: { line: number; character: number }, ctx: ConfigContext, describeReport?: (model: string, dataset?: string) => string | undefined): Hover | null {
  const lines = new Lines(text);
  const { tree } = parse(text);
  if (!tree) return null;
  const node = findNodeAtOffset(tree, lines.offset(pos));
  if (!node || node.type !== 'string') return null;
  const path = getNodePath(node);
  const isKey = node.parent?.type === 'property' && node.parent.children?.[0] === node;
  const value = String(node.value);
  let md: string | undefined;
  const [a, b, c, d] = path;
  if (isKey) {
    if (a === 'probes' && path.length === 2) md = probeHover(ctx.catalog, value);
    else if (a === 'probes' && path.length === 3) {
      const p = ctx.catalog?.probes.find((x) => x.id === b);
      if (p && value in p.params) md = `\`${b}.${value}\`: default ${JSON.stringify(p.params[value])}\n\n${p.summary}`;
    } else if (!ctx.schemaProvided) {
      if (path.length === 1) md = TOP_KEYS[value];
      else if (a === 'models' && path.length === 3) md = MODEL_KEYS[value];
      else if (a === 'models' && c === 'preprocess' && path.length === 4) md = PREPROCESS_KEYS[value];
    }
  } else if (a === 'models' && c === 'probes' && typeof d === 'number') md = probeHover(ctx.catalog, value);
  else if (a === 'models' && c === 'preprocess' && (path.length === 3 || d === 'preset') && PRESETS[value]) {
    md = `preset \`${value}\`: ${PRESETS[value].description}`;
  } else if (a === 'models' && (c === 'path' || c === 'dataset') && path.length === 3) {
    const abs = resolve(dirname(file), value);
    const parts: string[] = [];
    if (c === 'path') {
      const input = ctx.modelInput(abs);
      if (input) {
        parts.push(`**${value}**: input \`${input.input.name}\` ${input.input.type} [${input.input.shape.join(', ')}], fed as ${input.layout} ${input.channels}×${input.height}×${input.width}`);
        parts.push(`outputs: ${input.outputs.map((o) => `\`${o.name}\` [${o.shape.join(', ')}]`).join(', ')}`);
      }
      const rep = describeReport?.(pathToFileURL(abs).href, undefined);
      if (rep) parts.push(rep);
    } else {
      const entry = configEntries(text, file).find((e) => e.dataset === abs);
      const rep = entry?.model ? describeReport?.(pathToFileURL(entry.model).href, pathToFileURL(abs).href) : undefined;
      if (rep) parts.push(rep);
    }
    if (!ctx.exists(abs)) parts.push(`not found: ${abs}`);
    md = parts.join('\n\n') || undefined;
  }
  if (!md) return null;
  return { contents: { kind: MarkupKind.Markdown, value: md }, range: lines.node(node) };
}

// ---------------------------------------------------------------------------------------------
// Completion

export interface PathChoices {
  models: string[];
  datasets: string[];
}

export function configCompletion(text: string, file: string, pos: { line: number; character: number }, ctx: ConfigContext, paths: PathChoices): CompletionItem[] {
  const lines = new Lines(text);
  const offset = lines.offset(pos);
  const loc = getLocation(text, offset);
  const path = loc.path;
  const prev = loc.previousNode;
  // Replace the string under the cursor (with its quotes), or insert at the cursor. For a key,
  // jsonc-parser gives a 'property' node spanning the key's string.
  const replace =
    prev && (prev.type === 'string' || prev.type === 'property') && offset >= prev.offset && offset <= prev.offset + prev.length
      ? lines.node(prev)
      : lines.range(offset, 0);
  const item = (label: string, kind: CompletionItemKind, detail?: string, insert?: string, doc?: string): CompletionItem => {
    const edit: TextEdit = { range: replace, newText: insert ?? JSON.stringify(label) };
    const it: CompletionItem = { label, kind, textEdit: edit, filterText: JSON.stringify(label) };
    if (detail) it.detail = detail;
    if (doc) it.documentation = { kind: MarkupKind.Markdown, value: doc };
    return it;
  };
  const keyItems = (keys: Record<string, string>) =>
    Object.entries(keys).map(([k, doc]) => item(k, CompletionItemKind.Property, undefined, undefined, doc));
  const probes = ctx.catalog?.probes ?? [];
  const dir = dirname(file);
  const rel = (p: string) => {
    const r = relative(dir, p);
    return (isAbsolute(r) ? p : r).split(sep).join('/');
  };
  const [a, b, c] = path;

  if (loc.isAtPropertyKey) {
    if (a === 'probes' && path.length === 2) return probes.map((p) => item(p.id, CompletionItemKind.Module, p.title, undefined, p.summary));
    if (a === 'probes' && path.length === 3) {
      const p = probes.find((x) => x.id === b);
      return Object.entries(p?.params ?? {}).map(([k, v]) => item(k, CompletionItemKind.Property, `default ${JSON.stringify(v)}`));
    }
    if (ctx.schemaProvided) return [];
    if (path.length === 1) return keyItems(TOP_KEYS);
    if (a === 'models' && path.length === 3) return keyItems(MODEL_KEYS);
    if (a === 'models' && c === 'preprocess' && path.length === 4) return keyItems(PREPROCESS_KEYS);
    return [];
  }
  if (a === 'models' && c === 'probes' && path.length === 4) return probes.map((p) => item(p.id, CompletionItemKind.Value, p.title, undefined, p.summary));
  if (a === 'models' && path.length === 3 && c === 'path') return paths.models.map((m) => item(rel(m), CompletionItemKind.File));
  if (a === 'models' && path.length === 3 && c === 'dataset') return paths.datasets.map((m) => item(rel(m), CompletionItemKind.Folder));
  if (a === 'models' && c === 'preprocess' && (path.length === 3 || path[3] === 'preset')) {
    return Object.entries(PRESETS).map(([k, p]) => item(k, CompletionItemKind.EnumMember, p.description));
  }
  if (ctx.schemaProvided) return [];
  if (a === 'device' && path.length === 1) return DEVICES.map((d) => item(d, CompletionItemKind.EnumMember));
  if (a === 'models' && path.length === 3 && c === 'outputKind') return OUTPUT_KINDS.map((d) => item(d, CompletionItemKind.EnumMember));
  return [];
}

// ---------------------------------------------------------------------------------------------
// Adding a model/dataset pair

/** The text edits that add `{ path, dataset }` to skeptic.json's models (or set the dataset of
 *  the model's existing entry), keeping comments and formatting. Paths are written relative to
 *  the file, with forward slashes. */
export function addModelEntryEdits(text: string, file: string, model: string, dataset: string): TextEdit[] {
  const dir = dirname(file);
  const rel = (p: string) => relative(dir, p).split(sep).join('/');
  const fmt = { formattingOptions: { insertSpaces: true, tabSize: 2, eol: '\n' } };
  const existing = configEntries(text, file).find((e) => e.model === model);
  const edits = existing
    ? modify(text, ['models', existing.index, 'dataset'], rel(dataset), fmt)
    : modify(text.trim() ? text : '{}', ['models', -1], { path: rel(model), dataset: rel(dataset) }, { ...fmt, isArrayInsertion: true });
  if (text.trim()) {
    const lines = new Lines(text);
    return edits.map((e) => ({ range: lines.range(e.offset, e.length), newText: e.content }));
  }
  return [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, newText: applyEdits('{}', edits) + '\n' }];
}
