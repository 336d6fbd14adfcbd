/**
 * The model the daemon's worker audited last, kept loaded for a while so that the next audit of
 * the same model finds its sessions made and their memory already the process's. In the editor
 * an audit is often run again soon after (the data or skeptic.json changed); creating the view
 * sessions anew and faulting their arenas in again is part of what makes a first audit slower
 * than a second one (bench/README.md, twenty-first pass: on the development VM a page fault costs
 * 11–14 µs, and a first ImageNet audit touches about 1.2 GB).
 *
 * A model is kept only under a key that names everything its loading read: the load options and
 * the size, modification time and inode of every file in the model's folder and its subfolders
 * one level down (external weights, labels and preprocessing configs sit there) and of a labels
 * file named elsewhere. Any change loads the model again. It is released after `idleMs` without
 * an audit, before another model is loaded, and when the audit that used it failed or was
 * cancelled.
 */
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Folders with more entries than this, their subfolders' included, are not fingerprinted (a model beside its dataset): their models are not kept. */
const MAX_FOLDER_ENTRIES = 256;

/**
 * The key a loaded model is kept under, or undefined when it should not be kept (a folder too
 * large to fingerprint, or one that cannot be read).
 */
export function modelKey(modelFile: string, options: unknown, labelsFile?: string): string | undefined {
  const stamp = (f: string) => {
    try {
      const s = statSync(f);
      return s.isFile() ? [s.size, s.mtimeMs, s.ino] : null;
    } catch {
      return null;
    }
  };
  // the model's folder and its subfolders one level down (ONNX external data may name a path
  // such as weights/model.bin), at most MAX_FOLDER_ENTRIES entries in all
  const dir = dirname(modelFile);
  const names: string[] = [];
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      names.push(e.name);
      if (e.isDirectory()) for (const n of readdirSync(join(dir, e.name))) names.push(join(e.name, n));
      if (names.length > MAX_FOLDER_ENTRIES) return undefined;
    }
  } catch {
    return undefined;
  }
  const files = names.sort().map((n) => [n, stamp(join(dir, n))]);
  return JSON.stringify({ modelFile, options, files, labels: labelsFile ? [labelsFile, stamp(labelsFile)] : null });
}

export interface Disposable {
  dispose(): Promise<void>;
}

/** One kept model at a time (see the header). */
export class ModelKeeper<M extends Disposable> {
  private kept: { key: string; model: M; timer: NodeJS.Timeout } | undefined;

  constructor(private readonly idleMs: number) {}

  /**
   * The kept model if it was kept under `key`, taken out of the keeper (give it back with keep(),
   * or dispose it); otherwise undefined, and a model kept under another key is disposed first.
   */
  async take(key: string | undefined): Promise<M | undefined> {
    const k = this.kept;
    if (!k) return undefined;
    clearTimeout(k.timer);
    this.kept = undefined;
    if (key !== undefined && k.key === key) return k.model;
    await k.model.dispose();
    return undefined;
  }

  /** Keeps `model` under `key` until the next take(), release(), or idleMs without either; with no key (or idleMs 0), disposes it. */
  async keep(key: string | undefined, model: M): Promise<void> {
    await this.release();
    if (key === undefined || !(this.idleMs > 0)) return model.dispose();
    // the timer must not keep the worker alive: the daemon ends it by closing the channel
    const timer = setTimeout(() => void this.release(), this.idleMs);
    timer.unref();
    this.kept = { key, model, timer };
  }

  /** Disposes the kept model, if any. */
  async release(): Promise<void> {
    const k = this.kept;
    if (!k) return;
    clearTimeout(k.timer);
    this.kept = undefined;
    await k.model.dispose();
  }

  /** Whether a model is kept now (for the tests). */
  get holding(): boolean {
    return this.kept !== undefined;
  }
}
