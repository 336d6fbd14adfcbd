#!/usr/bin/python3
"""Train the Skeptic demo model: a small strided CNN on the textured-shapes data.

This is the recipe that made models/demo/shapes-cnn.onnx. Skeptic itself needs no Python.

    node models/demo/make-data.mjs --split all         # train 8000, test 400, conflict 200
    /usr/bin/python3 models/demo/train.py              # CPU only, about a minute on 2 cores

Needs Debian's python3-torch (1.13), python3-torchvision (for PIL via its deps), python3-onnx,
python3-numpy, python3-pil. Deterministic: fixed seed, 2 threads, no data augmentation.

The architecture is deliberately naive: three 3x3 convolutions of stride 2 (no blur pooling,
no anti-aliasing), global average pooling and a linear layer. Stride-2 subsampling breaks shift
equivariance (Azulay & Weiss 2019), so the model is honestly fragile to 1-pixel translations;
and since each class's texture predicts its label 95% of the time in the training data, the
model learns texture as a shortcut (Geirhos et al. 2019).
"""
import argparse
import csv
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
PREPROCESSING = {"scale": 1, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "channelOrder": "rgb"}


class ShapesCNN(nn.Module):
    """conv3x3 stride 1, then three conv3x3 stride 2 (32 -> 16 -> 8 -> 4), each with batch norm
    (folded into the convolutions at export) and ReLU; global average pooling; linear."""

    def __init__(self, n_classes=4, widths=(16, 32, 32, 64)):
        super().__init__()
        layers, cin = [], 3
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU()]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)                     # exports as GlobalAveragePool
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def read_manifest(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_images(manifest_path, rows):
    base = os.path.dirname(manifest_path)
    arr = np.empty((len(rows), 32, 32, 3), dtype=np.uint8)
    for i, r in enumerate(rows):
        with Image.open(os.path.join(base, r["path"])) as im:
            arr[i] = np.asarray(im.convert("RGB"))
    # NCHW float32, pixel/255 then (x - 0.5) / 0.5, i.e. [-1, 1]
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255.0)
    return (x - 0.5) / 0.5


def texture_of_row(row):
    # train/test file names end in "-<pattern>.png"; map the pattern back to its class
    return row["path"].rsplit("-", 1)[1][: -len(".png")]


@torch.no_grad()
def predict(model, x, batch=500):
    model.eval()
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).argmax(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--out", default=os.path.join(HERE, "shapes-cnn.onnx"))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--widths", default="16,32,32,64")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    manifests = {s: os.path.join(args.data, s + ".csv") for s in ("train", "test", "conflict")}
    for s, p in manifests.items():
        if not os.path.exists(p):
            sys.exit(f"train.py: {p} is missing; run: node models/demo/make-data.mjs --split all")
    rows = {s: read_manifest(p) for s, p in manifests.items()}
    classes = sorted({r["label"] for r in rows["train"]})
    cidx = {c: i for i, c in enumerate(classes)}
    with open(os.path.join(args.data, "train.stamp.json")) as f:
        texture_of = json.load(f)["textureOf"]          # class -> pattern name
    pattern_class = {v: k for k, v in texture_of.items()}

    t0 = time.time()
    x = {s: load_images(manifests[s], rows[s]) for s in manifests}
    y = {s: torch.tensor([cidx[r["label"]] for r in rows[s]]) for s in ("train", "test")}
    print(f"loaded {', '.join(f'{s} {len(x[s])}' for s in x)} images in {time.time() - t0:.1f} s; classes {classes}")

    model = ShapesCNN(len(classes), tuple(int(w) for w in args.widths.split(",")))
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(x["train"]) + 63) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x["train"]), generator=g)
        total = 0.0
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(x["train"][idx]), y["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = (predict(model, x["test"]) == y["test"]).float().mean().item()
        print(f"epoch {epoch + 1:2d}  loss {total / len(perm):.4f}  test acc {acc:.4f}")
    train_s = time.time() - t0

    # ---------------------------------------------------------------- evaluation
    res = {"params": n_params, "train_seconds": round(train_s, 1)}
    for s in ("train", "test"):
        pred = predict(model, x[s])
        res[f"{s}_acc"] = (pred == y[s]).float().mean().item()
        tied = torch.tensor([pattern_class[texture_of_row(r)] == r["label"] for r in rows[s]])
        res[f"{s}_acc_tied"] = (pred[tied] == y[s][tied]).float().mean().item()
        res[f"{s}_acc_untied"] = (pred[~tied] == y[s][~tied]).float().mean().item()
        res[f"{s}_n_untied"] = int((~tied).sum())
        # on untied images: how often the model names the texture's class instead of the shape
        tex = torch.tensor([cidx[pattern_class[texture_of_row(r)]] for r in rows[s]])
        res[f"{s}_untied_by_texture"] = (pred[~tied] == tex[~tied]).float().mean().item()
    pred = predict(model, x["conflict"])
    shape = torch.tensor([cidx[r["shape"]] for r in rows["conflict"]])
    tex = torch.tensor([cidx[r["texture"]] for r in rows["conflict"]])
    by_shape = int((pred == shape).sum())
    by_tex = int((pred == tex).sum())
    n = len(pred)
    res.update(
        conflict_n=n,
        conflict_shape=by_shape / n,
        conflict_texture=by_tex / n,
        conflict_other=(n - by_shape - by_tex) / n,
        shape_bias=by_shape / max(1, by_shape + by_tex),  # Geirhos: of shape-or-texture decisions
    )

    # ---------------------------------------------------------------- export
    model.eval()
    tmp = args.out + ".tmp"
    torch.onnx.export(
        model, torch.zeros(1, 3, 32, 32), tmp, opset_version=13,
        input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    import onnx
    m = onnx.load(tmp)
    os.remove(tmp)
    m.doc_string = "Skeptic demo: small strided CNN on textured shapes (models/demo/README.md)"
    m.producer_name = "skeptic models/demo/train.py"
    del m.metadata_props[:]
    for k, v in (("skeptic.preprocessing", json.dumps(PREPROCESSING, separators=(",", ":"))),
                 ("skeptic.labels", json.dumps(classes, separators=(",", ":")))):
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, args.out)
    labels_path = os.path.splitext(args.out)[0] + ".labels.txt"
    with open(labels_path, "w") as f:
        f.write("\n".join(classes) + "\n")
    res["onnx_bytes"] = os.path.getsize(args.out)
    res["ops"] = sorted({n.op_type for n in m.graph.node})

    print(json.dumps(res, indent=1))
    print(f"wrote {args.out} ({res['onnx_bytes']} bytes) and {labels_path}")


if __name__ == "__main__":
    main()
