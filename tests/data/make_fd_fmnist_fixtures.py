#!/usr/bin/python3
"""Writes the independent results that tests/test_fd_fmnist.cpp compares with (run by ctest before it, with Debian's
python3-numpy, python3-scipy and python3-torch):

    /usr/bin/python3 tests/data/make_fd_fmnist_fixtures.py CLASSIFIER.npz OUT_DIR

writes into OUT_DIR:
    feature_x.npy, feature_y.npy  (n, 16) and (m, 16) float64 feature sets (x: exponentials of correlated normals,
                   y: a shifted Gaussian with its own covariance), fixed seed
    fd_scipy.json  {"fd": ...}: their Frechet distance |m_x - m_y|^2 + tr(S_x + S_y - 2 sqrtm(S_x S_y)) with
                   numpy's sample moments (denominator n - 1) and scipy.linalg.sqrtm of the non-symmetric product
                   (Schur method): an algorithm other than the C++ one (symmetric eigendecompositions)
    images.npy     (8, 784) float64 images in [-1, 1]: random pixels, a blank and a saturated image, stripes
    torch_logits.npy, torch_features.npy  (8, 10) and (8, 256): PyTorch's forward pass of the classifier (nn.Linear
                   and relu in float64, from the stored float32 weights)
"""
import json
import os
import sys

import numpy as np
import scipy.linalg
import torch

classifier_path, out_dir = sys.argv[1], sys.argv[2]
os.makedirs(out_dir, exist_ok=True)
rng = np.random.default_rng(20261207)

d = 16
a = rng.normal(size=(d, d)) / np.sqrt(d)
x = np.exp(0.5 * rng.normal(size=(120, d)) @ a)
b = rng.normal(size=(d, d)) / np.sqrt(d)
y = 0.3 + rng.normal(size=(150, d)) @ b
np.save(os.path.join(out_dir, "feature_x.npy"), x)
np.save(os.path.join(out_dir, "feature_y.npy"), y)
sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
cross = scipy.linalg.sqrtm(sx @ sy)
fd = float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(sx) + np.trace(sy) - 2.0 * np.trace(cross).real)
with open(os.path.join(out_dir, "fd_scipy.json"), "w") as f:
    json.dump({"fd": fd}, f)

images = rng.uniform(-1.0, 1.0, size=(8, 784))
images[4] = -1.0
images[5] = 1.0
images[6] = np.where(np.arange(784) % 28 < 14, 1.0, -1.0)
images[7] = np.where((np.arange(784) // 28) % 4 < 2, 0.5, -0.75)
np.save(os.path.join(out_dir, "images.npy"), images)

weights = np.load(classifier_path)
layers = []
for k in (1, 2, 3):
    w = torch.from_numpy(weights[f"W{k}"].astype(np.float64))
    linear = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(w)
        linear.bias.copy_(torch.from_numpy(weights[f"b{k}"].astype(np.float64)))
    layers.append(linear)
with torch.no_grad():
    t = torch.from_numpy(images)
    features = torch.relu(layers[1](torch.relu(layers[0](t))))
    logits = layers[2](features)
np.save(os.path.join(out_dir, "torch_features.npy"), features.numpy())
np.save(os.path.join(out_dir, "torch_logits.npy"), logits.numpy())
