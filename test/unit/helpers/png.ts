/** Artifact PNGs against the bytes a reference image gives (image/files.ts toBytes). */
import sharp from 'sharp';

/** How many of a PNG's values differ from `want` (HWC bytes), and by how many levels at most. */
export async function pngAgainst(file: string, want: Uint8Array): Promise<{ off: number; worst: number }> {
  const png = await sharp(file).raw().toBuffer();
  if (png.length !== want.length) throw new RangeError(`${file}: ${png.length} values, ${want.length} expected`);
  let off = 0;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(png[i] - want[i]);
    if (d) off++;
    worst = Math.max(worst, d);
  }
  return { off, worst };
}
