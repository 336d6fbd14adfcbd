/**
 * sharp, loaded on first use. The views worker (views/cpu-worker.ts) imports the corruption
 * makers, and they need sharp only for a colour JPEG larger than image/jpeg.ts takes and for a
 * user's folder of frost textures; loading sharp's native library cost every worker 50–100 ms of
 * its start (and a first audit waited for that worker's first inputs). The main thread loads it
 * anyway, to decode the dataset (data/decode.ts).
 */
import type Sharp from 'sharp';

let sharp: typeof Sharp | undefined;

export function loadSharp(): typeof Sharp {
  return (sharp ??= require('sharp') as typeof Sharp);
}
