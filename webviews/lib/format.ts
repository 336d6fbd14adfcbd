/** Number formatting shared by the views. */

export function isNum(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** 0.9512 → "95.1%"; small fractions keep two decimals; "–" for missing values. */
export function pct(x: unknown): string {
  if (!isNum(x)) return '–';
  return `${(x * 100).toFixed(Math.abs(x) < 0.1 && x !== 0 ? 2 : 1)}%`;
}

/** A plain number with up to `digits` significant decimals. */
export function num(x: unknown, digits = 3): string {
  if (!isNum(x)) return x === null || x === undefined ? '–' : String(x);
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return String(Number(x.toFixed(digits)));
}

export function int(x: unknown): string {
  return isNum(x) ? Math.round(x).toLocaleString('en-US') : '–';
}

/** An ε in pixel units [0,1]: "2/255" when it is a whole number of 255ths, else a decimal. */
export function eps(x: unknown): string {
  if (!isNum(x)) return '–';
  const k = x * 255;
  if (x > 0 && x < 1 && Math.abs(k - Math.round(k)) < 1e-6 * Math.max(1, k) + 1e-9) return `${Math.round(k)}/255`;
  if (x > 0 && x < 1 && k < 64) return `${num(k, 2)}/255`;
  return num(x, 4);
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** "12.3 s", "450 ms". */
export function duration(ms: unknown): string {
  if (!isNum(ms)) return '–';
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10000 ? 0 : 1)} s` : `${Math.round(ms)} ms`;
}
