#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/NAME): small valid files and near-valid ones
(truncated, a wrong field, a header claiming a huge shape), a few KB per target. corpus/study_ini/tiny and
corpus/results_json/tiny are not written here: they are the study.ini and results.json of a small study,
  scoresde study --data eight_gaussians --sde vp --sampler ddim,euler_maruyama --steps 5,10 --seeds 1 \\
      --samples 200 --metrics mmd2,mean_error --out DIR
and the results.json variants are made from them. Files whose name starts with found_ are inputs with which a fuzz
target found a bug (tests/test_file_parsers.cpp has each as a test); they are kept, not written here.
Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py"""
import gzip
import hashlib
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


def eigen_mixture():
    # fuzz_eigen_mixture's input: the header, a NUL byte, the arrays file (float64 (K, d + 2, d): mean, eigenvalues,
    # eigenvectors), as `scoresde fit-mixture` writes them.
    K, d = 2, 2
    arrays = np.zeros((K, d + 2, d))
    arrays[1, 0] = [1, 0]
    arrays[:, 1] = 0.25
    arrays[:, 2:] = np.eye(d)
    data = npy_bytes(arrays)
    header = {"format": "scoresde-mixture-eig-1", "dim": d, "components": K, "weights": [0.5, 0.5],
              "arrays": "arrays.npy", "arrays_sha256": hashlib.sha256(data).hexdigest(), "image_shape": [1, 1, 2]}
    put("eigen_mixture", "valid", json.dumps(header).encode() + b"\0" + data)
    del header["arrays_sha256"]
    put("eigen_mixture", "no_sha256", json.dumps(header).encode() + b"\0" + data)
    put("eigen_mixture", "truncated", json.dumps(header).encode() + b"\0" + data[:-16])
    put("eigen_mixture", "wrong_dim", json.dumps(dict(header, dim=3)).encode() + b"\0" + data)
    bad = arrays.copy()
    bad[0, 2:] = [[1, 1], [0, 1]]
    put("eigen_mixture", "not_orthonormal", json.dumps(header).encode() + b"\0" + npy_bytes(bad))


def fnv1a(data):
    h = 1469598103934665603
    for c in data:
        h = ((h ^ c) * 1099511628211) & (2**64 - 1)
    return h


def checkpoint():
    # models/checkpoint.hpp, version 1, without the trailing checksum (fuzz_checkpoint appends it).
    for name, fourier, f4 in (("raw_f8", False, False), ("fourier_f4", True, True)):
        F = 2 if fourier else 0
        arch = {"dim": 2, "hidden": [3, 3], "time_embedding": "fourier" if fourier else "raw", "time_input": "t",
                "fourier_features": max(F, 1), "fourier_scale": 4.0, "parameterization": "noise",
                "precision": "float32" if f4 else "float64", "activation": "silu"}
        inputs = 2 + (2 * F if fourier else 1)
        P = 3 * (inputs + 1) + 3 * (3 + 1) + 2 * (3 + 1)
        dtype = "f4" if f4 else "f8"
        header = {"format": "scoresde checkpoint", "version": 1, "architecture": arch,
                  "sde": {"sde": "vp", "schedule": "linear", "beta-min": 0.1, "beta-max": 20.0, "cosine-s": 0.008,
                          "sigma-min": 0.01, "sigma-max": 50.0, "T": 1.0},
                  "scaling": {"mean": [0.0, 0.0], "scale": [1.0, 1.0]}, "training": {"iterations": 1},
                  "arrays": [{"name": "frequencies", "dtype": "f8", "count": F},
                             {"name": "weights", "dtype": dtype, "count": P},
                             {"name": "ema", "dtype": dtype, "count": P}]}
        text = json.dumps(header, separators=(",", ":")).encode()
        arrays = np.linspace(0.5, 1.0, F).tobytes() + np.linspace(-1, 1, 2 * P).astype(
            np.float32 if f4 else np.float64).tobytes()
        body = b"SSDECKPT" + struct.pack("<IQ", 1, len(text)) + text + arrays
        put("checkpoint", name, body)
        put("checkpoint", name + "_truncated", body[:-12])
        put("checkpoint", name + "_wrong_count", body.replace(b'"count":%d' % P, b'"count":9', 1))


def study_ini():
    put("study_ini", "small", "data = eight_gaussians\nsde = vp\nsampler = ddim\nsteps = 5\nseeds = 1\n")
    put("study_ini", "preset", "preset = gaussian\nsteps = 4,8\nseeds = 1\n")
    put("study_ini", "unknown_key", "sampler = ddim\nno-such-key = 1\n")
    put("study_ini", "bad_value", "steps = 0\n[section]\nsamples = -1\n")
    put("study_ini", "blocks", "blocks = sampler=ddim;steps=5\nmetrics = mmd2\n")


def results_json():
    tiny = os.path.join(HERE, "corpus", "results_json", "tiny")
    if os.path.exists(tiny):
        with open(tiny) as f:
            results = json.load(f)
        results["rows"] = results["rows"][:1]
        results["study"]["steps"] = "1,2"
        put("results_json", "other_study", json.dumps(results))
    put("results_json", "minimal", '{"study": {}, "rows": [{"run": "a", "w2": 1.5}]}')
    put("results_json", "no_rows", '{"study": {"threads": 1}}')
    put("results_json", "bad_row", '{"study": {}, "rows": [{"run": 1}]}')


for make in (npy, npz, csv, time_grid, idx, mixture_json, eigen_mixture, checkpoint, study_ini, results_json):
    make()
