/**
 * Counts the typed arrays JavaScript creates (4 KiB and up), by the two call sites above the
 * constructor, and prints the top 15 and the total when the process exits. A diagnostic for
 * allocation churn: every new ArrayBuffer is zeroed and faulted in, and V8 starts a full
 * collection for every ~64 MB of them (bench/README.md, eighth pass). Arrays made by native code
 * (ONNX Runtime's outputs, sharp's buffers) are not seen. Slows what it watches; load it first:
 *
 *   SKEPTIC_VIEW_WORKERS=0 node --import ./bench/typed-array-allocations.mjs bin/skeptic.js audit …
 *
 * (SKEPTIC_VIEW_WORKERS=0: the corruption views' CPU part in this thread, where it is counted.)
 */
const counts = new Map();
const site = () =>
  new Error().stack
    .split('\n')
    .slice(3, 5)
    .map((l) => l.trim().replace(/^at /, '').replace(/\(.*\/(.*?:\d+):\d+\)/, '$1'))
    .join(' < ');
for (const name of ['Float32Array', 'Float64Array', 'Int32Array', 'Uint8Array', 'BigInt64Array']) {
  globalThis[name] = new Proxy(globalThis[name], {
    construct(target, args, newTarget) {
      const a = Reflect.construct(target, args, newTarget);
      if (typeof args[0] === 'number' && a.byteLength >= 4096) {
        const k = `${name} ${site()}`;
        const c = counts.get(k) ?? [0, 0];
        c[0]++;
        c[1] += a.byteLength;
        counts.set(k, c);
      }
      return a;
    },
  });
}
process.on('exit', () => {
  let total = 0;
  for (const [, c] of counts) total += c[1];
  console.error(`typed arrays of 4 KiB and up: ${(total / 1e6).toFixed(0)} MB; by call site (count, MB):`);
  for (const [k, c] of [...counts].sort((a, b) => b[1][1] - a[1][1]).slice(0, 15)) console.error(String(c[0]).padStart(7), (c[1] / 1e6).toFixed(1).padStart(8), k);
});
