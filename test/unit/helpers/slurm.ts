/**
 * A one-node Slurm cluster for tests: munged with a random key, slurmctld and slurmd on
 * localhost, everything (state, spool, logs, pid files, the munge socket) in a temporary folder
 * and on random ports, so it touches nothing of the machine's own Slurm. Debian's slurm-wlm and
 * munge packages provide the binaries; it needs root (slurmd runs jobs as their user).
 *
 * The daemons run in the foreground as children of the test process and are stopped by stop(),
 * and also when the process exits or is interrupted (SIGINT, SIGTERM), so no daemon outlives a
 * test run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';

const BINARIES = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'scancel', 'sacct'];

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat('/usr/sbin', '/sbin')) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/** Why a local cluster cannot run here, or undefined when it can. */
export function slurmUnavailable(): string | undefined {
  const missing = BINARIES.filter((b) => b !== 'sacct' && !which(b));
  if (missing.length) return `Slurm is not installed (${missing.join(', ')} not found; apt-get install slurm-wlm munge)`;
  if (process.getuid?.() !== 0) return 'a local Slurm cluster needs root (slurmd starts jobs as their user)';
  return undefined;
}

export interface SlurmCluster {
  dir: string;
  /** Environment for sbatch, squeue, scontrol (SLURM_CONF). */
  env: NodeJS.ProcessEnv;
  /** Runs a Slurm client command; returns stdout, throws with stderr on failure. */
  cli(cmd: string, args: string[]): string;
  logs(): string;
  stop(): Promise<void>;
}

export async function startSlurm(): Promise<SlurmCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'skeptic-slurm-'));
  const conf = join(dir, 'slurm.conf');
  const children: ChildProcess[] = [];
  const killAll = (signal: NodeJS.Signals) => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  };
  /**
   * Job steps (slurmstepd) and the jobs' processes outlive the daemons that started them; every
   * one of them carries this cluster's SLURM_CONF (a unique temporary path) in its environment.
   */
  const killStray = () => {
    for (const pid of readdirSync('/proc').filter((f) => /^\d+$/.test(f)).map(Number)) {
      if (pid === process.pid) continue;
      try {
        if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`SLURM_CONF=${conf}`)) process.kill(pid, 'SIGKILL');
      } catch {
        // gone, or not ours to read
      }
    }
  };
  const onExit = () => {
    killAll('SIGKILL');
    killStray();
  };
  // Interrupted (Ctrl-C, the runner's timeout): the daemons go with us.
  const onSignal = (signal: NodeJS.Signals) => {
    onExit();
    rmSync(dir, { recursive: true, force: true });
    process.kill(process.pid, signal);
  };
  process.on('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  for (const d of ['state', 'spool', 'munge']) mkdirSync(join(dir, d));
  const key = join(dir, 'munge/munge.key');
  writeFileSync(key, randomBytes(1024));
  chmodSync(key, 0o400);
  const socket = join(dir, 'munge/munge.sock');
  const base = 20000 + Math.floor(Math.random() * 20000);
  const cpuCount = cpus().length;
  writeFileSync(
    conf,
    [
      'ClusterName=skeptictest',
      'SlurmctldHost=localhost(127.0.0.1)',
      'SlurmUser=root',
      'SlurmdUser=root',
      `SlurmctldPort=${base}`,
      `SlurmdPort=${base + 1}`,
      'AuthType=auth/munge',
      'CredType=cred/munge',
      `AuthInfo=socket=${socket}`,
      `StateSaveLocation=${join(dir, 'state')}`,
      `SlurmdSpoolDir=${join(dir, 'spool')}`,
      `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
      `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
      `SlurmctldLogFile=${join(dir, 'slurmctld.log')}`,
      `SlurmdLogFile=${join(dir, 'slurmd.log')}`,
      'ProctrackType=proctrack/linuxproc',
      'TaskPlugin=task/none',
      'JobAcctGatherType=jobacct_gather/none',
      'AccountingStorageType=accounting_storage/none',
      'JobCompType=jobcomp/none',
      'SchedulerType=sched/builtin',
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_CPU',
      'MpiDefault=none',
      'ReturnToService=2',
      'SlurmctldTimeout=30',
      'SlurmdTimeout=30',
      'InactiveLimit=0',
      'MinJobAge=600',
      'KillWait=5',
      'SlurmctldDebug=info',
      'SlurmdDebug=info',
      `NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpuCount} RealMemory=${Math.floor((totalmem() / 2 ** 20) * 0.9)} State=UNKNOWN`,
      'PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4',
      '',
    ].join('\n'),
  );
  const env = { ...process.env, SLURM_CONF: conf };
  const daemon = (cmd: string, args: string[]) => {
    const c = spawn(which(cmd)!, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
    (c as ChildProcess & { err: () => string }).err = () => err;
    children.push(c);
    return c;
  };
  const logs = () =>
    ['slurmctld.log', 'slurmd.log', 'munge/munged.log']
      .map((f) => (existsSync(join(dir, f)) ? `--- ${f}\n${readFileSync(join(dir, f), 'utf8').slice(-3000)}` : `--- ${f}: none`))
      .join('\n');
  const cli = (cmd: string, args: string[]) => {
    const r = spawnSync(which(cmd)!, args, { env, encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
    return r.stdout;
  };
  const stop = async () => {
    try {
      spawnSync(which('scancel')!, ['--full', '--user=root'], { env, timeout: 10_000 });
    } catch {
      // the controller may be gone already
    }
    // Let cancelled jobs end before the node daemon goes, so no job step is left behind.
    const quiet = Date.now() + 15_000;
    while (Date.now() < quiet && trySync(() => cli('squeue', ['-h', '-o', '%i'])).trim()) await sleep(250);
    killAll('SIGTERM');
    const deadline = Date.now() + 8000;
    while (children.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(100);
    killAll('SIGKILL');
    killStray();
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    daemon('munged', ['--foreground', '--force', `--key-file=${key}`, `--socket=${socket}`, `--pid-file=${join(dir, 'munge/munged.pid')}`, `--log-file=${join(dir, 'munge/munged.log')}`, `--seed-file=${join(dir, 'munge/munge.seed')}`]);
    await waitFor(() => existsSync(socket), 10_000, 'munged did not create its socket');
    daemon('slurmctld', ['-D', '-i', '-f', conf]);
    await waitFor(() => trySync(() => cli('scontrol', ['ping'])).includes('UP'), 30_000, 'slurmctld did not answer');
    daemon('slurmd', ['-D', '-f', conf, '-N', 'localhost']);
    await waitFor(() => /State=(IDLE|MIXED)/.test(trySync(() => cli('scontrol', ['show', 'node', 'localhost']))), 30_000, 'slurmd did not register as idle');
  } catch (e) {
    const message = `${(e as Error).message}\n${logs()}\n${children.map((c) => (c as ChildProcess & { err: () => string }).err()).join('\n')}`;
    await stop();
    throw new Error(message);
  }
  return { dir, env, cli, logs, stop };
}

function trySync(f: () => string): string {
  try {
    return f();
  } catch {
    return '';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(what);
    await sleep(250);
  }
}
