/**
 * A tiny element builder. Every string from the report goes in as text (textContent), never as
 * markup, so a label or message cannot inject HTML. Inline styles are set through the CSSOM
 * (el.style), which the Content-Security-Policy allows; style="" attributes would not be.
 */
export type Child = Node | string | number | null | undefined | false;
export type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Array<Child | Child[]>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.className = String(v);
    else if (k === 'style') throw new Error('use el.style, not a style attribute (CSP)');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Array<Child | Child[]>): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Node): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

let seq = 0;
/** A document-unique id with a readable prefix. */
export function uid(prefix: string): string {
  return `${prefix}-${++seq}`;
}

/** A <select> with a label; calls onChange with the chosen value. */
export function select(label: string, options: Array<[value: string, text: string]>, value: string, onChange: (v: string) => void): HTMLElement {
  const id = uid('sel');
  const s = h('select', { id }, ...options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)));
  s.addEventListener('change', () => onChange(s.value));
  return h('span', { class: 'control' }, h('label', { for: id }, label), s);
}

/** A checkbox with a label. */
export function checkbox(label: string, checked: boolean, onChange: (v: boolean) => void): HTMLElement {
  const id = uid('chk');
  const c = h('input', { id, type: 'checkbox', checked });
  c.addEventListener('change', () => onChange(c.checked));
  return h('span', { class: 'control' }, c, h('label', { for: id }, label));
}
