/**
 * Runs ONNX models on ONNX Runtime's WebGPU provider, one after another, in a process of its own:
 * ORT's verbose log (SKEPTIC_ORT_LOG=0, set by helpers/webgpu.ts) goes to this process's stderr,
 * where the parent reads which provider each node was placed on. argv[2]: a JSON job file,
 * { models: [{ path, feeds?: { name: { type, dims, file } }, output?, out? }] }: each model's
 * session is created with the engine's session options for WebGPU (a failure to start the
 * provider exits 3, printing why); with feeds, it runs once and the output's float32 values are
 * written to `out`. Each model's log is preceded by a line "@@MODEL <path>", and "@@DONE" ends a whole run.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { sessionOptions } from '../../../server/engine/model/providers';

interface Job {
  models: Array<{ path: string; feeds?: Record<string, { type: 'float32' | 'int32'; dims: number[]; file: string }>; output?: string; out?: string }>;
}

async function main(): Promise<void> {
  const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as Job;
  for (const m of job.models) {
    process.stderr.write(`@@MODEL ${m.path}\n`);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(readFileSync(m.path), sessionOptions('webgpu'));
    } catch (e) {
      process.stderr.write(`@@NO-WEBGPU ${(e as Error).message.split('\n')[0]}\n`);
      process.exit(3);
    }
    if (m.feeds && m.output && m.out) {
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, f] of Object.entries(m.feeds)) {
        const bytes = readFileSync(f.file);
        // a copy: a small file's Buffer is a view into a shared pool, not always 4-byte aligned
        const own = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        const data = f.type === 'float32' ? new Float32Array(own) : new Int32Array(own);
        feeds[name] = new ort.Tensor(f.type, data, f.dims);
      }
      const out = (await session.run(feeds, [m.output]))[m.output].data as Float32Array;
      writeFileSync(m.out, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    }
    await session.release();
  }
}

// the parent checks that the log is whole
void main().then(() => process.stderr.write('@@DONE\n'));
