/** describeModel: the text `skeptic inspect MODEL` prints. */
import type { LoadedModel } from '../types';
import { describeFeatureTap } from './features';

const shapeStr = (s: (number | string)[]) => `[${s.join(',')}]`;
const nums = (xs: number[]) => `[${xs.map((x) => +x.toFixed(4)).join(', ')}]`;

/** Breaks at spaces so no line passes `width` (a word longer than that keeps its own line). */
function wrap(text: string, width: number, indent: string): string {
  if (!Number.isFinite(width)) return text;
  const words = text.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join(`\n${indent}`);
}

export interface DescribeOptions {
  /** Total line width to wrap long values at (a terminal's columns). Default: no wrapping, so a
   *  pipe, a log or a grep sees each value on one line whatever the length of its paths. */
  width?: number;
}

/** The human-readable text `skeptic inspect MODEL` prints: plain, aligned, no colours. */
export function describeModel(m: LoadedModel, options: DescribeOptions = {}): string {
  const i = m.info;
  const pad = 14;
  const indent = ' '.repeat(pad);
  // Below 40 columns for values wrapping only hurts; keep such lines whole.
  const valueWidth = options.width !== undefined && options.width - pad >= 40 ? options.width - pad : Infinity;
  const rows: [string, string][] = [];
  const add = (k: string, v: string) => rows.push([k, v]);
  add('Model', m.path);
  add('SHA-256', m.sha256);
  add('Producer', `${i.producer || 'unknown'}, opset ${i.opset}`);
  for (const t of i.inputs) add('Input', `${t.name}  ${t.type} ${shapeStr(t.shape)}`);
  add('Layout', `${i.layout}, ${i.channels === 1 ? 'grayscale' : 'RGB'} ${i.width}×${i.height}`);
  for (const t of i.outputs) add('Output', `${t.name}  ${t.type} ${shapeStr(t.shape)}`);
  add('Classes', String(i.numClasses));
  add('Output kind', `${i.outputKind} (${i.outputKindSource === 'graph' ? 'from the graph' : i.outputKindSource === 'numeric' ? 'detected numerically' : 'override'})`);
  const b = i.batch;
  add(
    'Batch',
    `declared ${b.declared}; ` +
      (b.patched
        ? 'rewritten to a symbolic batch (verified)'
        : b.effective === 'dynamic'
          ? 'dynamic'
          : b.effective === 1
            ? 'one image per run'
            : `fixed ${b.effective}, runs padded with zeros`),
  );
  add('Quantized', i.quantized ? 'yes' : 'no');
  add('Features', wrap(describeFeatureTap(m), valueWidth, indent));
  const ops = Object.entries(i.opHistogram).sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
  add('Ops', wrap(ops.map(([k, v]) => `${k} ${v}`).join(', '), valueWidth, indent));
  const p = m.preprocessing;
  const pre = [
    p.preset ? `preset ${p.preset}` : undefined,
    p.resizeShortSide ? `resize short side to ${p.resizeShortSide}, centre-crop ${i.width}×${i.height}` : `resize to ${i.width}×${i.height}`,
    `${p.interpolation ?? 'bilinear'} (${p.resampler === 'tensor' ? 'torchvision on tensors' : p.resampler === 'tensor-antialias' ? 'torchvision on tensors, antialiased' : 'PIL'})`,
    `scale ${+p.scale.toFixed(6)}`,
    `mean ${nums(p.mean)}`,
    `std ${nums(p.std)}`,
    i.channels === 1 ? 'gray' : p.channelOrder,
  ].filter(Boolean).join('; ');
  add('Preprocessing', wrap(`${pre} (source: ${p.source})`, valueWidth, indent));
  // Which file or option gave each value, for the values that did not come from a preset or default.
  for (const [k, v] of Object.entries(p.origins ?? {})) if (v !== 'default' && !v.startsWith('preset ')) add('  from', wrap(`${k}: ${v}`, valueWidth, indent));
  if (m.labels) {
    const first = m.labels.names.slice(0, 5).join(', ');
    add('Labels', wrap(`${m.labels.names.length} from ${m.labels.source}: ${first}${m.labels.names.length > 5 ? ', …' : ''}`, valueWidth, indent));
  } else add('Labels', 'none (class indices)');
  add('Device', `${m.device.used} (requested ${m.device.requested})${m.device.threads ? `, ${m.device.threads} CPU thread${m.device.threads > 1 ? 's' : ''}` : ''}`);
  for (const f of m.device.fallbacks) add('  fallback', wrap(f, valueWidth, indent));
  for (const [k, v] of Object.entries(i.metadata)) add('Metadata', wrap(`${k} = ${v.length > 120 ? `${v.slice(0, 120)}…` : v}`, valueWidth, indent));
  for (const w of m.warnings) add('Warning', wrap(w, valueWidth, indent));
  return rows.map(([k, v]) => `${k.padEnd(pad)}${v}`).join('\n') + '\n';
}
