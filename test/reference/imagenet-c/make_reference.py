"""Writes cases.json: outputs of bethgelab/imagecorruptions (and the scipy calls it makes) on a
tiny seeded image, for test/unit/imagenet-c.test.ts. Deterministic parts only (the reference's
random draws cannot be fed to it, except glass blur's loop, re-run here with given draws).

usage: /usr/bin/python3 make_reference.py IMAGECORRUPTIONS_CHECKOUT
(Debian: python3-numpy python3-scipy python3-skimage python3-opencv python3-numba python3-pil)
"""
import json, os, sys
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter1d, map_coordinates

sys.path.insert(0, sys.argv[1])
import warnings
warnings.filterwarnings('ignore')
from imagecorruptions.corruptions import zoom_blur, gaussian_blur, saturate, _motion_blur  # noqa: E402

rs = np.random.RandomState(0)
img = rs.randint(0, 256, size=(10, 11, 3)).astype(np.uint8)
pil = Image.fromarray(img)
chw = lambda a: np.asarray(a, dtype=np.float64).transpose(2, 0, 1).ravel().round(9).tolist()
out = {'image': img.transpose(2, 0, 1).ravel().tolist(), 'height': 10, 'width': 11}
out['zoom_blur'] = [chw(zoom_blur(pil, s) / 255.) for s in range(1, 6)]
out['gaussian_blur'] = [chw(gaussian_blur(pil, s) / 255.) for s in range(1, 6)]
out['saturate'] = [chw(saturate(pil, s) / 255.) for s in range(1, 6)]
out['motion'] = [{'radius': r, 'sigma': sg, 'angle': a, 'out': chw(_motion_blur(np.array(pil), r, sg, a) / 255.)}
                 for r, sg, a in [(10, 3, 30.0), (15, 5, -40.0), (3, 1, 80.0)]]
imp = np.zeros(41); imp[20] = 1
out['gaussian_weights'] = [{'sigma': sg, 'truncate': t, 'filtered': gaussian_filter1d(imp, sg, truncate=t, mode='constant').round(12).tolist()}
                           for sg, t in [(1.5, 4), (0.7, 4), (2.24, 3), (0.32, 3)]]
plane = rs.rand(5, 6)
coords = [[-1.7, -0.3, 0.0, 2.5, 4.2, 4.9, 5.6, -2.4], [-0.6, 5.7, 3.3, -1.2, 6.4, 0.0, 2.2, 7.1]]
out['map_coordinates'] = {'plane': plane.ravel().round(12).tolist(), 'coords': coords,
                          'values': map_coordinates(plane, coords, order=1, mode='reflect').round(12).tolist()}
# glass blur's loop with given draws: pixel ids through the reference's tuple "swap" of views
H, W, d, iters = 8, 7, 2, 2
draws = rs.randint(-d, d, size=(iters * (H - 2 * d) * (W - 2 * d), 2))
x = np.arange(H * W).reshape(H, W, 1)
k = 0
for i in range(iters):
    for h in range(H - d, d, -1):
        for w in range(W - d, d, -1):
            dx, dy = draws[k]; k += 1
            hp, wp = h + dy, w + dx
            x[h, w], x[hp, wp] = x[hp, wp], x[h, w]
out['glass'] = {'H': H, 'W': W, 'd': d, 'iterations': iters, 'draws': draws.ravel().tolist()[:2 * k], 'index': x.ravel().tolist()}
# pixelate: imagecorruptions' (Pillow BOX down, NEAREST up on the 8-bit image) and the same two
# resizes on float ('F') planes, where Pillow uses its unrounded weights and keeps the floats
from imagecorruptions.corruptions import pixelate  # noqa: E402
def pixelate_float(a, c):
    h, w = a.shape[:2]
    planes = [np.asarray(Image.fromarray(a[..., k].astype(np.float32), 'F').resize((int(w * c), int(h * c)), Image.BOX)
                         .resize((w, h), Image.NEAREST), dtype=np.float64) for k in range(a.shape[2])]
    return np.stack(planes, axis=2)
out['pixelate'] = [{'factor': c, 'uint8': chw(np.asarray(pixelate(pil, s)) / 255.), 'float': chw(pixelate_float(img / 255., c))}
                   for s, c in enumerate([0.6, 0.5, 0.4, 0.3, 0.25], start=1)]
# spatter's deterministic steps (OpenCV and skimage, image/spatter.ts) on a small liquid layer drawn
# as the reference draws it (own generator, so the cases above stay as they were)
import cv2  # noqa: E402
from skimage.filters import gaussian  # noqa: E402
rs2 = np.random.RandomState(1)
sH, sW = 20, 22
noise = rs2.normal(size=(sH, sW), loc=0.65, scale=0.3).round(6)
liquid = gaussian(noise, sigma=1.0); liquid[liquid < 0.68] = 0
l8 = (liquid * 255).astype(np.uint8)
edges = cv2.Canny(l8, 50, 150)
dist = cv2.distanceTransform(255 - edges, cv2.DIST_L2, 5)
_, trunc = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
d8 = cv2.blur(trunc, (3, 3)).astype(np.uint8)
eq = cv2.equalizeHist(d8)
emb = cv2.filter2D(eq, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
fin = cv2.blur(emb, (3, 3)).astype(np.float32)
mud = gaussian((liquid > 0.68).astype(np.float32), sigma=1.5)
smooth = (gaussian(rs2.rand(sH, sW), sigma=1.2) * 765).clip(0, 255).astype(np.uint8)  # weak and strong edges, a spread histogram
sparse = np.full((sH, sW), 9, np.uint8); sparse[3, 4] = sparse[15, 19] = 0  # long chamfer paths
u8 = lambda a: a.ravel().tolist()
out['spatter'] = {'H': sH, 'W': sW, 'noise': u8(noise), 'liquid': u8(liquid.round(12)), 'layer8': u8(l8), 'canny': u8(edges),
                  'dist': u8(dist), 'blur8': u8(d8), 'equalized': u8(eq), 'emboss': u8(emb), 'final': u8(fin),
                  'mud': u8(mud.astype(np.float64).round(7)), 'smooth': u8(smooth), 'smoothCanny': u8(cv2.Canny(smooth, 50, 150)),
                  'smoothEqualized': u8(cv2.equalizeHist(smooth)), 'smoothBlur': u8(cv2.blur(smooth.astype(np.float32) / 7, (3, 3)).astype(np.float64).round(5)),
                  'sparseDist': u8(cv2.distanceTransform(sparse, cv2.DIST_L2, 5))}
# spatter's whole output at every severity with the layer's normal draws given (loc + scale·z)
from imagecorruptions import corruptions as ic  # noqa: E402
z = rs2.randn(sH, sW).round(6)
simg = rs2.randint(0, 256, size=(sH, sW, 3)).astype(np.uint8)
real_normal = np.random.normal
np.random.normal = lambda size, loc, scale: loc + scale * z
out['spatter']['z'] = u8(z)
out['spatter']['image'] = u8(simg.transpose(2, 0, 1))
out['spatter']['out'] = [u8(np.asarray(ic.spatter(Image.fromarray(simg), s), dtype=np.float64).transpose(2, 0, 1).round(9) / 255.) for s in range(1, 6)]
np.random.normal = real_normal
json.dump(out, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cases.json'), 'w'))
print('cases.json written')
