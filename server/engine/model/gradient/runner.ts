/**
 * What every graph Skeptic derives from a model shares when it runs: one session.run at a time
 * (calls are queued), batches split into runs of the size the graph allows (a free batch, a
 * fixed batch padded with zeros, or one image), and pixel batches checked against the model.
 */
import '../../fs/ort-env'; // before onnxruntime-node: telemetry off
import * as ort from 'onnxruntime-node';
import type { LoadedModel, PixelBatch } from '../../types';
import { pixelDims } from '../pixels';
import type { InputPlan } from '../introspect';
import type { RunMode } from './prepare';

export const QUIET: ort.InferenceSession.RunOptions = { logSeverityLevel: 4 };

export abstract class GraphRunner {
  private queue: Promise<unknown> = Promise.resolve();
  protected disposed = false;
  protected readonly per: number;

  constructor(
    protected readonly file: string,
    protected readonly plan: InputPlan,
    protected readonly mode: RunMode,
    protected readonly pixel: string,
    protected readonly info: LoadedModel['info'],
  ) {
    this.per = plan.channels * plan.height * plan.width;
  }

  /** Images per session.run. */
  protected get step(): number {
    return this.mode.kind === 'dynamic' ? this.mode.max : this.mode.kind === 'fixed' ? this.mode.size : 1;
  }

  /** Rows of a run that carries m images (a fixed batch is padded). */
  protected rows(m: number): number {
    return this.mode.kind === 'fixed' ? this.mode.size : m;
  }

  protected check(batch: PixelBatch, what: string): void {
    if (this.disposed) throw new Error(`${what}() after dispose()`);
    const { channels, height, width } = this.info;
    if (batch.channels !== channels || batch.height !== height || batch.width !== width) {
      throw new Error(`${what}: got ${batch.channels}×${batch.height}×${batch.width} images; the model takes ${channels}×${height}×${width}`);
    }
    if (batch.data.length < batch.n * this.per) throw new Error(`${what}: data holds ${batch.data.length} values, expected ${batch.n}×${this.per}`);
  }

  /** Rows [first, first+m) of `src` (per values a row) padded with zeros to the run's rows. */
  protected padRows(src: Float32Array, per: number, first: number, m: number): Float32Array {
    const rows = this.rows(m);
    const data = src.subarray(first * per, (first + m) * per);
    if (rows === m) return data;
    const padded = new Float32Array(rows * per);
    padded.set(data);
    return padded;
  }

  /** The pixels of images [first, first+m), padded to the run size. */
  protected feedPixels(src: Float32Array, first: number, m: number): ort.Tensor {
    return new ort.Tensor('float32', this.padRows(src, this.per, first, m), pixelDims(this.plan, this.rows(m)));
  }

  /** Runs `work` after every call queued before it; a failure does not block later calls. */
  protected serial<T>(work: () => Promise<T>): Promise<T> {
    const p = this.queue.then(work);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Waits for queued work and marks the runner disposed (subclasses release their sessions). */
  protected async drain(): Promise<boolean> {
    if (this.disposed) return false;
    this.disposed = true;
    await this.queue;
    return true;
  }
}
