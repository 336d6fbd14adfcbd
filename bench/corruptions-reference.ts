/**
 * Recipe: Skeptic's corruptions (image/corrupt.ts, image/imagenet-c.ts, image/frost.ts) against
 * bethgelab/imagecorruptions (the pip package that re-implements Hendrycks & Dietterich's
 * ImageNet-C code), run with Debian's Python on the same 224×224 centre crops of fixture
 * ImageNet images at every severity (bench/corruptions_reference.py prints the table).
 *
 *   git clone https://github.com/bethgelab/imagecorruptions /tmp/imagecorruptions   (or any checkout)
 *   git clone https://github.com/hendrycks/robustness /tmp/robustness              (for elastic_transform)
 *   apt-get install -y python3-skimage python3-opencv python3-numba python3-scipy
 *   IMAGECORRUPTIONS=/tmp/imagecorruptions ROBUSTNESS=/tmp/robustness \
 *     node --import tsx bench/corruptions-reference.ts [N_IMAGES] [NAMES]
 *
 * Elastic transform follows make_imagenet_c.py (mCE's AlexNet baseline was measured on it), which
 * imagecorruptions rewrote; with ROBUSTNESS set it is compared against that file's function.
 *
 * Skeptic's views equal these JS functions to float32 rounding (test/unit/views.test.ts), so this
 * compares the views too. Where nothing is drawn at random (defocus, zoom and Gaussian blur,
 * pixelate, brightness, contrast, saturate, JPEG) the mean absolute difference should be about 0
 * (pixelate: the reference's 8-bit rounding, ≈0.001; also compared with Pillow on float planes);
 * where the reference draws (noise, glass, motion, snow, frost, fog, elastic, spatter) the draws differ
 * (numpy's generator against ours), so compare the statistics of the change from the clean image.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { CORRUPTIONS, EXTRA_CORRUPTIONS, corrupt, isCorruption, type CorruptionName } from '../server/engine/image/corrupt';
import { npyBytes } from '../server/engine/image/files';
import { derivedRng } from '../server/engine/random';

const FIXTURES = resolve(__dirname, '../../shared/fixtures');

async function main(): Promise<void> {
  const pkg = process.env.IMAGECORRUPTIONS;
  if (!pkg) throw new Error('set IMAGECORRUPTIONS to a checkout of github.com/bethgelab/imagecorruptions');
  const n = Number(process.argv[2] ?? 4);
  const names = (process.argv[3]?.split(',') ?? [...CORRUPTIONS, ...EXTRA_CORRUPTIONS]).filter(isCorruption) as CorruptionName[];
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-corrupt-ref-'));
  const folder = join(FIXTURES, 'imagenet_samples/images');
  const files = readdirSync(folder).sort().slice(0, n);
  for (let i = 0; i < files.length; i++) {
    // short side to 256, centre 224×224, 8-bit RGB: the same bytes on both sides
    const { data } = await sharp(join(folder, files[i])).removeAlpha().resize(256, 256, { fit: 'outside' }).resize(224, 224, { fit: 'cover', position: 'centre' })
      .raw().toBuffer({ resolveWithObject: true });
    await sharp(data, { raw: { width: 224, height: 224, channels: 3 } }).png().toFile(join(dir, `clean_${i}.png`));
    const px = new Float32Array(3 * 224 * 224);
    for (let p = 0; p < 224 * 224; p++) for (let c = 0; c < 3; c++) px[c * 224 * 224 + p] = data[p * 3 + c] / 255;
    const img = { data: px, channels: 3 as const, height: 224, width: 224 };
    for (const name of names) {
      for (let s = 1; s <= 5; s++) {
        const out = await corrupt(img, name, s, derivedRng(0, `corruptions/${name}/${s}`, files[i]));
        writeFileSync(join(dir, `ours_${i}_${name}_${s}.npy`), npyBytes(out.data, [3, 224, 224]));
      }
    }
  }
  process.stdout.write(`${files.length} images (${files.join(', ')}), work folder ${dir}\n`);
  const robustness = process.env.ROBUSTNESS ? [process.env.ROBUSTNESS] : [];
  execFileSync('/usr/bin/python3', [join(__dirname, 'corruptions_reference.py'), dir, pkg, String(files.length), names.join(','), ...robustness], { stdio: 'inherit' });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
