"""Float ImageNet classifiers for bench/device/float.sh, exported to ONNX with the device machine's
own PyTorch and torchvision: the fixtures' only ImageNet model is int8, whose quantized nodes have
no WebGPU kernels. The weights are torchvision's random initialisation (seed 0): its pretrained
weights would need the internet, and a forward pass costs the same whatever the weights are.

    python3 bench/device/export-float.py OUT_DIR mobilenet_v2 resnet50 ...
"""
import os
import sys

import torch
import torchvision

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name in sys.argv[2:]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    path = os.path.join(out, f"{name}.onnx")
    args = dict(input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, opset_version=17)
    try:
        # the TorchScript exporter: opset 17, which every WebGPU kernel the model uses covers
        torch.onnx.export(model, (x,), path, dynamo=False, **args)
    except TypeError:
        torch.onnx.export(model, (x,), path, **args)
    print(f"{path}: {os.path.getsize(path) / 2**20:.1f} MiB")
