/**
 * The daemon's side of the worker process (server/worker.ts): starts it on first use with
 * child_process.fork, sends jobs and matches their answers, forwards its stdout/stderr to the
 * daemon's log, and turns the worker's death into a WorkerCrashError for every job in flight.
 * The next job starts a fresh worker.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import type { AuditJob, AuditJobResult, DaemonToWorker, JobProgress, ModelInput, ProbeCatalog, WorkerError, WorkerToDaemon } from '../protocol';

/** The worker died (crash, kill, out of memory) while a job was in flight. */
export class WorkerCrashError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
  ) {
    super(message);
    this.name = 'WorkerCrashError';
  }
}

/** An error the worker reported for a job (bad input, a failed probe...). */
export class WorkerJobError extends Error {
  readonly file?: string;
  readonly line?: number;
  constructor(e: WorkerError) {
    super(e.message);
    this.name = e.name;
    this.file = e.file;
    this.line = e.line;
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onProgress?: (p: JobProgress) => void;
}

/** The worker's scheduling priority (Unix nice value; mapped to "below normal" on Windows). */
const WORKER_NICENESS = 10;

/** Keeps this many of the worker's last stderr lines, to explain a crash. */
const STDERR_LINES = 20;

export class WorkerHost {
  private child?: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private stderrTail: string[] = [];
  private stopping = false;

  constructor(
    private readonly log: (line: string) => void,
    /** The worker's script; default: worker.js beside this bundle (dist/worker.js). */
    private readonly script = process.env.SKEPTIC_WORKER ?? join(__dirname, 'worker.js'),
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  audit(job: AuditJob, onProgress: (p: JobProgress) => void): { id: number; done: Promise<AuditJobResult> } {
    const id = this.nextId++;
    return { id, done: this.request({ type: 'audit', id, job }, onProgress) as Promise<AuditJobResult> };
  }

  describe(): Promise<ProbeCatalog> {
    return this.request({ type: 'describe', id: this.nextId++ }) as Promise<ProbeCatalog>;
  }

  inspect(model: string): Promise<ModelInput> {
    return this.request({ type: 'inspect', id: this.nextId++, model }) as Promise<ModelInput>;
  }

  /** Asks the worker to stop job `id` (it stops at the next batch and answers with what finished). */
  cancel(id: number): void {
    this.post({ type: 'cancel', id });
  }

  /** Ends the worker at once (SIGKILL): jobs in flight fail with WorkerCrashError. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  /** Ends the worker for good (daemon shutdown). */
  dispose(): void {
    this.stopping = true;
    this.kill();
  }

  private request(msg: DaemonToWorker, onProgress?: (p: JobProgress) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.stopping) return reject(new Error('the daemon is shutting down'));
      this.pending.set(msg.id, { resolve, reject, onProgress });
      try {
        this.ensure();
        this.post(msg);
      } catch (e) {
        this.pending.delete(msg.id);
        reject(e as Error);
      }
    });
  }

  private post(msg: DaemonToWorker): void {
    if (this.child?.connected) this.child.send(msg);
  }

  private ensure(): void {
    if (this.child) return;
    if (!existsSync(this.script)) throw new Error(`the worker script ${this.script} is missing (run the build)`);
    const child = fork(this.script, [], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // The daemon's own flags (--inspect for debugging) must not be inherited.
      execArgv: [],
    });
    this.child = child;
    this.stderrTail = [];
    // Inference yields the CPU to the daemon and the editor: they stay responsive on a busy machine.
    try {
      if (child.pid) setPriority(child.pid, WORKER_NICENESS);
    } catch {
      // not permitted here: run at normal priority
    }
    this.log(`worker: started (pid ${child.pid})`);
    const lines = (stream: NodeJS.ReadableStream | null, isErr: boolean) => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buf += chunk;
        const parts = buf.split('\n');
        buf = parts.pop()!;
        for (const line of parts) {
          this.log(`worker: ${line}`);
          if (isErr) {
            this.stderrTail.push(line);
            if (this.stderrTail.length > STDERR_LINES) this.stderrTail.shift();
          }
        }
      });
    };
    lines(child.stdout, false);
    lines(child.stderr, true);
    child.on('message', (msg: WorkerToDaemon) => this.onMessage(msg));
    child.on('error', (e) => this.log(`worker: ${e.message}`));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      this.log(`worker: process ${child.pid} ${how}`);
      if (this.pending.size === 0) return;
      const tail = this.stderrTail.filter((l) => l.trim()).slice(-3).join(' | ');
      const err = new WorkerCrashError(
        `the audit worker process ${how}${tail ? ` (last output: ${tail})` : ''}`,
        code,
        signal,
      );
      const pending = [...this.pending.values()];
      this.pending.clear();
      for (const p of pending) p.reject(err);
    });
  }

  private onMessage(msg: WorkerToDaemon): void {
    if (msg.type === 'ready') return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'progress') {
      p.onProgress?.(msg.progress);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.type === 'result') p.resolve(msg.value);
    else p.reject(new WorkerJobError(msg.error));
  }
}
