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
    [--limit 100] [--version standard] [--threads 2] [--mean ..] [--std ..]
DIR for --autoattack holds the `autoattack` package (a checkout of fra31/auto-attack).
"""
import argparse
import csv
import io
import json
import os
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
        self.params = nn.ParameterDict()
        self.names = {}
        for t in g.initializer:
            key = 'p%d' % len(self.names)
            self.names[t.name] = key
            self.params[key] = nn.Parameter(torch.from_numpy(numpy_helper.to_array(t).copy()), requires_grad=False)
        inits = set(self.names)
        self.input = [i.name for i in g.input if i.name not in inits][0]
        self.output = g.output[0].name
        self.nodes = []
        for n in g.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if n.op_type not in ('Conv', 'Relu', 'Add', 'Flatten', 'Gemm', 'MatMul', 'Reshape'):
                raise SystemExit('reference.py: no torch mapping for ONNX op %s' % n.op_type)
            self.nodes.append((n.op_type, list(n.input), list(n.output), attrs))

    def forward(self, x):
        env = {self.input: x}
        get = lambda name: env[name] if name in env else self.params[self.names[name]]
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
                y = get(ins[0]).reshape([int(v) for v in get(ins[1]).tolist()])
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


def load_images(folder, limit):
    rows = list(csv.DictReader(open(os.path.join(folder, 'labels.csv'))))[:limit]
    xs = [np.asarray(Image.open(os.path.join(folder, r['file'])).convert('RGB'), dtype=np.float32) / 255.0 for r in rows]
    x = torch.from_numpy(np.stack(xs).transpose(0, 3, 1, 2).copy())
    y = torch.tensor([int(r['label']) for r in rows])
    return x, y, [r['file'] for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--autoattack', required=True)
    ap.add_argument('--model', required=True)
    ap.add_argument('--data', required=True)
    ap.add_argument('--eps', default='1,2,4,8', help='k/255 values, comma-separated')
    ap.add_argument('--limit', type=int, default=100)
    ap.add_argument('--version', default='standard')
    ap.add_argument('--norm', default='Linf')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--mean', default='0.4914,0.4822,0.4465')
    ap.add_argument('--std', default='0.2471,0.2435,0.2616')
    ap.add_argument('--out', help='also write the JSON here after each epsilon (a partial sweep survives an interrupt)')
    ap.add_argument('--check-logits', help='a .npy of ONNX Runtime logits for the same images, to check the conversion')
    o = ap.parse_args()
    sys.path.insert(0, o.autoattack)
    from autoattack import AutoAttack

    torch.set_num_threads(o.threads)
    model = Normalized(OnnxTorch(o.model), [float(v) for v in o.mean.split(',')], [float(v) for v in o.std.split(',')]).eval()
    x, y, files = load_images(o.data, o.limit)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    out = {'images': len(files), 'files': files, 'clean': clean.int().tolist(), 'torch': torch.__version__,
           'threads': o.threads, 'version': o.version, 'norm': o.norm, 'runs': []}
    if o.check_logits:
        with torch.no_grad():
            z = model(x).numpy()
        ref = np.load(o.check_logits)
        out['maxLogitDiff'] = float(np.abs(z - ref[: len(z)]).max())
    for k in [float(v) for v in o.eps.split(',')]:
        adversary = AutoAttack(model, norm=o.norm, eps=k / 255.0, version=o.version, seed=0, device='cpu')
        log = Tee(io.StringIO(), sys.stderr)
        t0 = time.time()
        with redirect_stdout(log):
            x_adv = adversary.run_standard_evaluation(x, y, bs=len(files))
        seconds = time.time() - t0
        with torch.no_grad():
            robust = (model(x_adv).argmax(1) == y) & clean
        linf = float((x_adv - x).abs().max())
        out['runs'].append({'eps255': k, 'robust': robust.int().tolist(), 'robustAccuracy': float(robust.float().mean()),
                            'seconds': seconds, 'maxLinf': linf, 'log': log.parts[0].getvalue().splitlines()})
        print('eps %g/255: robust %d/%d in %.1f s' % (k, int(robust.sum()), len(files), seconds), file=sys.stderr)
        if o.out:
            with open(o.out + '.tmp', 'w') as f:
                json.dump(out, f)
            os.replace(o.out + '.tmp', o.out)
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
