/**
 * Plots, drawn with uPlot (canvas). Canvas cannot read CSS variables, so the colours are resolved
 * from the theme's variables when a plot is built, and every plot is rebuilt when the theme
 * changes (VS Code swaps the body class and the --vscode-* variables; the standalone page follows
 * prefers-color-scheme). A plot is built when its box first gets a width and resized with it.
 *
 * Each plot is a <figure data-plot="id" data-series='["label", …]' data-points="n"> with a
 * caption, an aria-label, and (optionally) its numbers as a table under a <details>, for screen
 * readers and for the browser tests.
 */
import uPlot from 'uplot';
import { h } from './dom';

export interface Theme {
  dark: boolean;
  fg: string;
  muted: string;
  grid: string;
  bg: string;
  font: string;
  /** Series colours, distinct on this background. */
  palette(n: number): string[];
  ok: string;
  warn: string;
  err: string;
  ref: string;
}

let probe: HTMLElement | undefined;
/** A theme colour as canvas understands it: the variable resolved by the browser to rgb()/rgba(),
 *  whatever CSS colour syntax (color-mix, hsl, names) the theme used. */
function cssColor(name: string, fallback: string): string {
  if (!getComputedStyle(document.body).getPropertyValue(name).trim()) return fallback;
  if (!probe || !probe.isConnected) {
    probe = document.createElement('span');
    probe.hidden = true;
    document.body.appendChild(probe);
  }
  probe.style.color = '';
  probe.style.color = `var(${name})`;
  return getComputedStyle(probe).color || fallback;
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function luminance(color: string): number {
  const m = /rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)/.exec(color);
  if (!m) return 1;
  return (0.2126 * Number(m[1]) + 0.7152 * Number(m[2]) + 0.0722 * Number(m[3])) / 255;
}

export function readTheme(): Theme {
  const bg = getComputedStyle(document.body).backgroundColor;
  const dark = luminance(bg) < 0.5;
  const fg = cssColor('--sk-fg', dark ? '#ccc' : '#222');
  const family = cssVar('--sk-font', 'system-ui, sans-serif');
  const base = [1, 2, 3, 4, 5, 6].map((i) => cssColor(`--sk-c${i}`, ''));
  return {
    dark,
    fg,
    bg,
    muted: cssColor('--sk-muted', fg),
    grid: cssColor('--sk-grid', dark ? 'rgba(255,255,255,0.12)' : 'rgba(0,0,0,0.1)'),
    font: `12px ${family}`,
    ok: cssColor('--sk-ok', '#2e7d32'),
    warn: cssColor('--sk-warning', '#b26a00'),
    err: cssColor('--sk-error', '#c62828'),
    ref: cssColor('--sk-muted', fg),
    palette(n) {
      // The theme's six chart colours, five more that stay apart from them, then golden-angle hues
      // at a lightness that reads on the background.
      const extra = dark ? ['#4fd1e0', '#f08cc8', '#c49a6c', '#b8c94a', '#a0a4ab'] : ['#0e9aa7', '#c2409a', '#8a5a2b', '#7d8a00', '#6b7078'];
      const out = [...base.filter(Boolean), ...extra].slice(0, n);
      for (let i = out.length; i < n; i++) out.push(`hsl(${Math.round((i * 137.508 + 200) % 360)}, 60%, ${dark ? 68 : 40}%)`);
      return out;
    },
  };
}

export interface PlotBuild {
  opts: Omit<uPlot.Options, 'width' | 'height'>;
  data: uPlot.AlignedData;
}

export interface PlotDef {
  id: string;
  title: string;
  /** One sentence under the plot: what it shows and how to read it. */
  note?: string;
  height?: number;
  /** The labels of the data series (reference lines excluded), for data-series. */
  series: string[];
  points: number;
  /** What a screen reader hears instead of the canvas. */
  label: string;
  make(theme: Theme): PlotBuild;
  table?: { head: string[]; rows: Array<Array<string | number>> };
}

interface Mounted {
  box: HTMLElement;
  def: PlotDef;
  chart?: uPlot;
}

/** The plots on the page, so a theme change can rebuild them all. */
export class Plots {
  private mounted = new Set<Mounted>();
  private themed = new Map<HTMLElement, (t: Theme) => void>();
  private observer?: ResizeObserver;

  constructor() {
    if (typeof ResizeObserver === 'function') {
      this.observer = new ResizeObserver((entries) => {
        for (const e of entries) {
          const m = [...this.mounted].find((x) => x.box === e.target);
          if (m) this.fit(m);
        }
      });
    }
  }

  add(box: HTMLElement, def: PlotDef): void {
    const m: Mounted = { box, def };
    this.mounted.add(m);
    if (this.observer) this.observer.observe(box);
    else requestAnimationFrame(() => this.fit(m));
  }

  private fit(m: Mounted): void {
    if (!m.box.isConnected) {
      this.remove(m);
      return;
    }
    const width = Math.floor(m.box.clientWidth);
    if (width <= 0) return;
    const height = m.def.height ?? 260;
    if (!m.chart) {
      const { opts, data } = m.def.make(readTheme());
      // A legend that names the series; values on hover would show '--' until then.
      m.chart = new uPlot({ ...opts, legend: { live: false, ...opts.legend }, width, height }, data, m.box);
    } else if (Math.abs(m.chart.width - width) > 1) {
      m.chart.setSize({ width, height });
    }
  }

  private remove(m: Mounted): void {
    m.chart?.destroy();
    this.observer?.unobserve(m.box);
    this.mounted.delete(m);
  }

  /** Runs `apply` with the theme now (once `el` is in the document) and after each theme change. */
  onTheme(el: HTMLElement, apply: (t: Theme) => void): void {
    this.themed.set(el, apply);
    requestAnimationFrame(() => el.isConnected && apply(readTheme()));
  }

  /** Rebuilds every plot with the current theme's colours. */
  retheme(): void {
    const t = readTheme();
    for (const [el, apply] of [...this.themed]) {
      if (el.isConnected) apply(t);
      else this.themed.delete(el);
    }
    for (const m of [...this.mounted]) {
      m.chart?.destroy();
      m.chart = undefined;
      m.box.textContent = '';
      this.fit(m);
    }
  }

  destroyAll(): void {
    for (const m of [...this.mounted]) this.remove(m);
    this.themed.clear();
  }
}

/** A figure holding a plot (built when it gets a width). */
export function plot(plots: Plots, def: PlotDef): HTMLElement {
  const box = h('div', { class: 'plot-box', role: 'img', 'aria-label': def.label });
  const fig = h(
    'figure',
    { class: 'plot', 'data-plot': def.id, 'data-series': JSON.stringify(def.series), 'data-points': def.points },
    h('figcaption', null, def.title),
    box,
    def.note ? h('p', { class: 'note' }, def.note) : null,
    def.table ? dataTable(def.table) : null,
  );
  plots.add(box, def);
  return fig;
}

function dataTable(t: NonNullable<PlotDef['table']>): HTMLElement {
  return h(
    'details',
    { class: 'plot-data' },
    h('summary', null, 'Data'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data' },
        h('thead', null, h('tr', null, ...t.head.map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, ...t.rows.map((r) => h('tr', null, ...r.map((c) => h('td', null, typeof c === 'number' ? String(c) : c))))),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Building blocks for the views

export function axis(t: Theme, label: string, extra: Partial<uPlot.Axis> = {}): uPlot.Axis {
  return {
    label,
    stroke: t.fg,
    font: t.font,
    labelFont: `bold ${t.font}`,
    labelSize: 20,
    grid: { stroke: t.grid, width: 1 },
    ticks: { stroke: t.grid, width: 1, size: 4 },
    ...extra,
  };
}

export function line(label: string, stroke: string, extra: Partial<uPlot.Series> = {}): uPlot.Series {
  return { label, stroke, width: 1.75, points: { show: false }, spanGaps: true, ...extra };
}

/** A dashed reference line (not a data series). */
export function refLine(label: string, stroke: string, extra: Partial<uPlot.Series> = {}): uPlot.Series {
  return { label, stroke, width: 1, dash: [5, 4], points: { show: false }, ...extra };
}

export function bars(label: string, color: string, alpha = 0.65, size = 0.85): uPlot.Series {
  return { label, stroke: color, fill: withAlpha(color, alpha), width: 1, paths: uPlot.paths.bars!({ size: [size, 120] }), points: { show: false } };
}

/** A histogram outline over bin edges (x = edges; y has one value per bin, the last repeated). */
export function steps(label: string, color: string, alpha = 0.25): uPlot.Series {
  return { label, stroke: color, fill: withAlpha(color, alpha), width: 1.5, paths: uPlot.paths.stepped!({ align: 1 }), points: { show: false } };
}

/** The colour with an alpha, for any CSS colour canvas understands (via color-mix when not rgb/hex). */
export function withAlpha(color: string, alpha: number): string {
  const hex = /^#([0-9a-f]{6})$/i.exec(color);
  if (hex) {
    const n = parseInt(hex[1], 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }
  const rgb = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)/.exec(color);
  if (rgb) return `rgba(${rgb[1]}, ${rgb[2]}, ${rgb[3]}, ${alpha})`;
  const hsl = /^hsl\((.*)\)$/.exec(color);
  if (hsl) return `hsla(${hsl[1]}, ${alpha})`;
  return color;
}

/** Axis values for a fraction scale: "0%", "25%", … */
export const pctValues = (_u: uPlot, splits: number[]) => splits.map((v) => `${Math.round(v * 100)}%`);

/** A y or x scale fixed to [0, 1]. */
export const unitScale: uPlot.Scale = { auto: false, range: [0, 1] };

/** Categorical x axis: x = 0..n−1, labelled. */
export function categoryAxis(t: Theme, label: string, names: string[]): uPlot.Axis {
  return axis(t, label, {
    splits: () => names.map((_, i) => i),
    values: (_u, splits) => splits.map((v) => names[v] ?? ''),
    grid: { show: false },
  });
}

export const categoryScale = (n: number): uPlot.Scale => ({ time: false, auto: false, range: [-0.5, n - 0.5] });
