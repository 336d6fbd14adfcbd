/**
 * Which shard audits which dataset item, and which shard this process is.
 *
 * An item goes to the shard with the highest score hash(item id, shard) — rendezvous
 * (highest-random-weight) hashing, Thaler & Ravishankar 1998. The choice depends only on the
 * item's id (its path relative to the dataset root, or `file#index`) and the shard count, so:
 *  - every process computes the same split from the listing alone, with no coordinator;
 *  - adding images to a dataset moves no existing item (its id and N are unchanged);
 *  - going from N to N+1 shards moves only the ~1/(N+1) of items that the new shard wins,
 *    where `hash mod N` would move almost all of them (which matters for a shared cache only a
 *    little, since the cache is keyed by content, but keeps shard results comparable).
 * The score is a 32-bit mix of a 64-bit FNV-1a hash of the id and the shard number: cheap enough
 * for 50,000 items × 1,000 shards, and well spread (checked by the imbalance benchmark).
 */
import { SkepticInputError } from '../errors';

export interface ShardSpec {
  /** 0-based shard index. */
  index: number;
  /** Number of shards. */
  count: number;
  /** Where the choice came from, for the output ("--shard", "SLURM_ARRAY_TASK_ID=3 ..."). */
  source: string;
}

/** Two independent 32-bit FNV-1a hashes of the id (different offset bases), as one pair. */
function idHash(id: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ (c & 0xff), 0x01000193);
    b = Math.imul(b ^ (c >>> 8), 0x01000193);
  }
  return [a >>> 0, b >>> 0];
}

/** murmur3's 32-bit finaliser: a bijective mix with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The lane (0..count-1) of the item with this id inside its shard (lanes.ts). Salted apart from
 * shardOf: with the same scores, shard 0 of 4 would fall wholly into lane 0 of 2 (its items' best
 * of shards 0–3 is 0, so their best of 0–1 is 0 too).
 */
export function laneOf(id: string, count: number): number {
  return shardOf(`${id}\u0000lane`, count);
}

/** The shard (0..count-1) that audits the item with this id. */
export function shardOf(id: string, count: number): number {
  if (count <= 1) return 0;
  const [a, b] = idHash(id);
  let best = 0;
  let bestScore = -1;
  for (let s = 0; s < count; s++) {
    // Two mixed halves make a 53-bit score, so ties are practically impossible; a tie would
    // still resolve the same way everywhere (the lower shard wins).
    const hi = fmix32(a ^ fmix32(s + 0x9e3779b9));
    const lo = fmix32(b ^ fmix32(s * 0x85ebca6b + 0x165667b1)) >>> 11;
    const score = hi * 2097152 + lo;
    if (score > bestScore) {
      bestScore = score;
      best = s;
    }
  }
  return best;
}

/** Parses `I/N` (0-based I). */
export function parseShard(text: string, source = '--shard'): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new SkepticInputError(`${source} must look like I/N (shard I of N, 0-based), not '${text}'`);
  return checked(Number(m[1]), Number(m[2]), source);
}

function checked(index: number, count: number, source: string): ShardSpec {
  if (!Number.isSafeInteger(count) || count < 1) throw new SkepticInputError(`${source}: the shard count must be at least 1, not ${count}`);
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new SkepticInputError(`${source}: shard index ${index} is outside 0..${count - 1}`);
  }
  return { index, count, source };
}

/**
 * The shard a scheduler gave this process, or undefined when none did.
 *  - Slurm job arrays: SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT, or with
 *    SLURM_ARRAY_TASK_MIN/MAX (an array --array=1-8 is shards 0..7: the index is ID−MIN).
 *  - Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX; Kubernetes does not pass the completion
 *    count to the pod, so it comes from --shard-count or SKEPTIC_SHARD_COUNT.
 * An explicit count (flag or SKEPTIC_SHARD_COUNT) wins over Slurm's.
 */
export function shardFromEnv(env: NodeJS.ProcessEnv, countFlag?: number): ShardSpec | undefined {
  const explicit = countFlag ?? (env.SKEPTIC_SHARD_COUNT ? intEnv(env, 'SKEPTIC_SHARD_COUNT') : undefined);
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_ID !== '') {
    const id = intEnv(env, 'SLURM_ARRAY_TASK_ID');
    const min = env.SLURM_ARRAY_TASK_MIN ? intEnv(env, 'SLURM_ARRAY_TASK_MIN') : 0;
    let count = explicit;
    let how = countFlag !== undefined ? '--shard-count' : explicit !== undefined ? 'SKEPTIC_SHARD_COUNT' : '';
    if (count === undefined && env.SLURM_ARRAY_TASK_COUNT) {
      count = intEnv(env, 'SLURM_ARRAY_TASK_COUNT');
      how = 'SLURM_ARRAY_TASK_COUNT';
    }
    if (count === undefined && env.SLURM_ARRAY_TASK_MAX) {
      count = intEnv(env, 'SLURM_ARRAY_TASK_MAX') - min + 1;
      how = 'SLURM_ARRAY_TASK_MIN/MAX';
    }
    if (count === undefined) throw new SkepticInputError('SLURM_ARRAY_TASK_ID is set but not the array size: pass --shard-count N or set SKEPTIC_SHARD_COUNT');
    const source = `SLURM_ARRAY_TASK_ID=${id}${min ? ` (min ${min})` : ''}, count from ${how}`;
    return checked(id - min, count, source);
  }
  if (env.JOB_COMPLETION_INDEX !== undefined && env.JOB_COMPLETION_INDEX !== '') {
    const id = intEnv(env, 'JOB_COMPLETION_INDEX');
    if (explicit === undefined) {
      throw new SkepticInputError('JOB_COMPLETION_INDEX is set but not the number of shards: pass --shard-count N or set SKEPTIC_SHARD_COUNT (the Job\'s completions)');
    }
    return checked(id, explicit, `JOB_COMPLETION_INDEX=${id}, count from ${countFlag !== undefined ? '--shard-count' : 'SKEPTIC_SHARD_COUNT'}`);
  }
  return undefined;
}

function intEnv(env: NodeJS.ProcessEnv, name: string): number {
  const v = env[name]!;
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n)) throw new SkepticInputError(`${name} must be a non-negative integer, not '${v}'`);
  return n;
}
