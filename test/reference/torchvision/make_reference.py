#!/usr/bin/python3
"""Writes torchvision's preprocessing output for a handful of images: the reference that
test/unit/preprocess-reference.test.ts holds Skeptic's decoder and resampler to, pixel for pixel.

Run with Debian's Python (python3-torchvision 0.14, python3-pil 9.4):
    /usr/bin/python3 test/reference/torchvision/make_reference.py
It reads fixture JPEGs from ../shared/fixtures/imagenet_samples (not copied here), makes two
small inputs of its own (cmyk.jpg: a CMYK JPEG with a real K channel; tiny.png: an 11x7 crop
for upscaling the whole image) and writes reference.json (the cases) and reference.bin (the
uint8 values, CHW, one case after another). Each case is
    Image.open(f).convert('RGB' or 'L') -> Resize(S or (h, w), interpolation) [-> CenterCrop((h, w))]
    -> ToTensor
on PIL images, the path torchvision's ImageFolder datasets take; values are round(tensor * 255).
Cases with a 'resampler' ('tensor' or 'tensor-antialias') resize the uint8 tensor instead:
    PILToTensor -> Resize(..., antialias=False or True) [-> CenterCrop]
the path of pipelines that decode to tensors (nearest, bilinear and bicubic only).
"""
import json
import os
import sys

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode as IM

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, '../../../../shared/fixtures'))

FILTERS = {
    'nearest': IM.NEAREST, 'box': IM.BOX, 'bilinear': IM.BILINEAR,
    'hamming': IM.HAMMING, 'bicubic': IM.BICUBIC, 'lanczos': IM.LANCZOS,
}

# Fixture images: a plain RGB JPEG; one with an ICC profile (which PIL ignores); a grayscale
# ('L') JPEG in portrait; one with odd width and height.
FIXTURE_IMAGES = [
    'imagenet_samples/images/n01440764_tench.JPEG',
    'imagenet_samples/images/n03095699_container_ship.JPEG',
    'imagenet_samples/images/n03908714_pencil_sharpener.JPEG',
    'imagenet_samples/images/n02128925_jaguar.JPEG',
]

# Geometries (spec fields as Skeptic's DecodeSpec names them): downscale with a short-side
# resize and an off-centre-parity crop, a straight downscale of the whole image, and an upscale.
BIG = [
    {'resizeShortSide': 45, 'height': 21, 'width': 27},
    {'height': 19, 'width': 23},
    {'resizeShortSide': 613, 'height': 17, 'width': 15},
]
# The tiny input is upscaled whole, so every border pixel is covered.
TINY = [
    {'resizeShortSide': 30, 'height': 25, 'width': 29},
    {'height': 29, 'width': 40},
]


def make_inputs():
    src = Image.open(os.path.join(FIXTURES, FIXTURE_IMAGES[0])).convert('RGB')
    # CMYK with a real black channel: K = 255 - max(R, G, B), C = (255 - R - K) scaled back up.
    a = np.asarray(src.crop((180, 120, 228, 160))).astype(np.float64)
    k = 255 - a.max(axis=2)
    denom = np.maximum(255 - k, 1)[..., None]
    cmy = (255 - a - k[..., None]) / denom * 255
    cmyk = np.concatenate([cmy, k[..., None]], axis=2).round().clip(0, 255).astype(np.uint8)
    Image.fromarray(cmyk, 'CMYK').save(os.path.join(HERE, 'cmyk.jpg'), quality=90)
    src.crop((200, 150, 211, 157)).save(os.path.join(HERE, 'tiny.png'))


def transform(spec, interp, resampler='pil'):
    size = spec['resizeShortSide'] if 'resizeShortSide' in spec else (spec['height'], spec['width'])
    crop = [T.CenterCrop((spec['height'], spec['width']))] if 'resizeShortSide' in spec else []
    if resampler == 'pil':
        return T.Compose([T.Resize(size, interpolation=FILTERS[interp])] + crop + [T.ToTensor()])
    antialias = resampler == 'tensor-antialias'
    # uint8 in, uint8 out; scaled to [0,1] like ToTensor so every case is read the same way.
    return T.Compose([T.PILToTensor(), T.Resize(size, interpolation=FILTERS[interp], antialias=antialias)] + crop
                     + [T.Lambda(lambda t: t.float() / 255)])


TENSOR_CASES = [('tensor', ['nearest', 'bilinear', 'bicubic']), ('tensor-antialias', ['bilinear', 'bicubic'])]


def main():
    make_inputs()
    inputs = [('fixture', p, BIG, [3]) for p in FIXTURE_IMAGES]
    inputs[0] = ('fixture', FIXTURE_IMAGES[0], BIG, [3, 1])
    inputs += [('local', 'cmyk.jpg', BIG, [3, 1]), ('local', 'tiny.png', TINY, [3])]
    runs = [(i, 'pil', list(FILTERS)) for i in inputs]
    # The tensor path on a colour and a grayscale fixture and on the tiny PNG (upscaling).
    for i in (inputs[0], inputs[2], inputs[5]):
        runs += [((i[0], i[1], i[2], [i[3][0]]), r, f) for r, f in TENSOR_CASES]
    cases, blob = [], bytearray()
    for (kind, path, geometries, channel_counts), resampler, filters in runs:
        full = os.path.join(FIXTURES, path) if kind == 'fixture' else os.path.join(HERE, path)
        for channels in channel_counts:
            for spec in geometries:
                for interp in filters:
                    img = Image.open(full).convert('RGB' if channels == 3 else 'L')
                    t = transform(spec, interp, resampler)(img)
                    assert tuple(t.shape) == (channels, spec['height'], spec['width']), t.shape
                    u8 = (t * 255).round().to(torch.uint8).numpy().tobytes()
                    case = {'input': f'{kind}:{path}', 'mode': Image.open(full).mode, 'channels': channels,
                            **spec, 'interpolation': interp, 'offset': len(blob), 'length': len(u8)}
                    if resampler != 'pil':
                        case['resampler'] = resampler
                    cases.append(case)
                    blob += u8
    with open(os.path.join(HERE, 'reference.bin'), 'wb') as f:
        f.write(blob)
    meta = {
        'generator': 'test/reference/torchvision/make_reference.py',
        'versions': {'torchvision': torchvision.__version__, 'torch': torch.__version__, 'PIL': PIL.__version__,
                     'python': sys.version.split()[0]},
        'layout': 'uint8 CHW per case, round(ToTensor() * 255), at offset in reference.bin',
        'cases': cases,
    }
    with open(os.path.join(HERE, 'reference.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')
    print(f'{len(cases)} cases, {len(blob)} bytes')


if __name__ == '__main__':
    main()
