"""Fashion-MNIST from the Debian package dataset-fashion-mnist: gzipped IDX files, pixels scaled to [-1, 1].

Shared by train_classifier.py and train_unet.py. The IDX format (LeCun et al., MNIST page): a big-endian header
of two zero bytes, a type byte (0x08: unsigned byte) and the number of dimensions, then one big-endian uint32 per
dimension, then the values in C order."""
import gzip
import os

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {body.size} values for shape {shape}")
    return body.reshape(shape)


def load(split, directory=DEFAULT_DIR):
    """(images, labels): images (n, 28, 28) float32 in [-1, 1] (pixel / 127.5 - 1), labels (n,) int64."""
    image_file, label_file = FILES[split]
    for name in (image_file, label_file):
        if not os.path.exists(os.path.join(directory, name)):
            raise SystemExit(f"{os.path.join(directory, name)}: missing; install the Debian package "
                             "dataset-fashion-mnist (scripts/setup.sh does)")
    images = read_idx(os.path.join(directory, image_file)).astype(np.float32) / np.float32(127.5) - np.float32(1)
    labels = read_idx(os.path.join(directory, label_file)).astype(np.int64)
    return images, labels
