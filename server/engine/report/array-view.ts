/**
 * A read-only array whose elements are made when they are read: the compact tables (the image
 * table, probe records, a manifest's listing) hand these out where readers expect arrays. It
 * indexes, iterates, maps, filters and serialises like an array (JSON.stringify,
 * assert.deepEqual); writes are refused (they would change nothing).
 */

/** An index property key ("0", "17"), as a number; undefined for any other key. */
function indexKey(key: string | symbol, n: number): number | undefined {
  if (typeof key !== 'string' || key === '' || key.length > 15) return undefined;
  const c = key.charCodeAt(0);
  if (c < 48 || c > 57) return undefined;
  const i = Number(key);
  return Number.isInteger(i) && i >= 0 && i < n && String(i) === key ? i : undefined;
}

export function viewOf<T>(length: () => number, get: (i: number) => T): T[] {
  const target: T[] = [];
  return new Proxy(target, {
    get(t, key, receiver) {
      if (key === 'length') return length();
      const i = indexKey(key, length());
      if (i !== undefined) return get(i);
      return Reflect.get(t, key, receiver);
    },
    has(t, key) {
      return indexKey(key, length()) !== undefined || Reflect.has(t, key);
    },
    ownKeys() {
      const keys: string[] = [];
      for (let i = 0, n = length(); i < n; i++) keys.push(String(i));
      keys.push('length');
      return keys;
    },
    getOwnPropertyDescriptor(t, key) {
      if (key === 'length') return { value: length(), writable: true, enumerable: false, configurable: false };
      const i = indexKey(key, length());
      if (i !== undefined) return { value: get(i), writable: false, enumerable: true, configurable: true };
      return Reflect.getOwnPropertyDescriptor(t, key);
    },
    set() {
      return false;
    },
    defineProperty() {
      return false;
    },
    deleteProperty() {
      return false;
    },
  });
}
