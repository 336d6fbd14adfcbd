/**
 * MNIST-style IDX datasets: an idx3 images file (uint8, N×rows×cols) and an idx1 labels file
 * (uint8, N), each optionally gzipped, given as the folder that holds them (or the images file).
 *
 * Listing reads only the images header and the small labels file. stream() reads the images
 * file once, sequentially, through gunzip, skipping the items not selected, so memory does not
 * grow with the file. Record ids are `<images file name>#<index>`; sha256 is that of the item's
 * raw rows×cols pixel bytes.
 */
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip, gunzipSync } from 'node:zlib';
import { SkepticInputError, throwIfAborted } from '../errors';
import type { DatasetRecord, DecodeSpec, Sample, StreamOptions } from '../types';
import { listSome, sortStrings, type Listing, type ReadOptions } from './common';
import { decodeGrayPixels } from './decode';
import { batched, sha256, type DecodeConfig } from './stream';

const IMAGES_MAGIC = 0x00000803; // uint8 data, 3 dimensions
const LABELS_MAGIC = 0x00000801; // uint8 data, 1 dimension
const HEADER = 16;

export const isIdxImages = (name: string) => /idx3/i.test(name) && /ubyte(\.gz)?$/i.test(name);
const isIdxLabels = (name: string) => /idx1/i.test(name) && /ubyte(\.gz)?$/i.test(name);

function openRaw(file: string): Readable {
  const src = createReadStream(file);
  if (!file.toLowerCase().endsWith('.gz')) return src;
  const gz = createGunzip();
  src.on('error', (e) => gz.destroy(e));
  return src.pipe(gz);
}

/** Reads exact byte counts from a stream, without holding more than the current chunk. */
class ByteReader {
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  private readonly it: AsyncIterator<Buffer>;
  constructor(private readonly stream: Readable) {
    this.it = stream[Symbol.asyncIterator]();
  }
  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      const n = await this.it.next();
      if (n.done) return false;
      this.chunk = n.value;
      this.pos = 0;
    }
    return true;
  }
  /** Discards n bytes; false if the stream ended first. */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      if (!(await this.fill())) return false;
      const k = Math.min(n, this.chunk.length - this.pos);
      this.pos += k;
      n -= k;
    }
    return true;
  }
  /** The next n bytes, copied; undefined if the stream ended first. */
  async read(n: number): Promise<Buffer | undefined> {
    const out = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) return undefined;
      const k = Math.min(n - got, this.chunk.length - this.pos);
      this.chunk.copy(out, got, this.pos, this.pos + k);
      this.pos += k;
      got += k;
    }
    return out;
  }
  close(): void {
    this.stream.destroy();
  }
}

async function readHeader(file: string): Promise<Buffer> {
  const reader = new ByteReader(openRaw(file));
  try {
    const h = await reader.read(HEADER);
    if (!h) throw new SkepticInputError(`${file} is too short to be an IDX images file`, file);
    return h;
  } catch (e) {
    if (e instanceof SkepticInputError) throw e;
    throw new SkepticInputError(`cannot read ${file}: ${(e as Error).message}`, file);
  } finally {
    reader.close();
  }
}

/** The images and labels files for `path` (a folder, or the images file itself). */
async function findFiles(path: string, isDir: boolean, warnings: string[]): Promise<{ images: string; labels: string }> {
  const dir = isDir ? path : dirname(path);
  const names = sortStrings(await readdir(dir));
  const images = isDir ? names.filter(isIdxImages) : [basename(path)];
  const labels = names.filter(isIdxLabels);
  if (images.length === 0) throw new SkepticInputError(`no IDX images file (*idx3-ubyte[.gz]) in ${dir}`, dir);
  // Pair by name: ...images-idx3-ubyte[.gz] goes with ...labels-idx1-ubyte[.gz].
  const partner = (img: string) => {
    const stem = img.toLowerCase().replace(/\.gz$/, '').replace('images', 'labels').replace('idx3', 'idx1');
    return labels.find((l) => l.toLowerCase().replace(/\.gz$/, '') === stem);
  };
  let pairs = images.map((img) => [img, partner(img) ?? (images.length === 1 && labels.length === 1 ? labels[0] : undefined)] as const);
  pairs = pairs.filter(([, l]) => l !== undefined);
  if (pairs.length === 0) throw new SkepticInputError(`no IDX labels file (*idx1-ubyte[.gz]) to go with ${listSome(images)} in ${dir}`, join(dir, images[0]));
  if (pairs.length > 1) {
    // A folder with both the train and test sets: audits are about test data.
    const test = pairs.filter(([img]) => /t10k|test/i.test(img));
    if (test.length !== 1) {
      throw new SkepticInputError(`${dir} holds several IDX image sets (${listSome(pairs.map(([i]) => i))}); give the images file to use`, dir);
    }
    warnings.push(`${dir} holds several IDX image sets; using the test set ${test[0][0]}`);
    pairs = test;
  }
  return { images: join(dir, pairs[0][0]), labels: join(dir, pairs[0][1]!) };
}

export async function listIdx(path: string, isDir: boolean, opts: ReadOptions): Promise<Listing> {
  const warnings: string[] = [];
  const { images, labels } = await findFiles(path, isDir, warnings);

  const h = await readHeader(images);
  const [magic, count, rows, cols] = [0, 4, 8, 12].map((o) => h.readUInt32BE(o));
  if (magic !== IMAGES_MAGIC) {
    throw new SkepticInputError(`${images} is not an IDX uint8 images file (magic 0x${magic.toString(16).padStart(8, '0')}, expected 0x00000803)`, images);
  }
  if (rows === 0 || cols === 0 || rows * cols > 1 << 24) throw new SkepticInputError(`${images} has an implausible image size ${rows}×${cols}`, images);
  const itemSize = rows * cols;
  const gz = images.toLowerCase().endsWith('.gz');
  const size = (await stat(images)).size;
  if (!gz && size < HEADER + count * itemSize) {
    throw new SkepticInputError(`${images} is truncated: its header says ${count} images of ${rows}×${cols} (${HEADER + count * itemSize} bytes), the file has ${size}`, images);
  }
  if (gz && size >= 18) {
    // A gzip file ends with its uncompressed size mod 2^32: a cheap truncation check. Only a
    // warning, since a multi-member gzip file breaks it; a short file shows up as item errors.
    const tail = Buffer.alloc(4);
    const fh = await open(images, 'r');
    try {
      await fh.read(tail, 0, 4, size - 4);
    } finally {
      await fh.close();
    }
    if (tail.readUInt32LE(0) !== (HEADER + count * itemSize) % 2 ** 32) {
      warnings.push(`${images} may be truncated or damaged: it does not unpack to the ${count} images its header announces`);
    }
  }

  let lab: Buffer;
  try {
    const raw = await readFile(labels);
    lab = labels.toLowerCase().endsWith('.gz') ? gunzipSync(raw) : raw;
  } catch (e) {
    throw new SkepticInputError(`cannot read ${labels}: ${(e as Error).message}`, labels);
  }
  if (lab.length < 8 || lab.readUInt32BE(0) !== LABELS_MAGIC) {
    throw new SkepticInputError(`${labels} is not an IDX uint8 labels file (expected magic 0x00000801)`, labels);
  }
  const nLabels = lab.readUInt32BE(4);
  if (nLabels !== count) throw new SkepticInputError(`${images} holds ${count} images but ${labels} holds ${nLabels} labels`, labels);
  if (lab.length < 8 + count) throw new SkepticInputError(`${labels} is truncated: ${count} labels expected, ${lab.length - 8} present`, labels);
  if (count === 0) throw new SkepticInputError(`${images} holds no images`, images);

  const name = basename(images);
  const numClasses = opts.labels?.names.length;
  const records: DatasetRecord[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const v = lab[8 + i];
    const rec: DatasetRecord = { index: i, id: `${name}#${i}`, file: images, labelName: String(v) };
    if (numClasses !== undefined && v >= numClasses) rec.problem = `${name}#${i}: label ${v} is out of range: the model has ${numClasses} classes`;
    else rec.label = v;
    records[i] = rec;
  }

  const stream = (selected: readonly DatasetRecord[], spec: DecodeSpec, so: StreamOptions, cfg: DecodeConfig): AsyncIterable<Sample[]> => {
    const usable = selected.filter((r) => !r.problem);
    const margin = spec.margin ?? 0;
    const work = async (item: { record: DatasetRecord; pixels?: Buffer; error?: string }): Promise<Sample> => {
      if (!item.pixels) return { record: item.record, margin, error: item.error };
      const hash = sha256(item.pixels);
      if (so.wantImage && !so.wantImage(item.record, hash)) return { record: item.record, sha256: hash, margin };
      const image = await decodeGrayPixels(item.pixels, cols, rows, spec);
      return { record: item.record, sha256: hash, image, margin };
    };
    return batched(readItems(images, usable, itemSize, so.signal), work, so, cfg.concurrency);
  };
  return { kind: 'idx', path: isDir ? path : images, root: dirname(images), records, warnings, stream };
}

/** The selected items' pixels, read in one sequential pass (records must be in index order). */
async function* readItems(file: string, records: readonly DatasetRecord[], itemSize: number, signal?: AbortSignal) {
  if (records.length === 0) return;
  const reader = new ByteReader(openRaw(file));
  let failure: string | undefined;
  try {
    let next = 0; // index of the next item in the file
    if (!(await reader.skip(HEADER))) failure = 'the file ended early';
    for (const record of records) {
      throwIfAborted(signal);
      if (!failure) {
        try {
          if (record.index < next) throw new Error('records out of order');
          if (!(await reader.skip((record.index - next) * itemSize))) failure = 'the file ended early';
          else {
            const pixels = await reader.read(itemSize);
            if (!pixels) failure = 'the file ended early';
            else {
              next = record.index + 1;
              yield { record, pixels };
              continue;
            }
          }
        } catch (e) {
          failure = (e as Error).message;
        }
      }
      yield { record, error: `${record.id}: cannot read the item from ${basename(file)} (${failure})` };
    }
  } finally {
    reader.close();
  }
}
