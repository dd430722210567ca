#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets whose formats numpy and the standard library write: corpus/npy,
npz, csv, time_grid, idx, mixture_json. Small valid files and near-valid ones (truncated, a wrong field, a header
claiming a huge shape), a few KB per target. The checkpoint, eigen-mixture, study.ini and results.json seeds come
from the library itself (write_seeds.cpp). Run from anywhere: python3 tests/fuzz/make_corpus.py"""
import gzip
import io
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, a)
    else:
        np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


def npy_header_only(shape, descr="<f8", fortran=False):
    text = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    pad = 64 - (10 + len(text) + 1) % 64
    text += " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def npy():
    x = np.arange(6, dtype=np.float64).reshape(3, 2) / 4
    put("npy", "samples_f8", npy_bytes(x))
    put("npy", "samples_f4", npy_bytes(x.astype(np.float32)))
    put("npy", "vector_f8", npy_bytes(np.array([1.0, 0.5, 0.25])))
    put("npy", "vector_empty", npy_bytes(np.zeros(0)))
    put("npy", "images_nchw", npy_bytes(np.ones((2, 1, 2, 2), dtype=np.float32)))
    put("npy", "version2", npy_bytes(x, version=(2, 0)))
    put("npy", "fortran", npy_bytes(np.asfortranarray(x)))
    put("npy", "int64", npy_bytes(np.arange(4, dtype=np.int64).reshape(2, 2)))
    put("npy", "truncated", npy_bytes(x)[:-5])
    put("npy", "huge_shape", npy_header_only("(4294967296, 4294967296)") + b"\0" * 16)
    put("npy", "huge_vector", npy_header_only("(1099511627776,)", "<f4") + b"\0" * 16)
    put("npy", "nan", npy_bytes(np.array([[np.nan, 1.0]])))
    # Inputs that found bugs (tests/test_file_parsers.cpp): a header whose length byte is >= 0x80, and a dictionary
    # whose 'shape' has no value (xtensor's header parser read before the start of an empty string).
    put("npy", "long_header", npy_header_only("(1, 2)").replace(b"\x76\x00", b"\xb6\x00", 1)[:-1]
        + b" " * 64 + b"\n" + np.array([0.5, -2.0]).tobytes())
    put("npy", "shape_without_value", npy_header_only("(2, 2)").replace(b"'shape': ", b"'shape'C ") + b"\0" * 32)


def npz():
    rng = np.random.default_rng(0)
    mlp = {"W1": rng.standard_normal((4, 3)), "b1": np.zeros(4), "W2": rng.standard_normal((2, 4)), "b2": np.ones(2)}
    b = io.BytesIO()
    np.savez(b, **{k: v.astype(np.float32) for k, v in mlp.items()})
    put("npz", "mlp_f4", b.getvalue())
    b = io.BytesIO()
    np.savez(b, **mlp, extra=np.arange(3.0))
    put("npz", "mlp_f8_extra", b.getvalue())
    b = io.BytesIO()
    np.savez(b, W1=np.zeros((4, 3)), b1=np.zeros(3))
    put("npz", "bad_shapes", b.getvalue())
    b = io.BytesIO()
    np.savez_compressed(b, W1=np.zeros((2, 2)))
    put("npz", "compressed", b.getvalue())
    whole = b.getvalue()
    put("npz", "truncated", whole[: len(whole) // 2])


def csv():
    put("csv", "header", "x,y\n1,2\n3.5,-4e-3\n")
    put("csv", "comments", "# data\n1, 2, 3 # first\n\n4,5,6\n")
    put("csv", "ragged", "1,2\n3\n")
    put("csv", "text", "1,2\nfoo,3\n")
    put("csv", "trailing_comma", "1,2,\n")
    put("csv", "inf", "1,inf\n")


def time_grid():
    put("time_grid", "text", "1.0\n0.5\n0.1\n0.001\n")
    put("time_grid", "one_line", "1 0.75 0.5 0.25 # comment\n")
    put("time_grid", "increasing", "0.1 0.5\n")
    put("time_grid", "npy", npy_bytes(np.array([1.0, 0.3, 0.01])))
    put("time_grid", "npy_f4", npy_bytes(np.array([0.9, 0.3], dtype=np.float32)))
    put("time_grid", "npy_2d", npy_bytes(np.ones((2, 2))))
    put("time_grid", "npy_huge", npy_header_only("(2305843009213693952,)"))
    # Found by fuzz_time_grid: a version 2.0 header length with bytes >= 0x80 (read as signed chars: 4 GiB).
    put("time_grid", "npy_v2_signed_length",
        b"\x93NUMPY\x02\x00\x8a\xff\x7b\x27{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n")


def idx():
    def idx_bytes(a):
        return bytes([0, 0, 8, a.ndim]) + b"".join(struct.pack(">I", n) for n in a.shape) + a.tobytes()

    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    labels = np.array([1, 7], dtype=np.uint8)
    put("idx", "images", idx_bytes(images))
    put("idx", "labels", idx_bytes(labels))
    put("idx", "images_gz", gzip.compress(idx_bytes(images), mtime=0))
    put("idx", "labels_gz", gzip.compress(idx_bytes(labels), mtime=0))
    put("idx", "truncated", idx_bytes(images)[:-4])
    put("idx", "huge_dims", bytes([0, 0, 8, 3]) + struct.pack(">III", 1 << 28, 1 << 28, 1 << 28))
    put("idx", "gz_truncated", gzip.compress(idx_bytes(labels), mtime=0)[:-6])


def mixture_json():
    put("mixture_json", "stds", json.dumps({"weights": [1, 2], "means": [[0, 0], [1, 1]], "stds": [0.5, 1]}))
    put("mixture_json", "covariances",
        json.dumps({"weights": [1], "means": [[0, 1]], "covariances": [[[1, 0.5], [0.5, 2]]]}))
    put("mixture_json", "not_spd",
        json.dumps({"weights": [1], "means": [[0, 1]], "covariances": [[[1, 2], [2, 1]]]}))
    put("mixture_json", "unknown_field", json.dumps({"weights": [1], "means": [[0]], "stds": [1], "x": 1}))
    put("mixture_json", "negative", '{"weights": [-1], "means": [[1e308]], "stds": [0]}')
    # Found by fuzz_mixture_json: a number beyond double's range (nlohmann's out_of_range, not a parse_error).
    put("mixture_json", "number_overflow", '{"weights": [1], "means": [[2e308]], "stds": [1]}')
    put("mixture_json", "eigen_header", json.dumps({"format": "scoresde-mixture-eig-1", "dim": 2, "components": 1,
                                                    "weights": [1], "arrays": "arrays.npy"}))


for make in (npy, npz, csv, time_grid, idx, mixture_json):
    make()
