"""Reference side of bench/corruptions-reference.ts: bethgelab/imagecorruptions on the same images.

usage: corruptions_reference.py WORKDIR IMAGECORRUPTIONS_DIR N_IMAGES NAMES [ROBUSTNESS_DIR]

WORKDIR holds clean_<i>.png (224x224 RGB) and Skeptic's outputs ours_<i>_<name>_<s>.npy (float32
C x H x W in [0,1]). IMAGECORRUPTIONS_DIR is a checkout of github.com/bethgelab/imagecorruptions
(the package folder `imagecorruptions/` inside it, with its frost photographs). Each reference
function is called on the PIL image and its float output divided by 255 (not the package's
corrupt(), which truncates to uint8). Prints a Markdown table, per corruption and severity, of
means over the images:
  MAD      mean |ours - reference| per value (meaningful where nothing is drawn at random)
  |d| ours / ref    mean |corrupted - clean|
  sd ours / ref     standard deviation of (corrupted - clean)
  p90 ours / ref    90th percentile of |corrupted - clean|
"""
import sys
import numpy as np
from PIL import Image

work, pkg, n_images, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(',')
sys.path.insert(0, pkg)
import warnings
warnings.filterwarnings('ignore')
from imagecorruptions import corruption_dict  # noqa: E402

# elastic_transform: Skeptic follows make_imagenet_c.py (the version AlexNet's errors were measured
# on), which imagecorruptions rewrote; with a checkout of hendrycks/robustness, that function is
# taken from the file itself (its other code needs Wand and the ImageNet folders, so only the one
# function is run) and compared instead.
if len(sys.argv) > 5:
    import ast
    import cv2
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian
    path = f'{sys.argv[5]}/ImageNet-C/create_c/make_imagenet_c.py'
    src = open(path).read()
    fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == 'elastic_transform')
    ns = {'np': np, 'cv2': cv2, 'gaussian': gaussian, 'map_coordinates': map_coordinates}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, 'exec'), ns)
    corruption_dict = dict(corruption_dict, elastic_transform=ns['elastic_transform'])
    print('elastic_transform: make_imagenet_c.py from', sys.argv[5])

np.random.seed(0)
print('| corruption | s | MAD | \\|Δ\\| ours | \\|Δ\\| ref | sd Δ ours | sd Δ ref | p90 ours | p90 ref |')
print('|---|---|---|---|---|---|---|---|---|')
for name in names:
    for s in range(1, 6):
        rows = []
        for i in range(n_images):
            pil = Image.open(f'{work}/clean_{i}.png').convert('RGB')
            clean = np.asarray(pil, dtype=np.float64) / 255
            ref = np.asarray(corruption_dict[name](pil, s), dtype=np.float64) / 255
            ours = np.load(f'{work}/ours_{i}_{name}_{s}.npy').astype(np.float64).transpose(1, 2, 0)
            do, dr = ours - clean, ref - clean
            rows.append([np.abs(ours - ref).mean(), np.abs(do).mean(), np.abs(dr).mean(), do.std(), dr.std(),
                         np.percentile(np.abs(do), 90), np.percentile(np.abs(dr), 90)])
        m = np.mean(rows, axis=0)
        print(f'| {name} | {s} | ' + ' | '.join(f'{v:.4f}' for v in m) + ' |', flush=True)
    if name == 'pixelate':
        # the reference's two resizes on float ('F') planes: Pillow's weights without its 8-bit
        # rounding, which is what Skeptic computes; MAD here isolates that rounding
        c = [0.6, 0.5, 0.4, 0.3, 0.25]
        for s in range(1, 6):
            mads = []
            for i in range(n_images):
                clean = np.asarray(Image.open(f'{work}/clean_{i}.png').convert('RGB'), dtype=np.float32) / 255
                h, w = clean.shape[:2]
                ref = np.stack([np.asarray(Image.fromarray(clean[..., k], 'F').resize((int(w * c[s - 1]), int(h * c[s - 1])), Image.BOX)
                                           .resize((w, h), Image.NEAREST)) for k in range(3)], axis=2)
                ours = np.load(f'{work}/ours_{i}_{name}_{s}.npy').astype(np.float64).transpose(1, 2, 0)
                mads.append(np.abs(ours - ref).mean())
            print(f'| pixelate (Pillow on float planes) | {s} | {np.mean(mads):.2e} | | | | | | |', flush=True)
