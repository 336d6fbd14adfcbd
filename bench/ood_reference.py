"""NumPy/SciPy reference for Skeptic's feature-space OOD detectors (bench/ood-reference.ts).

Reads the JSON that bench/ood-reference.ts writes (fit features and classes, scored features,
the classifier head, Skeptic's scores and fitted settings), recomputes every detector the way
the papers' and OpenOOD's code do (Mahalanobis with pinv of the tied covariance, brute-force KNN
on normalised features, ViM with -pinv(W)b and numpy's eigh, ReAct with numpy.percentile) and
prints the largest relative difference and the rank correlation per detector.
"""
import json
import sys

import numpy as np
from numpy.linalg import norm, pinv
from scipy.special import logsumexp

d = json.load(open(sys.argv[1]))
X = np.array(d["fit"], dtype=np.float64)
c = np.array(d["cls"])
T = np.array(d["test"], dtype=np.float64)
K, D = d["K"], d["d"]
W = np.array(d["W"]).reshape(K, D)
b = np.array(d["b"])
k = d["info"]["knn"]["k"]
ours = {name: np.array([s[name] for s in d["scores"]]) for name in ["mahalanobis", "knn", "vim", "react"]}

classes = sorted(set(c.tolist()))
mus = np.stack([X[c == j].mean(0) for j in classes])
R = X - mus[[classes.index(j) for j in c]]
P = pinv(R.T @ R / len(X))
maha = -np.min(np.stack([np.einsum("ij,jk,ik->i", T - m, P, T - m) for m in mus], 1), 1)

Xn = X / norm(X, axis=1, keepdims=True)
Tn = T / norm(T, axis=1, keepdims=True)
knn = -np.sort(np.sqrt(((Tn[:, None, :] - Xn[None, :, :]) ** 2).sum(-1)), 1)[:, k - 1]

u = -pinv(W) @ b
ev, V = np.linalg.eigh((X - u).T @ (X - u) / len(X))
NS = V[:, np.argsort(-ev)[d["info"]["vim"]["dim"]:]]
alpha = (X @ W.T + b).max(1).mean() / norm((X - u) @ NS, axis=1).mean()
vim = logsumexp(T @ W.T + b, 1) - alpha * norm((T - u) @ NS, axis=1)

clip = np.percentile(X.flatten(), d["info"]["react"]["percentile"])
react = logsumexp(np.minimum(T, clip) @ W.T + b, 1)


def ranks(x):
    return np.argsort(np.argsort(x))


for name, ref in [("mahalanobis", maha), ("knn", knn), ("vim", vim), ("react", react)]:
    rel = float(np.max(np.abs(ours[name] - ref) / np.maximum(1, np.abs(ref))))
    rho = float(np.corrcoef(ranks(ours[name]), ranks(ref))[0, 1])
    print(f"{name:12s} max relative difference {rel:.2e}  rank correlation {rho:.6f}")
print(f"ViM alpha: Skeptic {d['info']['vim']['alpha']:.10f}, NumPy {alpha:.10f}; ReAct clip: Skeptic {d['info']['react']['clip']:.10f}, NumPy {clip:.10f}")
