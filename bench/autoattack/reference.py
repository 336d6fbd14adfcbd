#!/usr/bin/python3
"""
The reference side of bench/autoattack.ts: runs AutoAttack (fra31/auto-attack, PyTorch) on a
fixture ONNX classifier rebuilt in torch, on the same PNG images Skeptic reads, and prints one
JSON object: per epsilon, which images are still robust after the whole protocol, the
per-attack robust accuracy log, and the time.

Not part of the product. The ONNX -> torch converter below maps the handful of ops the fixture
CIFAR models use (Conv, Relu, Add, Flatten, Gemm, MatMul, Reshape) and refuses anything else;
pixel normalisation (mean/std) is a torch layer in front, so the attack works in [0,1] pixels
like Skeptic's.

Usage (Debian's PyTorch; preload tcmalloc, as DESIGN.md asks for a fair CPU baseline):
  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/bin/python3 \
    bench/autoattack/reference.py --autoattack DIR --model M.onnx --data DIR --eps 1,2,4,8 \
    [--limit 100] [--version standard] [--threads 1] [--mean ..] [--std ..] [--out F.json]
DIR for --autoattack holds the `autoattack` package (a checkout of fra31/auto-attack).

Threads: one by default, and OpenMP told to sleep rather than spin while it waits. On the shared
2-core development machine, torch 1.13 with 2 OpenMP threads and the default (spinning) wait
policy ran one forward+backward pass of ResNet-2B at batch 77 in 23 ms instead of 7 ms, and
AutoAttack's APGD-CE on 100 images in 22 s instead of 2 s; with other jobs on the cores, the
spinning threads pre-empt each other and the earlier runs here took ~500x longer than this
(APGD-T: 1,400 s for 15 images; now 3-9 s of wall time on the same loaded machine).
"""
import os
# Before torch loads libgomp, which reads it once.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import argparse
import csv
import hashlib
import io
import json
import sys
import time
from contextlib import redirect_stdout

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper
from PIL import Image


class OnnxTorch(nn.Module):
    """Executes a small ONNX graph with torch ops (enough for the fixture CIFAR ResNet-2B)."""

    def __init__(self, path):
        super().__init__()
        m = onnx.load(path)
        g = m.graph
        # Weights are buffers (no gradient is ever asked of them), made once, float32.
        self.names = {}
        self.consts = {}
        for t in g.initializer:
            key = 'p%d' % len(self.names)
            self.names[t.name] = key
            arr = numpy_helper.to_array(t)
            self.consts[t.name] = arr
            self.register_buffer(key, torch.from_numpy(arr.copy()))
        inits = set(self.names)
        self.input = [i.name for i in g.input if i.name not in inits][0]
        self.output = g.output[0].name
        self.nodes = []
        for n in g.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if n.op_type not in ('Conv', 'Relu', 'Add', 'Flatten', 'Gemm', 'MatMul', 'Reshape'):
                raise SystemExit('reference.py: no torch mapping for ONNX op %s' % n.op_type)
            if n.op_type == 'Reshape':
                # the target shape is a constant of the graph: read it once, not per call
                if n.input[1] not in self.consts:
                    raise SystemExit('reference.py: Reshape %s takes its shape from a computed tensor' % n.name)
                attrs['shape'] = [int(v) for v in self.consts[n.input[1]].tolist()]
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))

    def forward(self, x):
        env = {self.input: x}
        get = lambda name: env[name] if name in env else getattr(self, self.names[name])
        for op, ins, outs, a in self.nodes:
            if op == 'Conv':
                pads = a.get('pads', [0, 0, 0, 0])
                assert pads[0] == pads[2] and pads[1] == pads[3], 'asymmetric pads'
                y = F.conv2d(get(ins[0]), get(ins[1]), get(ins[2]) if len(ins) > 2 else None,
                             stride=a.get('strides', [1, 1]), padding=pads[:2],
                             dilation=a.get('dilations', [1, 1]), groups=a.get('group', 1))
            elif op == 'Relu':
                y = F.relu(get(ins[0]))
            elif op == 'Add':
                y = get(ins[0]) + get(ins[1])
            elif op == 'Flatten':
                y = torch.flatten(get(ins[0]), a.get('axis', 1))
            elif op == 'Gemm':
                A, B = get(ins[0]), get(ins[1])
                if a.get('transA', 0): A = A.t()
                if a.get('transB', 0): B = B.t()
                y = a.get('alpha', 1.0) * (A @ B)
                if len(ins) > 2: y = y + a.get('beta', 1.0) * get(ins[2])
            elif op == 'MatMul':
                y = get(ins[0]) @ get(ins[1])
            elif op == 'Reshape':
                y = get(ins[0]).reshape(a['shape'])
            env[outs[0]] = y
        return env[self.output]


class Normalized(nn.Module):
    def __init__(self, net, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


class Tee:
    """AutoAttack's log, kept for the JSON and shown on stderr as it runs."""

    def __init__(self, *parts):
        self.parts = parts

    def write(self, text):
        for p in self.parts:
            p.write(text)
        sys.stderr.flush()

    def flush(self):
        for p in self.parts:
            p.flush()


def load_images(folder, limit, only=None):
    rows = list(csv.DictReader(open(os.path.join(folder, 'labels.csv'))))
    if only is not None:  # these files, in this order (the images Skeptic's --limit sample chose)
        by_file = {r['file']: r for r in rows}
        rows = [by_file[f] for f in only]
    rows = rows[:limit]
    xs = [np.asarray(Image.open(os.path.join(folder, r['file'])).convert('RGB'), dtype=np.float32) / 255.0 for r in rows]
    x = torch.from_numpy(np.stack(xs).transpose(0, 3, 1, 2).copy())
    y = torch.tensor([int(r['label']) for r in rows])
    return x, y, [r['file'] for r in rows]


def aa_commit(folder):
    """The fra31/auto-attack commit of DIR, when DIR is a git checkout or a bare mirror beside it."""
    for git_dir in (os.path.join(folder, '.git'), folder + '.git', os.environ.get('AUTOATTACK_GIT_DIR', '')):
        if git_dir and os.path.exists(git_dir):
            try:
                import subprocess
                return subprocess.run(['git', '--git-dir', git_dir, 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
            except Exception:
                pass
    return None


def track_attacks(adversary, model, x_all, broken_by, times):
    """
    Wraps each attack's perturb so that, per image, the first attack whose output is
    misclassified is recorded (AutoAttack's log has only counts), and each attack's wall and CPU
    seconds are added up in `times`. AutoAttack hands each attack the surviving rows of x; they
    are found in x_all by their bytes (the images are distinct).
    """
    index = {hashlib.sha1(x_all[i].numpy().tobytes()).hexdigest(): i for i in range(len(x_all))}

    def wrap(obj, name_of):
        inner = obj.perturb

        def perturb(x, y, *a, **kw):
            t0, c0 = time.time(), time.process_time()
            adv = inner(x, y, *a, **kw)
            t = times.setdefault(name_of(obj), {'seconds': 0.0, 'cpuSeconds': 0.0})
            t['seconds'] += time.time() - t0
            t['cpuSeconds'] += time.process_time() - c0
            with torch.no_grad():
                wrong = model(adv).argmax(1) != y
            for r in range(len(x)):
                i = index.get(hashlib.sha1(x[r].numpy().tobytes()).hexdigest())
                if i is not None and bool(wrong[r]) and broken_by[i] is None:
                    broken_by[i] = name_of(obj)
            return adv
        obj.perturb = perturb

    wrap(adversary.apgd, lambda o: 'apgd-' + o.loss)
    wrap(adversary.apgd_targeted, lambda o: 'apgd-t')
    wrap(adversary.fab, lambda o: 'fab-t' if o.targeted else 'fab')
    wrap(adversary.square, lambda o: 'square')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--autoattack', required=True)
    ap.add_argument('--model', required=True)
    ap.add_argument('--data', required=True)
    ap.add_argument('--eps', default='1,2,4,8', help='k/255 values, comma-separated')
    ap.add_argument('--limit', type=int, default=100)
    ap.add_argument('--version', default='standard')
    ap.add_argument('--norm', default='Linf')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--mean', default='0.4914,0.4822,0.4465')
    ap.add_argument('--std', default='0.2471,0.2435,0.2616')
    ap.add_argument('--out', help='also write the JSON here after each epsilon (a partial sweep survives an interrupt)')
    ap.add_argument('--files', help='a JSON array of image files (as labels.csv names them) to attack, in this order, instead of the first --limit')
    ap.add_argument('--check-logits', help='a JSON array of ONNX Runtime logits (one row per image, in the order of the images) to check the conversion')
    o = ap.parse_args()
    sys.path.insert(0, o.autoattack)
    from autoattack import AutoAttack

    torch.set_num_threads(o.threads)
    model = Normalized(OnnxTorch(o.model), [float(v) for v in o.mean.split(',')], [float(v) for v in o.std.split(',')]).eval()
    x, y, files = load_images(o.data, o.limit, json.load(open(o.files)) if o.files else None)
    with torch.no_grad():
        logits = model(x)
    clean = logits.argmax(1) == y
    out = {'images': len(files), 'files': files, 'clean': clean.int().tolist(), 'torch': torch.__version__,
           'autoattackCommit': aa_commit(o.autoattack), 'threads': o.threads,
           'ompWaitPolicy': os.environ.get('OMP_WAIT_POLICY'), 'ldPreload': os.environ.get('LD_PRELOAD', ''),
           'version': o.version, 'norm': o.norm, 'runs': []}
    if o.check_logits:
        ref = np.asarray(json.load(open(o.check_logits)), dtype=np.float32)
        z = logits.numpy()
        out['maxLogitDiff'] = float(np.abs(z - ref[: len(z)]).max())
        out['predictionsAgree'] = bool((z.argmax(1) == ref[: len(z)].argmax(1)).all())
        print('logits vs ONNX Runtime: max |diff| %.3g, predictions agree: %s' % (out['maxLogitDiff'], out['predictionsAgree']), file=sys.stderr)
    for k in [float(v) for v in o.eps.split(',')]:
        with redirect_stdout(sys.stderr):  # it prints its settings: stdout is for the JSON
            adversary = AutoAttack(model, norm=o.norm, eps=k / 255.0, version=o.version, seed=0, device='cpu')
        broken_by, attack_times = [None] * len(files), {}
        track_attacks(adversary, model, x, broken_by, attack_times)
        log = Tee(io.StringIO(), sys.stderr)
        load = os.getloadavg()[0]  # the machine is shared: how busy it was when this ε started
        t0, c0 = time.time(), time.process_time()
        with redirect_stdout(log):
            x_adv = adversary.run_standard_evaluation(x, y, bs=len(files))
        seconds, cpu = time.time() - t0, time.process_time() - c0
        with torch.no_grad():
            robust = (model(x_adv).argmax(1) == y) & clean
        linf = float((x_adv - x).abs().max())
        out['runs'].append({'eps255': k, 'robust': robust.int().tolist(), 'robustAccuracy': float(robust.float().mean()),
                            'brokenBy': broken_by, 'attackTimes': attack_times, 'seconds': seconds, 'cpuSeconds': cpu, 'loadAvg': load, 'maxLinf': linf,
                            'log': log.parts[0].getvalue().splitlines()})
        print('eps %g/255: robust %d/%d in %.1f s (CPU %.1f s)' % (k, int(robust.sum()), len(files), seconds, cpu), file=sys.stderr)
        if o.out:
            with open(o.out + '.tmp', 'w') as f:
                json.dump(out, f)
            os.replace(o.out + '.tmp', o.out)
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
