/**
 * What the workspace holds, found by a bounded, asynchronous walk (the daemon keeps answering
 * while it runs): models (.onnx), datasets (class folders, CSV/JSONL manifests, idx folders),
 * skeptic.json files. The quick picks of the client ("audit on which dataset?", "with which
 * model?") and skeptic.json completions come from here.
 */
import { open, readdir } from 'node:fs/promises';
import { dirname, extname, join, relative, sep } from 'node:path';
import { CONFIG_FILE } from '../engine/config';
import { isImageName } from '../engine/data/common';
import type { DatasetCandidate } from '../protocol';

export interface FoundDataset {
  path: string;
  kind: DatasetCandidate['kind'];
  detail?: string;
}

export interface WorkspaceScan {
  models: string[];
  datasets: FoundDataset[];
  configs: string[];
}

const SKIP_DIRS = new Set(['node_modules', '.git', '.hg', '.svn', '.skeptic', '__pycache__', '.venv', 'venv']);
const MANIFESTS = new Set(['.csv', '.jsonl', '.ndjson']);
/** An MNIST images file, as the engine's idx reader names them (data/idx.ts). */
const isIdxImages = (name: string) => /idx3/i.test(name) && /ubyte(\.gz)?$/i.test(name);

export interface ScanLimits {
  /** Folder depth below each root. */
  maxDepth: number;
  /** Directory entries looked at in all. */
  maxEntries: number;
}

const DEFAULT_LIMITS: ScanLimits = { maxDepth: 6, maxEntries: 50_000 };

/** True when the first lines of a .csv/.jsonl name image files (a manifest, not any table). */
async function looksLikeManifest(file: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, 'r');
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const head = buf.subarray(0, bytesRead).toString('utf8').split(/\r?\n/).slice(0, 4).join('\n');
    return /\.(png|jpe?g|jfif|webp|gif|tiff?|avif|bmp|heic|heif|p[pgbn]m)\b/i.test(head);
  } catch {
    return false;
  } finally {
    await fh?.close();
  }
}

export async function scanWorkspace(roots: string[], limits: ScanLimits = DEFAULT_LIMITS): Promise<WorkspaceScan> {
  const out: WorkspaceScan = { models: [], datasets: [], configs: [] };
  let budget = limits.maxEntries;

  async function walk(dir: string, depth: number): Promise<void> {
    if (budget <= 0) return;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    budget -= entries.length;
    const subdirs = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.') && !SKIP_DIRS.has(e.name));
    let idx = false;
    for (const e of entries) {
      if (!e.isFile()) continue;
      const full = join(dir, e.name);
      const ext = extname(e.name).toLowerCase();
      if (ext === '.onnx') out.models.push(full);
      else if (e.name === CONFIG_FILE) out.configs.push(full);
      else if (MANIFESTS.has(ext) && (await looksLikeManifest(full))) {
        out.datasets.push({ path: full, kind: ext === '.csv' ? 'csv' : 'jsonl', detail: 'manifest' });
      } else if (isIdxImages(e.name)) idx = true;
    }
    if (idx) out.datasets.push({ path: dir, kind: 'idx', detail: 'MNIST idx files' });
    // Class folders: at least two sub-folders that hold images directly.
    if (!idx && subdirs.length >= 2) {
      let classes = 0;
      for (const s of subdirs.slice(0, 200)) {
        try {
          const inner = await readdir(join(dir, s.name));
          budget -= Math.min(inner.length, 50);
          if (inner.slice(0, 50).some(isImageName)) classes++;
        } catch {
          // unreadable: not a class
        }
      }
      if (classes >= 2) {
        out.datasets.push({ path: dir, kind: 'folder', detail: `${classes} class folders` });
        // The class folders themselves are images, not more datasets: do not descend.
        return;
      }
    }
    if (depth >= limits.maxDepth) return;
    for (const s of subdirs) await walk(join(dir, s.name), depth + 1);
  }

  for (const root of roots) await walk(root, 0);
  return out;
}

/** Orders paths by closeness to `near` (shared leading folders), then by name. */
export function byProximity<T>(items: T[], pathOf: (t: T) => string, near?: string): T[] {
  if (!near) return [...items].sort((a, b) => pathOf(a).localeCompare(pathOf(b)));
  const nearParts = dirname(near).split(sep);
  const shared = (p: string) => {
    const parts = p.split(sep);
    let n = 0;
    while (n < parts.length && n < nearParts.length && parts[n] === nearParts[n]) n++;
    return n;
  };
  return [...items].sort((a, b) => shared(pathOf(b)) - shared(pathOf(a)) || pathOf(a).localeCompare(pathOf(b)));
}

/** A path as people read it in a workspace: relative to the root that holds it. */
export function workspaceLabel(path: string, roots: string[]): string {
  for (const r of roots) {
    const rel = relative(r, path);
    if (!rel.startsWith('..') && rel !== '') return rel.split(sep).join('/');
  }
  return path;
}
