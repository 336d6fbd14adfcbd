/**
 * A paged gallery: only the current page's cards (and their <img loading="lazy">) are in the
 * document, so a gallery of thousands of images costs one page. Keyboard: the cards form one tab
 * stop (roving tabindex); arrow keys move between cards (up/down by a row), crossing into the
 * previous or next page at the edges; PageUp/PageDown change page; Home/End go to the first/last
 * card of the page; Enter or Space on a card runs its action (reveal in the editor) when it has one.
 *
 * <div class="gallery" data-gallery="id" data-count="n" data-page="p" data-pages="P">
 */
import { h, clear } from './dom';

export interface GalleryOptions<T> {
  id: string;
  /** Accessible name of the card list. */
  label: string;
  items: T[];
  pageSize?: number;
  /** 'grid': small cards in columns; 'rows': one wide card per row. */
  layout?: 'grid' | 'rows';
  card(item: T, index: number): HTMLElement;
  /** What Enter/Space (or a click) on a card does, if anything. */
  activate?(item: T, index: number): void;
  /** Shown instead of the list when there are no items. */
  empty?: string;
  /** Extra controls (filters) shown in the bar. */
  controls?: HTMLElement[];
}

export interface Gallery<T> {
  el: HTMLElement;
  setItems(items: T[]): void;
  goTo(page: number, focus?: 'first' | 'last' | number): void;
}

export function gallery<T>(o: GalleryOptions<T>): Gallery<T> {
  const pageSize = Math.max(1, o.pageSize ?? 24);
  let items = o.items;
  let page = 0;
  let active = 0; // index in the page of the card that holds the tab stop

  const status = h('span', { class: 'gallery-status', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'btn', 'aria-label': `Previous page of ${o.label}` }, '‹ Prev');
  const next = h('button', { type: 'button', class: 'btn', 'aria-label': `Next page of ${o.label}` }, 'Next ›');
  const pageInput = h('input', { type: 'number', min: 1, value: 1, class: 'page-input', 'aria-label': `Page of ${o.label}` });
  const pager = h('span', { class: 'pager' }, prev, h('label', null, 'Page ', pageInput), next);
  const list = h('ul', { class: `gallery-list ${o.layout === 'rows' ? 'rows' : 'grid'}`, 'aria-label': o.label });
  const emptyNote = h('p', { class: 'empty' }, o.empty ?? 'Nothing to show.');
  const el = h('div', { class: 'gallery', 'data-gallery': o.id }, h('div', { class: 'gallery-bar' }, ...(o.controls ?? []), status, pager), list, emptyNote);

  const pages = () => Math.max(1, Math.ceil(items.length / pageSize));

  function cards(): HTMLElement[] {
    return [...list.children] as HTMLElement[];
  }

  function render(focus?: 'first' | 'last' | number): void {
    clear(list);
    const start = page * pageSize;
    const slice = items.slice(start, start + pageSize);
    slice.forEach((item, k) => {
      const c = o.card(item, start + k);
      c.classList.add('card');
      c.setAttribute('tabindex', '-1');
      c.dataset.index = String(start + k);
      if (o.activate) c.classList.add('actionable');
      const li = h('li', { class: 'cell' }, c);
      list.appendChild(li);
    });
    const n = slice.length;
    if (focus === 'first') active = 0;
    else if (focus === 'last') active = n - 1;
    else if (typeof focus === 'number') active = focus;
    active = Math.min(Math.max(0, active), Math.max(0, n - 1));
    const cs = cardEls();
    rove(cs);
    if (focus !== undefined) cs[active]?.focus();

    const P = pages();
    el.dataset.count = String(items.length);
    el.dataset.page = String(page + 1);
    el.dataset.pages = String(P);
    status.textContent = items.length
      ? `${(start + 1).toLocaleString('en-US')}–${(start + n).toLocaleString('en-US')} of ${items.length.toLocaleString('en-US')}`
      : '';
    pageInput.value = String(page + 1);
    pageInput.max = String(P);
    prev.disabled = page === 0;
    next.disabled = page >= P - 1;
    pager.hidden = P <= 1;
    list.hidden = items.length === 0;
    emptyNote.hidden = items.length > 0;
  }

  function cardEls(): HTMLElement[] {
    return cards().map((li) => li.firstElementChild as HTMLElement);
  }

  function goTo(p: number, focus?: 'first' | 'last' | number): void {
    page = Math.min(Math.max(0, p), pages() - 1);
    render(focus);
  }

  function move(to: number): void {
    const cs = cardEls();
    if (to < 0) {
      if (page > 0) goTo(page - 1, 'last');
      return;
    }
    if (to >= cs.length) {
      if (page < pages() - 1) goTo(page + 1, 'first');
      return;
    }
    active = to;
    rove(cs);
    cs[active].focus();
  }

  /** One tab stop: the active card has tabindex 0, every other card −1. */
  function rove(cs = cardEls()): void {
    cs.forEach((c, k) => c.setAttribute('tabindex', k === active ? '0' : '-1'));
  }

  /** Cards per row, from their layout (the grid reflows with the width). */
  function columns(): number {
    const cs = cardEls();
    if (cs.length < 2) return 1;
    const top = cs[0].getBoundingClientRect().top;
    let n = 0;
    for (const c of cs) {
      if (Math.abs(c.getBoundingClientRect().top - top) > 2) break;
      n++;
    }
    return Math.max(1, n);
  }

  list.addEventListener('keydown', (e) => {
    const card = (e.target as HTMLElement).closest('.card') as HTMLElement | null;
    if (!card) return;
    const cs = cardEls();
    const i = cs.indexOf(card);
    if (i < 0) return;
    active = i;
    let handled = true;
    switch (e.key) {
      case 'ArrowRight':
        move(i + 1);
        break;
      case 'ArrowLeft':
        move(i - 1);
        break;
      case 'ArrowDown': {
        const c = columns();
        if (i + c < cs.length) move(i + c);
        else if (page < pages() - 1) goTo(page + 1, Math.min(i % c, pageSize - 1));
        break;
      }
      case 'ArrowUp': {
        const c = columns();
        if (i - c >= 0) move(i - c);
        else if (page > 0) {
          const prevCount = pageSize;
          const col = i % c;
          goTo(page - 1, prevCount - c + col);
        }
        break;
      }
      case 'Home':
        move(0);
        break;
      case 'End':
        move(cs.length - 1);
        break;
      case 'PageDown':
        if (page < pages() - 1) goTo(page + 1, 'first');
        break;
      case 'PageUp':
        if (page > 0) goTo(page - 1, 'first');
        break;
      case 'Enter':
      case ' ':
        if (o.activate) o.activate(items[page * pageSize + i], page * pageSize + i);
        else handled = false;
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  });
  // A card focused by mouse or script becomes the tab stop.
  list.addEventListener('focusin', (e) => {
    const card = (e.target as HTMLElement).closest('.card') as HTMLElement | null;
    const i = card ? cardEls().indexOf(card) : -1;
    if (i >= 0 && i !== active) {
      active = i;
      rove();
    }
  });
  list.addEventListener('click', (e) => {
    const card = (e.target as HTMLElement).closest('.card') as HTMLElement | null;
    if (!card) return;
    const i = cardEls().indexOf(card);
    if (i < 0) return;
    move(i);
    if (o.activate) o.activate(items[page * pageSize + i], page * pageSize + i);
  });
  prev.addEventListener('click', () => goTo(page - 1));
  next.addEventListener('click', () => goTo(page + 1));
  pageInput.addEventListener('change', () => {
    const p = Number(pageInput.value);
    if (Number.isFinite(p)) goTo(Math.round(p) - 1);
  });

  render();
  return {
    el,
    setItems(xs) {
      items = xs;
      page = 0;
      active = 0;
      render();
    },
    goTo,
  };
}
