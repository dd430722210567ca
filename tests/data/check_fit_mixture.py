#!/usr/bin/python3
"""An independent computation of `scoresde fit-mixture` (numpy, Python's gzip): reads the same IDX files, fits the
class means and maximum-likelihood covariances of classes 0..K-1 from the first N images with np.cov(bias=True),
shrinks them as (1 - lambda) S + lambda tr(S)/d I, and compares with the header's weights and with the covariance
U diag(l) U^T rebuilt from the .npy beside it.

Usage: check_fit_mixture.py HEADER.json IMAGES.gz LABELS.gz N K LAMBDA
Prints the largest differences and exits 1 when one exceeds its bound: weights and means to 1e-12, covariances to
8 d eps |S|_F (the backward error of a symmetric eigensolver and of the reconstruction, with room to spare).
"""
import gzip
import json
import os
import sys

import numpy as np


def read_idx(path, rank):
    with gzip.open(path, "rb") as f:
        data = f.read()
    assert data[0] == 0 and data[1] == 0 and data[2] == 8 and data[3] == rank, path
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def main():
    header_path, images_path, labels_path = sys.argv[1:4]
    n, K, lam = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    images = read_idx(images_path, 3)[:n].reshape(n, -1).astype(np.float64) / 127.5 - 1.0
    labels = read_idx(labels_path, 1)[:n]
    with open(header_path) as f:
        header = json.load(f)
    arrays = np.load(os.path.join(os.path.dirname(header_path), header["arrays"]))
    d = images.shape[1]
    assert arrays.shape == (K, d + 2, d), arrays.shape
    counts = np.array([np.sum(labels == k) for k in range(K)], dtype=np.float64)
    weight_error = np.max(np.abs(counts / counts.sum() - np.array(header["weights"])))
    worst = {"weights": weight_error, "means": 0.0, "covariances": 0.0, "covariance_bound": 0.0}
    failed = weight_error > 1e-12
    for k in range(K):
        xk = images[labels == k]
        mean = xk.mean(axis=0)
        S = np.cov(xk, rowvar=False, bias=True)
        S = (1 - lam) * S + lam * np.trace(S) / d * np.eye(d)
        U = arrays[k, 2:].T
        rebuilt = U @ np.diag(arrays[k, 1]) @ U.T
        mean_error = np.max(np.abs(mean - arrays[k, 0]))
        cov_error = np.max(np.abs(S - rebuilt))
        bound = 8 * d * np.finfo(np.float64).eps * np.linalg.norm(S)
        worst["means"] = max(worst["means"], mean_error)
        worst["covariances"] = max(worst["covariances"], cov_error)
        worst["covariance_bound"] = max(worst["covariance_bound"], bound)
        failed = failed or mean_error > 1e-12 or cov_error > bound
    print(json.dumps(worst))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
